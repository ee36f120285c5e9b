"""Reference captions: how relations are chosen and whether simple rules reproduce them.
For every relation clause of every reference caption (5 per scene): relations that hold for the
pair, whether the stated one is the widest-clearance one, and whether a centre rule (dominant axis of
the NP2 - NP1 centre offset, its sign) gives a relation the scorer accepts."""
import collections
import numpy as np
from common import *
scenes = load_scenes("held/dataset.json")
C = collections.Counter()
for fname, sc in scenes.items():
    objs = sc["objs"]
    for ref in sc["refs"]:
        st, ms, took, mine, cl = score(objs, ref)
        C["captions"] += 1
        C["captions with a relation"] += bool(cl)
        for c in cl:
            C["clauses"] += 1
            C["scored"] += "correct" in c
            C["correct"] += c.get("correct", False)
            h = [r for r in range(4) if c["holds"][r]]
            C[f"holds {len(h)}"] += 1
            C["axis " + ("horizontal" if c["rel"] < 2 else "vertical")] += 1
            widest = max(range(4), key=lambda r: c["clear"][r])
            C["stated == widest clearance"] += widest == c["rel"]
            X, Y = c["X"], c["Y"]
            cen = lambda I: np.mean([[(objs[i]["box"][0] + objs[i]["box"][2]) / 2, (objs[i]["box"][1] + objs[i]["box"][3]) / 2] for i in I], 0)
            a, b = cen(X), cen(Y)
            dx, dy = b[0] - a[0], b[1] - a[1]
            rule = (LEFT if dx > 0 else RIGHT) if abs(dx) >= abs(dy) else (ABOVE if dy > 0 else BELOW)
            C["centre rule == stated"] += rule == c["rel"]
            C["centre rule accepted by scorer"] += c["holds"][rule]
            C["group clause"] += c["kx"] > 1 or c["ky"] > 1
        # pairs joined by "and" although some relation holds (only for groups by design)
print("\n".join(f"| {k} | {v} |" for k, v in C.items()))
