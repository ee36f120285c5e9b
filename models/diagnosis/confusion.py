"""Confusion of stated relation vs the relation(s) that hold for the chosen pair, and
relation word counts in model captions vs references.  usage: confusion.py cap_b3.jsonl"""
import json, sys, collections
from common import *
rows = json.load(open(sys.argv[1].replace(".jsonl", "_clauses.json")))
scenes = load_scenes(__import__("os").environ.get("HELD", "held") + "/dataset.json")
def relcount(caps):
    c = collections.Counter()
    for ws in caps:
        _, rs = parse(ws)
        for r in rs: c[RELNAMES[r[1]]] += 1
    return c
model = [json.loads(l)["words"] for l in open(sys.argv[1])]
refs = [t for s in scenes.values() for t in s["refs"]]
print("relation words, model captions (all clauses):", dict(relcount(model)))
print("relation words, references (5 per scene):", dict(relcount(refs)))
for title, sel in [("all scored clauses", lambda x: True), ("2-object scenes", lambda x: x["n_obj"] == 2)]:
    print(f"\n{title}: pairs where exactly ONE relation holds (rows: holds; cols: stated)")
    conf = collections.Counter()
    for x in rows:
        if sel(x) and len(x["holds"]) == 1:
            conf[(x["holds"][0], x["rel"])] += 1
    print("| holds \\ stated | " + " | ".join(RELNAMES) + " |\n|---|---:|---:|---:|---:|")
    for a in range(4):
        print(f"| {RELNAMES[a]} | " + " | ".join(str(conf[(a, b)]) for b in range(4)) + " |")
