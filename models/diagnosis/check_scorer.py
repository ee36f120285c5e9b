"""Check common.py's scorer reproduces `imcap eval` totals (object P/R, pointing-free parts, relations)
for the caption --json outputs, and that reference captions score 100% on relations."""
import json, sys
import numpy as np
from common import *

scenes = load_scenes("held/dataset.json")
for tag in ["b3", "b1"]:
    tp = fp = fn = rt = rc = 0
    pt = ph = 0; mass = 0.0
    for line in open(f"cap_{tag}.jsonl"):
        r = json.loads(line)
        sc = scenes[r["path"]]
        att = np.array(r["attention"])
        st, ms, took, mine, cl = score(sc["objs"], r["words"], att)
        tp += st["tp"]; fp += st["fp"]; fn += st["fn"]
        for m, t, mn in zip(ms, took, mine):
            if t == 0: continue
            a = att[m["shape_word"]]; arg = int(np.argmax(a))
            inr = lambda c: any(in_grown(sc["objs"][o], *cell_centre(c)) for o in mn)
            pt += t; ph += t * inr(arg); mass += t * sum(a[c] for c in range(64) if inr(c))
        for c in cl:
            if "correct" in c:
                rt += 1; rc += c["correct"]
    p = tp / (tp + fp); rec = tp / (tp + fn)
    print(f"{tag}: P {p:.4f} R {rec:.4f} F1 {2*p*rec/(p+rec):.4f} pointing {ph/pt:.4f} ({pt}) mass {mass/pt:.4f} relations {rc/rt:.4f} ({rc}/{rt})")
# references
rt = rc = 0
for fn_, sc in scenes.items():
    for ref in sc["refs"]:
        st, ms, took, mine, cl = score(sc["objs"], ref)
        for c in cl:
            if "correct" in c:
                rt += 1; rc += c["correct"]
print(f"references: relations {rc}/{rt} = {rc/rt:.4f}")
