"""Sequence-level distillation set with a correctness filter (issue 14, experiments E27- in models/README.md).
Each train scene whose caption by the teacher (CAPTIONS.jsonl: `imcap batch --beam 3` over the train images) names
every object of the scene, nothing else, and states every relation truly (the rules of `imcap eval`, as
models/diagnosis/common.py re-implements them) gets that caption in place of its references, as many times as it
had references, so each scene keeps its weight; the other train scenes keep their references. Val and test are
unchanged. Greedy decoding then learns the teacher's beam-search choices (Kim and Rush 2016), where the references'
several pairings of objects leave the first words of a relation a mixture.
usage: make_kd.py --train-files IN.json > FILES   (the train images' paths, for imcap batch --files-from FILES)
       make_kd.py IN.json CAPTIONS.jsonl OUT.json"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "diagnosis"))
from common import load_scenes, score  # noqa: E402

if len(sys.argv) == 3 and sys.argv[1] == "--train-files":
    root = os.path.dirname(sys.argv[2])
    for im in json.load(open(sys.argv[2]))["images"]:
        if im["split"] in ("train", "restval"):
            print(os.path.join(root, im.get("filepath", ""), im["filename"]))
    sys.exit(0)
if len(sys.argv) != 4:
    sys.exit(__doc__)
src, caps, dst = sys.argv[1:4]
scenes = load_scenes(src)
d = scenes.dataset
caption = {}
for line in open(caps):
    r = json.loads(line)
    if r.get("caption"):
        caption[os.path.basename(r["path"])] = r["caption"].split()
count = collections.Counter()
for im in d["images"]:
    if im["split"] not in ("train", "restval"):
        continue
    words = caption.get(im["filename"])
    if words is None:
        count["no caption"] += 1
        continue
    st, _, _, _, clauses = score(scenes[im["filename"]]["objs"], words)
    ok = st["fp"] == 0 and st["fn"] == 0 and all(c.get("correct", False) for c in clauses)
    n_obj = len(im["objects"])
    count[("kept teacher" if ok else "kept references", n_obj)] += 1
    if not ok:
        continue
    im["sentences"] = [{"tokens": words, "raw": " ".join(words), "imgid": im["imgid"], "sentid": s["sentid"]}
                       for s in im["sentences"]]
    im.pop("mentions", None)  # word positions of the references; the teacher's caption has its own
tmp = dst + ".partial"
json.dump(d, open(tmp, "w"))
os.replace(tmp, dst)
for k in sorted(count, key=str):
    print(k, count[k])
