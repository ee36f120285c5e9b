"""npmodel vs imcap's trace (annotations, logits, attention) for one image, and greedy captions vs
imcap caption --beam 1 for the first 50 images."""
import json, numpy as np
from npmodel import Model
m = Model()
t = json.load(open("trace0.txt"))
x = m.preprocess("held/images/000049.png")
print("input max diff", np.abs(x - np.array(t["input"])).max())
a = m.encode(x)
print("annotations max diff", np.abs(a - np.array(t["annotations"])).max(), "max |a|", np.abs(a).max())
L, A = m.teacher_force(a, t["tokens"])
print("logits max diff", np.abs(L - np.array(t["logits"])).max(), "attention max diff", np.abs(A - np.array(t["attention"])).max())
g = [json.loads(l) for l in open("cap_b1.jsonl")][:50]
same = sum(m.greedy(m.encode(m.preprocess("held/images/" + r["path"]))) == r["words"] for r in g)
print("greedy captions identical:", same, "/ 50")
