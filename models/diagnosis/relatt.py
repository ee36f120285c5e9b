"""usage: relatt.py cap_b1.jsonl (scenes of 3+ objects). For wrong relation clauses (stated REL does not hold for the named pair): the object the
attention points at (argmax cell) at the relation word, and whether REL holds between NP1's
object and that attended object."""
import json, sys, collections
import numpy as np
from common import *
scenes = load_scenes(__import__("os").environ.get("HELD", "held") + "/dataset.json")
C = collections.Counter()
for l in open(sys.argv[1]):
    r = json.loads(l); sc = scenes[r["path"]]; objs = sc["objs"]; att = np.array(r["attention"]); words = r["words"]
    st, ms, took, mine, cl = score(objs, words, att)
    for c in cl:
        if "correct" not in c or len(objs) < 3: continue
        a_objs = list(c["X"]); b_objs = list(c["Y"])
        arg = int(np.argmax(att[c["wpos"]]))
        cx, cy = cell_centre(arg, 8, 8)
        pointed = [o for o in range(len(objs)) if in_grown(objs[o], cx, cy, 8, 8)]
        key = "right" if c["correct"] else "wrong"
        C[key] += 1
        if not pointed: C[key + ": points at no object"] += 1; continue
        if any(o in b_objs for o in pointed): C[key + ": points at the named partner"] += 1
        elif any(o in a_objs for o in pointed): C[key + ": points at NP1"] += 1
        else:
            holds = any(relation_true(objs, c["X"], c["kx"], c["rel"], [o], 1) for o in pointed if o not in a_objs)
            C[key + ": points at another object, REL " + ("holds" if holds else "fails") + " with it"] += 1
for k in sorted(C): print(f"{k}: {C[k]}")
