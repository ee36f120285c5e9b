#!/usr/bin/env python3
"""same_weights.py A B: exit 0 when two imcap models (.safetensors) or two
checkpoints (.ckpt) hold the same tensors, bit for bit (and, for
checkpoints, the same step and Adam moments), whatever their metadata says
(a resumed run records another command line)."""
import json
import struct
import sys


def tensors(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    head = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in head.items() if k != "__metadata__"}


def load(path):
    blob = open(path, "rb").read()
    if blob[:8] != b"IMCAPCK1":
        return {"tensors": tensors(blob)}
    tl = struct.unpack("<Q", blob[8:16])[0]
    state = json.loads(blob[16:16 + tl])
    ms = struct.unpack("<Q", blob[16 + tl:24 + tl])[0]
    model = blob[24 + tl:24 + tl + ms]
    return {"tensors": tensors(model), "step": state["step"], "moments": blob[24 + tl + ms:]}


a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    diff = [k for k in a["tensors"] if a["tensors"][k] != b["tensors"].get(k)]
    print(f"{sys.argv[1]} and {sys.argv[2]} differ: tensors {diff[:5]}, step {a.get('step')} / {b.get('step')}, "
          f"moments {'same' if a.get('moments') == b.get('moments') else 'differ'}", file=sys.stderr)
    sys.exit(1)
