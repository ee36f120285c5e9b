"""Teacher-forced probe on the reference captions: at the step that emits a relation's direction
word, does the model prefer the right direction over the opposite one?  Also with interventions
on the coordinate channels of the annotation vectors (x = channel 64, y = channel 65).
usage: python3 probe.py [N_SCENES]"""
import json, sys, collections
import numpy as np
from npmodel import Model
from common import load_scenes, parse, RELNAMES, LEFT, RIGHT, ABOVE, BELOW

m = Model()
scenes = load_scenes("held/dataset.json")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
V = m.id
interventions = {
    "none": lambda a: a,
    "negate x": lambda a: np.concatenate([a[:, :64], -a[:, 64:65], a[:, 65:]], 1),
    "negate y": lambda a: np.concatenate([a[:, :65], -a[:, 65:66]], 1),
    "zero x,y": lambda a: np.concatenate([a[:, :64], 0 * a[:, 64:]], 1),
    "coords x10": lambda a: np.concatenate([a[:, :64], 10 * a[:, 64:]], 1),
    "x gate forced to 1": "gate",
}
stats = collections.defaultdict(lambda: collections.Counter())
axis_stats = collections.defaultdict(lambda: collections.Counter())
for fname in sorted(scenes)[:N]:
    sc = scenes[fname]
    nobj = len(sc["objs"])
    a0 = m.encode(m.preprocess("held/images/" + fname))
    for iname, f in interventions.items():
        m.gate_override = {64: 1.0} if f == "gate" else None
        a = a0 if f == "gate" else f(a0)
        for ref in sc["refs"]:
            ms, rs = parse(ref)
            if not rs:
                continue
            toks = [V[w] for w in ref] + [V["<end>"]]
            L, A = m.teacher_force(a, toks)
            P = np.exp(L - L.max(1, keepdims=True))
            P /= P.sum(1, keepdims=True)
            for (ia, rel, ib, wpos) in rs:
                p = P[wpos]
                if rel in (LEFT, RIGHT):
                    good, bad = (V["left"], V["right"]) if rel == LEFT else (V["right"], V["left"])
                    pg, pb = p[good], p[bad]
                else:
                    up = p[V["above"]] + p[V["over"]]
                    dn = p[V["below"]] + p[V["under"]]
                    pg, pb = (up, dn) if rel == ABOVE else (dn, up)
                axis = "horizontal" if rel in (LEFT, RIGHT) else "vertical"
                for key in ((iname, axis, "all"), (iname, axis, f"{nobj} obj")):
                    s = stats[key]
                    s["n"] += 1
                    s["prefers correct"] += pg > pb
                    s["sum p_correct/(p_c+p_opp)"] += pg / (pg + pb)
                # axis decision: first word of the relation phrase
                first = wpos - 2 if ref[wpos - 1] == "the" else wpos
                if ref[first - 1] in ("is", "are"):
                    pass
                pf = P[first]
                ph = pf[V["to"]] + pf[V["left"]] + pf[V["right"]]
                pv = pf[V["above"]] + pf[V["over"]] + pf[V["below"]] + pf[V["under"]]
                s2 = axis_stats[(iname, axis)]
                s2["n"] += 1
                s2["prefers correct axis"] += (ph > pv) if axis == "horizontal" else (pv > ph)

print(f"scenes: {N}; reference captions teacher-forced; direction = P(correct word) vs P(opposite word) "
      f"at the direction word (above+over vs below+under)\n")
print("| intervention | axis | scenes | clauses | prefers correct direction | mean p_c/(p_c+p_opp) |")
print("|---|---|---|---:|---:|---:|")
for k in sorted(stats, key=lambda k: (list(interventions).index(k[0]), k[1], k[2])):
    s = stats[k]
    print(f"| {k[0]} | {k[1]} | {k[2]} | {s['n']} | {s['prefers correct']/s['n']:.3f} | {s['sum p_correct/(p_c+p_opp)']/s['n']:.3f} |")
print("\n| intervention | axis | clauses | prefers correct axis at the phrase's first word |")
print("|---|---|---:|---:|")
for k in sorted(axis_stats, key=lambda k: (list(interventions).index(k[0]), k[1])):
    s = axis_stats[k]
    print(f"| {k[0]} | {k[1]} | {s['n']} | {s['prefers correct axis']/s['n']:.3f} |")
