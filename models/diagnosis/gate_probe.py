"""At each mention's shape-word step (teacher-forced references, first 300 scenes): is the
attended x / y (alpha @ coordinate channel) correlated with the object's centre, and how far does
the f_beta gate open on the x / y channels (vs the 64 CNN channels)?"""
import numpy as np
from npmodel import Model
from common import load_scenes, parse
m = Model()
scenes = load_scenes("held/dataset.json")
att_x, att_y, obj_x, obj_y, gx, gy, gcnn, zx, zy = [], [], [], [], [], [], [], [], []
for fname in sorted(scenes)[:300]:
    sc = scenes[fname]; objs = sc["objs"]
    a = m.encode(m.preprocess("held/images/" + fname))
    p = m.lin("decoder.attention.encoder_att", a)
    for ref in sc["refs"][:2]:
        ms, rs = parse(ref)
        toks = [m.id[w] for w in ref]
        h, c = m.init(a); prev = m.id["<start>"]
        hs, als = [], []
        for y in toks:
            hs.append(h)
            logits, alpha, h, c = m.step(a, p, prev, h, c); als.append(alpha); prev = y
        for mm in ms:
            idx = [i for i, o in enumerate(objs) if (o["shape"], o["colour"], o["size"]) == (mm["shape"], mm["colour"], mm["size"])]
            if len(idx) != 1 or mm["count"] != 1: continue
            o = objs[idx[0]]; t = mm["shape_word"]
            al = als[t]; gate = 1 / (1 + np.exp(-m.lin("decoder.f_beta", hs[t])))
            att_x.append(al @ a[:, 64]); att_y.append(al @ a[:, 65])
            obj_x.append((o["box"][0] + o["box"][2]) - 1); obj_y.append((o["box"][1] + o["box"][3]) - 1)
            gx.append(gate[64]); gy.append(gate[65]); gcnn.append(gate[:64].mean())
            zx.append(gate[64] * al @ a[:, 64]); zy.append(gate[65] * al @ a[:, 65])
c = lambda u, v: np.corrcoef(u, v)[0, 1]
print(f"mentions: {len(att_x)}")
print(f"corr(attended x, object x) = {c(att_x, obj_x):.3f}; corr(attended y, object y) = {c(att_y, obj_y):.3f}")
print(f"gate on x channel: mean {np.mean(gx):.3f} (min {np.min(gx):.3f}, max {np.max(gx):.3f}); on y: mean {np.mean(gy):.3f} (min {np.min(gy):.3f}, max {np.max(gy):.3f}); CNN channels mean {np.mean(gcnn):.3f}")
print(f"corr(gated z_x, object x) = {c(zx, obj_x):.3f}; corr(gated z_y, object y) = {c(zy, obj_y):.3f}")
