"""Teacher-forced cross-entropy per token (the <end> token included) over the val split of tv/
with the numpy (inference-path) model, to compare with `imcap train`'s val loss (training path)."""
import json, sys, numpy as np
from npmodel import Model
m = Model(sys.argv[1] if len(sys.argv) > 1 else __import__("os").environ.get("MODEL", "models/default.safetensors"))
d = json.load(open("tv/dataset.json"))
ce = n = 0.0
cer = nr = 0.0
for im in d["images"]:
    if im["split"] != "val": continue
    a = m.encode(m.preprocess("tv/images/" + im["filename"]))
    for s in im["sentences"]:
        toks = [m.id[w] for w in s["tokens"]] + [m.id["<end>"]]
        L, _ = m.teacher_force(a, toks)
        lse = np.log(np.exp(L - L.max(1, keepdims=True)).sum(1)) + L.max(1)
        nll = lse - L[np.arange(len(toks)), toks]
        ce += nll.sum(); n += len(toks)
        for k, w in enumerate(s["tokens"]):
            if w in ("left", "right"): cer += nll[k]; nr += 1
print(f"per-token CE {ce/n:.4f} over {int(n)} tokens; mean CE at left/right tokens {cer/nr:.4f} ({int(nr)}; ln 2 = 0.6931)")
