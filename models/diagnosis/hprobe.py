"""Linear probes on the decoder state, teacher-forced on reference clauses of the held-out scenes:
at the step that predicts the direction word (left/right/above/...), is NP1's centre (x1, y1) and
NP2's centre (x2, y2) linearly decodable from h_{t-1}?  And is the attention-weighted x / y
(the context's coordinate channels, divided by the gate) near NP1's or NP2's centre?
Ridge regression (lambda the best of 1, 10, 100, 1000), 5-fold cross-validated R^2; pairs of single objects only."""
import json, collections
import numpy as np
from npmodel import Model
from common import load_scenes, parse, LEFT, RIGHT

m = Model()
scenes = load_scenes("held/dataset.json")
H, Y, AX, META = [], [], [], []
for fname in sorted(scenes):
    sc = scenes[fname]
    objs = sc["objs"]
    a = m.encode(m.preprocess("held/images/" + fname))
    p = m.lin("decoder.attention.encoder_att", a)
    for ref in sc["refs"][:2]:
        ms, rs = parse(ref)
        if not rs: continue
        toks = [m.id[w] for w in ref]
        # run and keep h before each step and alpha at each step
        h, c = m.init(a)
        prev = m.id["<start>"]
        hs, als = [], []
        for y in toks:
            hs.append(h)
            logits, alpha, h, c = m.step(a, p, prev, h, c)
            als.append(alpha)
            prev = y
        for (ia, rel, ib, wpos) in rs:
            if ms[ia]["count"] != 1 or ms[ib]["count"] != 1: continue
            key = lambda mm: [i for i, o in enumerate(objs) if (o["shape"], o["colour"], o["size"]) == (mm["shape"], mm["colour"], mm["size"])]
            A_, B_ = key(ms[ia]), key(ms[ib])
            if len(A_) != 1 or len(B_) != 1: continue
            oa, ob = objs[A_[0]], objs[B_[0]]
            ca = [(oa["box"][0] + oa["box"][2]) / 2, (oa["box"][1] + oa["box"][3]) / 2]
            cb = [(ob["box"][0] + ob["box"][2]) / 2, (ob["box"][1] + ob["box"][3]) / 2]
            al = als[wpos]
            ax = [al @ (a[:, 64] + 1) / 2, al @ (a[:, 65] + 1) / 2]  # attention centroid in [0,1]
            H.append(hs[wpos]); Y.append(ca + cb); AX.append(ax)
            META.append(dict(rel=rel, n=len(objs)))
H, Y, AX = np.array(H), np.array(Y), np.array(AX)
print(f"clauses probed: {len(H)} (2 references per scene, single-object NPs)")


def cv_r2(X, y, k=5):
    best = None
    for lam in (1.0, 10.0, 100.0, 1000.0):
        r = cv_r2_lam(X, y, lam, k)
        if best is None or r[0] > best[0]: best = r
    return best


def cv_r2_lam(X, y, lam, k):
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    pred = np.zeros_like(y)
    Xb = np.hstack([X, np.ones((len(X), 1))])
    for f in range(k):
        te = idx[f::k]
        tr = np.setdiff1d(idx, te)
        w = np.linalg.solve(Xb[tr].T @ Xb[tr] + lam * np.eye(Xb.shape[1]), Xb[tr].T @ y[tr])
        pred[te] = Xb[te] @ w
    return 1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum(), pred


print("\n| target | R^2 from h_{t-1} (ridge, 5-fold CV) |\n|---|---:|")
names = ["NP1 x", "NP1 y", "NP2 x", "NP2 y"]
for j, nm in enumerate(names):
    r2, _ = cv_r2(H, Y[:, j])
    print(f"| {nm} | {r2:.3f} |")
dx, dy = Y[:, 2] - Y[:, 0], Y[:, 3] - Y[:, 1]
for nm, t in (("NP2 x - NP1 x", dx), ("NP2 y - NP1 y", dy)):
    r2, pr = cv_r2(H, t)
    print(f"| {nm} | {r2:.3f} |")
hor = np.array([mm["rel"] in (LEFT, RIGHT) for mm in META])
r2, pr = cv_r2(H[hor], dx[hor]); print(f"| NP2 x - NP1 x, horizontal clauses only ({hor.sum()}) | {r2:.3f} (sign right {np.mean(np.sign(pr) == np.sign(dx[hor])):.3f}) |")
r2, pr = cv_r2(H[~hor], dy[~hor]); print(f"| NP2 y - NP1 y, vertical clauses only ({(~hor).sum()}) | {r2:.3f} (sign right {np.mean(np.sign(pr) == np.sign(dy[~hor])):.3f}) |")
print("\nattention centroid at the direction-word step (x, y in [0,1]): mean distance to NP1 centre "
      f"{np.mean(np.hypot(AX[:,0]-Y[:,0], AX[:,1]-Y[:,1])):.3f}, to NP2 centre {np.mean(np.hypot(AX[:,0]-Y[:,2], AX[:,1]-Y[:,3])):.3f}, "
      f"to image centre {np.mean(np.hypot(AX[:,0]-0.5, AX[:,1]-0.5)):.3f}")
for nm, j in (("x", 0), ("y", 1)):
    print(f"corr(attention centroid {nm}, NP1 {nm}) = {np.corrcoef(AX[:,j], Y[:,j])[0,1]:.3f}; corr(centroid {nm}, NP2 {nm}) = {np.corrcoef(AX[:,j], Y[:,2+j])[0,1]:.3f}")
