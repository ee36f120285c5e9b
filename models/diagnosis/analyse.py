"""Per-clause diagnosis of relation errors.  usage: python3 analyse.py cap_b3.jsonl [--dump N]"""
import json, sys, collections
import numpy as np
from common import *

path = sys.argv[1]
dump = int(sys.argv[sys.argv.index("--dump") + 1]) if "--dump" in sys.argv else 0
scenes = load_scenes(__import__("os").environ.get("HELD", "held") + "/dataset.json")
recs = [json.loads(l) for l in open(path)]

C = collections.Counter()
rows = []  # one per clause with both NPs correct
for r in recs:
    sc = scenes[r["path"]]
    objs = sc["objs"]
    att = np.array(r["attention"])
    words = r["words"]
    st, ms, took, mine, cl = score(objs, words, att)
    for c in cl:
        C["clauses"] += 1
        C["np1_ok"] += c["a_ok"]
        C["np2_ok"] += c["b_ok"]
        C["both_ok"] += c["a_ok"] and c["b_ok"]
        if not (c["a_ok"] and c["b_ok"]):
            continue
        rel = c["rel"]
        h = c["holds"]
        if h[rel]:
            cat = "REL holds"
        elif h[OPP[rel]]:
            cat = "opposite holds"
        elif any(h[x] for x in OTHER_AXIS[rel]):
            cat = "other axis holds"
        else:
            cat = "none holds"
        # centre geometry (mean centre of the chosen groups; for groups use all members of X / Y)
        X, Y = c["X"], c["Y"]
        ax = np.mean([[(objs[i]["box"][0] + objs[i]["box"][2]) / 2, (objs[i]["box"][1] + objs[i]["box"][3]) / 2] for i in X], 0)
        ay = np.mean([[(objs[i]["box"][0] + objs[i]["box"][2]) / 2, (objs[i]["box"][1] + objs[i]["box"][3]) / 2] for i in Y], 0)
        dx, dy = ay[0] - ax[0], ay[1] - ax[1]  # NP2 relative to NP1
        # centre-based relation of NP1 w.r.t. NP2: NP1 left of NP2 if dx > 0
        centre_rel = (LEFT if dx > 0 else RIGHT) if abs(dx) >= abs(dy) else (ABOVE if dy > 0 else BELOW)
        # sign agreement only along REL's axis
        sign_ok = {LEFT: dx > 0, RIGHT: dx < 0, ABOVE: dy > 0, BELOW: dy < 0}[rel]
        # is there another partner Z (any other object description group) for which NP1 REL Z holds?
        ma, mb = c["ma"], c["mb"]
        descs = {}
        for i, o in enumerate(objs):
            descs.setdefault((o["shape"], o["colour"], o["size"]), []).append(i)
        keyA = (ma["shape"], ma["colour"], ma["size"])
        keyB = (mb["shape"], mb["colour"], mb["size"])
        alt_b = any(relation_true(objs, X, c["kx"], rel, [j for j in idx if j not in X], 1)
                    for k, idx in descs.items() if k != keyB for _ in [0] if [j for j in idx if j not in X])
        alt_a = any(relation_true(objs, [j for j in idx if j not in Y], 1, rel, Y, c["ky"])
                    for k, idx in descs.items() if k != keyA for _ in [0] if [j for j in idx if j not in Y])
        n_hold = sum(h.values())
        best = max(c["clear"].values())
        # attention at the relation word and NP2 shape word
        a_rel = att[c["wpos"]]
        a_np2 = att[mb["shape_word"]]
        a_np1 = att[ma["shape_word"]]

        def where(a):
            arg = int(np.argmax(a))
            cc = cell_centre(arg)
            if any(in_grown(objs[i], *cc) for i in Y):
                return "NP2"
            if any(in_grown(objs[i], *cc) for i in X):
                return "NP1"
            if any(in_grown(o, *cc) for o in objs):
                return "other obj"
            return "background"

        def mass(a, idx):
            return sum(a[k] for k in range(64) if any(in_grown(objs[i], *cell_centre(k)) for i in idx))

        # attention centroid at REL word relative to NP1 centre
        cs = np.array([cell_centre(k) for k in range(64)])
        cen = (a_rel[:, None] * cs).sum(0) / a_rel.sum()
        rel_cen_dir = {LEFT: cen[0] - ax[0], RIGHT: ax[0] - cen[0], ABOVE: cen[1] - ax[1], BELOW: ax[1] - cen[1]}[rel]
        ref_pairs = set()
        for ref in sc["refs"]:
            rms, rrs = parse(ref)
            for (ra, rr, rb, _) in rrs:
                A = (rms[ra]["shape"], rms[ra]["colour"], rms[ra]["size"])
                B = (rms[rb]["shape"], rms[rb]["colour"], rms[rb]["size"])
                ref_pairs.add((A, rr, B))
        pair_in_ref = any((p[0], p[2]) in ((keyA, keyB), (keyB, keyA)) for p in ref_pairs)
        same_in_ref = (keyA, rel, keyB) in ref_pairs or (keyB, OPP[rel], keyA) in ref_pairs
        rows.append(dict(path=r["path"], caption=r["caption"], rel=rel, holds=[q for q in range(4) if h[q]], clear=c["clear"], cat=cat, correct=h[rel], n_obj=len(objs),
                         group=(c["kx"] > 1 or c["ky"] > 1), same_shape=ma["shape"] == mb["shape"],
                         same_colour=ma["colour"] == mb["colour"], same_size=ma["size"] == mb["size"],
                         best=best, clear_rel=c["clear"][rel], n_hold=n_hold, centre_rel=centre_rel, sign_ok=sign_ok,
                         alt_b=alt_b, alt_a=alt_a, where_rel=where(a_rel), where_np2=where(a_np2),
                         where_np1=where(a_np1), mass_np2_at_np2=mass(a_np2, Y), mass_np1_at_rel=mass(a_rel, X),
                         mass_np2_at_rel=mass(a_rel, Y), rel_cen_dir=rel_cen_dir, pair_in_ref=pair_in_ref,
                         same_in_ref=same_in_ref, X=X, Y=Y, ma=ma, mb=mb, lp_rel=r["logprobs"][c["wpos"]]))


def tab(title, key, rows_=None, order=None):
    rows_ = rows if rows_ is None else rows_
    g = collections.defaultdict(list)
    for x in rows_:
        g[key(x)].append(x)
    print(f"\n### {title}\n")
    print("| group | clauses | REL holds (acc) | opposite holds | other axis holds | none holds |")
    print("|---|---:|---:|---:|---:|---:|")
    keys = order if order else sorted(g, key=str)
    for k in keys:
        v = g.get(k, [])
        if not v:
            continue
        cc = collections.Counter(x["cat"] for x in v)
        n = len(v)
        print(f"| {k} | {n} | {cc['REL holds']} ({cc['REL holds']/n:.3f}) | {cc['opposite holds']} | {cc['other axis holds']} | {cc['none holds']} |")


print(f"## {path}\n")
print(f"relation clauses emitted: {C['clauses']}; NP1 correctly named: {C['np1_ok']}; NP2: {C['np2_ok']}; both: {C['both_ok']}")
tab("all scored clauses", lambda x: "all")
tab("by stated relation", lambda x: RELNAMES[x["rel"]], order=RELNAMES)
tab("by number of objects in scene", lambda x: x["n_obj"])
tab("group (count) on either side", lambda x: "group" if x["group"] else "singles")
tab("NP1/NP2 same shape", lambda x: x["same_shape"])
tab("NP1/NP2 same colour", lambda x: x["same_colour"])
tab("NP1/NP2 same size", lambda x: x["same_size"])
tab("number of the 4 relations that hold for the pair", lambda x: x["n_hold"])
bins = [(-1, 0), (0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 1)]
tab("widest clearance of any relation for the pair (fraction of side; <0 = none holds)",
    lambda x: next(f"[{a},{b})" for a, b in bins if a <= x["best"] < b) if x["best"] < 1 else "big",
    order=[f"[{a},{b})" for a, b in bins])
tab("stated REL agrees in sign with NP2-NP1 centre offset along REL's axis", lambda x: x["sign_ok"])
tab("stated REL == centre-based relation (dominant axis, sign)", lambda x: x["centre_rel"] == x["rel"])
tab("pair (NP1,NP2) occurs as a related pair in some reference", lambda x: x["pair_in_ref"])
tab("attention argmax at REL word lies in", lambda x: x["where_rel"])
tab("attention argmax at NP2 shape word lies in", lambda x: x["where_np2"])
tab("attention argmax at NP1 shape word lies in", lambda x: x["where_np1"])
tab("attention centroid at REL word lies on REL's side of NP1 centre", lambda x: x["rel_cen_dir"] > 0)
wrong = [x for x in rows if not x["correct"]]
print(f"\n### wrong clauses ({len(wrong)}): is there another partner for which the stated relation holds?\n")
print(f"- NP1 REL Z holds for some other object description Z != NP2: {sum(x['alt_b'] for x in wrong)}")
print(f"- Z REL NP2 holds for some other Z != NP1: {sum(x['alt_a'] for x in wrong)}")
right = [x for x in rows if x["correct"]]
for nm, v in (("correct", right), ("wrong", wrong)):
    print(f"- {nm}: mean attention mass on NP2 at NP2 shape word {np.mean([x['mass_np2_at_np2'] for x in v]):.3f}; "
          f"mass on NP1 at REL word {np.mean([x['mass_np1_at_rel'] for x in v]):.3f}; mass on NP2 at REL word "
          f"{np.mean([x['mass_np2_at_rel'] for x in v]):.3f}; mean logprob of REL word {np.mean([x['lp_rel'] for x in v]):.3f}")
json.dump([{k: v for k, v in x.items() if k not in ("ma", "mb")} for x in rows],
          open(path.replace(".jsonl", "_clauses.json"), "w"), default=str)
if dump:
    print(f"\n### first {dump} wrong clauses\n")
    for x in wrong[:dump]:
        sc = scenes[x["path"]]
        print(f"{x['path']} [{x['cat']}] {x['caption']}")
        for i, o in enumerate(sc["objs"]):
            tag = "X" if i in x["X"] else "Y" if i in x["Y"] else " "
            b = [round(v * 64, 1) for v in o["box"]]
            print(f"   {tag} {i} {SIZES[o['size']]} {COLOURS[o['colour']]} {SHAPES[o['shape']]} box {b}")
        print(f"   refs: {' | '.join(' '.join(t) for t in sc['refs'][:2])}")
