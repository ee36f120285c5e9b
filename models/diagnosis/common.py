"""Python re-implementation of imcap's caption parser (src/eval/caption_parse.c),
relation rule (src/data/synth.c) and object/relation scoring (src/eval/objects.c),
for per-clause diagnosis. Verified against `imcap eval` totals by check_scorer.py."""
import json
import numpy as np

SHAPES = ["circle", "square", "triangle", "star", "cross", "ring", "diamond"]
PLURALS = ["circles", "squares", "triangles", "stars", "crosses", "rings", "diamonds"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SIZES = ["small", "large"]
COUNTS = ["one", "two", "three", "four"]
LEFT, RIGHT, ABOVE, BELOW = 0, 1, 2, 3
RELNAMES = ["left", "right", "above", "below"]
OPP = {LEFT: RIGHT, RIGHT: LEFT, ABOVE: BELOW, BELOW: ABOVE}
OTHER_AXIS = {LEFT: (ABOVE, BELOW), RIGHT: (ABOVE, BELOW), ABOVE: (LEFT, RIGHT), BELOW: (LEFT, RIGHT)}
GAP = 0.03


def f32(x):
    return float(np.float32(x))


def shape_word(w):
    if w in SHAPES:
        return SHAPES.index(w), False
    if w in PLURALS:
        return PLURALS.index(w), True
    return -1, False


def rel_word(w):
    if w == "left":
        return LEFT
    if w == "right":
        return RIGHT
    if w in ("above", "over"):
        return ABOVE
    if w in ("below", "under", "beneath"):
        return BELOW
    return -1


def parse(words):
    """mentions: dicts shape, colour, size, count, first_word, shape_word;
    relations: (a, rel, b, rel_word_pos)"""
    ms, rs = [], []
    prev = -1
    for k, w in enumerate(words):
        shape, plural = shape_word(w)
        if shape < 0:
            continue
        size = colour = -1
        count = 0
        j = k - 1
        while j >= 0:
            v = words[j]
            if v in SIZES:
                if size < 0:
                    size = SIZES.index(v)
            elif v in COLOURS:
                if colour < 0:
                    colour = COLOURS.index(v)
            elif v in COUNTS:
                if count == 0:
                    count = COUNTS.index(v) + 1
            else:
                break
            j -= 1
        if count == 0:
            count = 2 if plural else 1
        if len(ms) == 64:  # IMCAP_CAPTION_MAX_MENTIONS
            continue
        m = dict(shape=shape, colour=colour, size=size, count=count, first_word=j + 1, shape_word=k)
        if prev >= 0:
            for wpos in range(ms[prev]["shape_word"] + 1, j + 1):
                r = rel_word(words[wpos])
                if r >= 0:
                    rs.append((prev, r, len(ms), wpos))
                    break
        ms.append(m)
        prev = len(ms) - 1
    return ms, rs


class _ByFileName(dict):
    """Scenes by image file name: a caption file's "path" (held/images/000123.png) finds its scene."""

    def __getitem__(self, path):
        return dict.__getitem__(self, path.rsplit("/", 1)[-1])


def load_scenes(path):
    """Scenes by file name; .dataset is the parsed data set, for scripts that rewrite it."""
    d = json.load(open(path))
    scenes = _ByFileName()
    scenes.dataset = d
    for im in d["images"]:
        objs = []
        for o in im["objects"]:
            b = [f32(v) for v in o["bbox_norm"]]
            objs.append(dict(shape=SHAPES.index(o["shape"]), colour=COLOURS.index(o["colour"]),
                             size=SIZES.index(o["size"]), box=b, cx=o["cx"], cy=o["cy"]))
        scenes[im["filename"]] = dict(objs=objs, refs=[s["tokens"] for s in im["sentences"]], imgid=im["imgid"],
                                      mentions=im.get("mentions"))
    return scenes


def gap(a, rel, b):
    """imcap_synth_relation_gap: a, b = [x0,y0,x1,y1]"""
    if rel == LEFT:
        return b[0] - a[2] - GAP
    if rel == RIGHT:
        return a[0] - b[2] - GAP
    if rel == ABOVE:
        return b[1] - a[3] - GAP
    return a[1] - b[3] - GAP


def holds(a, rel, b):
    return gap(a, rel, b) >= 0.0


def same_desc(o, m):
    return o["shape"] == m["shape"] and o["colour"] == m["colour"] and o["size"] == m["size"]


def desc_mask(objs, m):
    return [i for i, o in enumerate(objs) if same_desc(o, m)]


def subsets(idx, k):
    from itertools import combinations
    return list(combinations(idx, k))


def relation_true(objs, X, kx, rel, Y, ky):
    for a in subsets(X, kx):
        for b in subsets(Y, ky):
            if set(a) & set(b):
                continue
            if all(holds(objs[i]["box"], rel, objs[j]["box"]) for i in a for j in b):
                return True
    return False


def best_clearance(objs, X, kx, rel, Y, ky):
    """max over subset choices of min pairwise gap (>=0 iff relation_true)"""
    best = -9.0
    for a in subsets(X, kx):
        for b in subsets(Y, ky):
            if set(a) & set(b):
                continue
            g = min(gap(objs[i]["box"], rel, objs[j]["box"]) for i in a for j in b)
            best = max(best, g)
    return best


def in_grown(o, cx, cy, gh=8, gw=8):
    b = o["box"]
    return b[0] - 1.0 / gw <= cx <= b[2] + 1.0 / gw and b[1] - 1.0 / gh <= cy <= b[3] + 1.0 / gh


def cell_centre(cell, gh=8, gw=8):
    return ((cell % gw + 0.5) / gw, (cell // gw + 0.5) / gh)


def score(objs, words, att=None, gh=8, gw=8):
    """Replicates imcap_object_stats_add. Returns (stats dict, mentions, took, mine, clauses)
    where clauses = list of scored relation clauses with details."""
    ms, rs = parse(words)
    taken = set()
    took, mine_l = [], []
    tp = fp = 0
    for m in ms:
        avail = [i for i in desc_mask(objs, m) if i not in taken]
        t = min(len(avail), m["count"])
        took.append(t)
        tp += t
        fp += m["count"] - t
        mine = []
        if t > 0:
            arg = None
            if att is not None:
                arg = int(np.argmax(att[m["shape_word"]]))
            need = t
            passes = [0, 1] if arg is not None else [1]
            for p in passes:
                for o in range(len(objs)):
                    if not need:
                        break
                    if o not in avail or o in mine:
                        continue
                    if p == 0 and not in_grown(objs[o], *cell_centre(arg, gh, gw), gh, gw):
                        continue
                    mine.append(o)
                    need -= 1
            taken |= set(mine)
        mine_l.append(mine)
    fn = len(objs) - len(taken)
    clauses = []
    for (a, rel, b, wpos) in rs:
        ma, mb = ms[a], ms[b]
        c = dict(a=a, b=b, rel=rel, wpos=wpos, ma=ma, mb=mb, a_ok=took[a] > 0, b_ok=took[b] > 0)
        if took[a] and took[b]:
            X, Y = desc_mask(objs, ma), desc_mask(objs, mb)
            kx, ky = min(ma["count"], len(X)), min(mb["count"], len(Y))
            c.update(X=X, Y=Y, kx=kx, ky=ky)
            c["holds"] = {r: relation_true(objs, X, kx, r, Y, ky) for r in range(4)}
            c["clear"] = {r: best_clearance(objs, X, kx, r, Y, ky) for r in range(4)}
            c["correct"] = c["holds"][rel]
        clauses.append(c)
    return dict(tp=tp, fp=fp, fn=fn), ms, took, mine_l, clauses
