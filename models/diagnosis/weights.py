"""Inspect decoder weights that read the annotation vectors: how strongly the x (channel 64) and
y (channel 65) coordinate channels are used, compared with the 64 CNN channels."""
import json, struct, sys
import numpy as np
path = sys.argv[1] if len(sys.argv) > 1 else __import__("os").environ.get("MODEL", "models/default.safetensors")
b = open(path, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
T = {}
for k, v in h.items():
    if k == "__metadata__": continue
    s, e = v["data_offsets"]
    T[k] = np.frombuffer(b[8 + n + s: 8 + n + e], dtype=np.float32).reshape(v["shape"])
for k, v in T.items():
    if any(d == 66 for d in v.shape):
        print(k, v.shape)
        ax = list(v.shape).index(66)
        w = np.moveaxis(v, ax, 0).reshape(66, -1)
        norms = np.linalg.norm(w, axis=1)
        print(f"   row norm: CNN channels mean {norms[:64].mean():.3f} (median {np.median(norms[:64]):.3f}), x {norms[64]:.3f}, y {norms[65]:.3f}")
W = T["decoder.lstm.weight_ih"]  # [1024, 130]: embedding 64, then context 66
norms = np.linalg.norm(W, axis=0)
print(f"lstm.weight_ih column norms: embedding mean {norms[:64].mean():.3f}; context CNN channels mean {norms[64:128].mean():.3f} "
      f"(min {norms[64:128].min():.3f}); context x {norms[128]:.3f}; context y {norms[129]:.3f}")
