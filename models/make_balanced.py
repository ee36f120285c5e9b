"""Relation-balanced training set (issue 14, experiment E12 in models/README.md): every train scene with 3 or 4
objects, every 2nd with 2 objects, every 4th with 1 object (by image order, so
the selection is reproducible); val and test unchanged.
usage: make_balanced.py IN.json OUT.json"""
import json, sys
d = json.load(open(sys.argv[1]))
keep_every = {1: 4, 2: 2, 3: 1, 4: 1}
seen = {k: 0 for k in keep_every}
out = []
for im in d["images"]:
    n = len(im["objects"])
    if im["split"] in ("train", "restval"):
        seen[n] += 1
        if (seen[n] - 1) % keep_every[n]:
            continue
    out.append(im)
d["images"] = out
json.dump(d, open(sys.argv[2], "w"))
print({k: sum(1 for im in out if im["split"] == "train" and len(im["objects"]) == k) for k in keep_every})
