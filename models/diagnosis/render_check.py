"""Do rendered pixels sit where the ground-truth boxes say?  For each object: the fraction of
pixels of its colour (within 45 levels per channel of the base colour) inside its bbox, inside the
bbox mirrored in x, and mirrored in y."""
import json, numpy as np
from PIL import Image
base = {"red": (215, 35, 35), "green": (40, 170, 60), "blue": (35, 75, 220), "yellow": (240, 215, 40),
        "purple": (140, 50, 190), "orange": (250, 135, 20), "white": (245, 245, 245), "black": (22, 22, 22)}
d = json.load(open("held/dataset.json"))
res = {"box": [], "x-mirrored box": [], "y-mirrored box": []}
for im in d["images"][:300]:
    px = np.asarray(Image.open("held/images/" + im["filename"]).convert("RGB")).astype(int)
    for o in im["objects"]:
        mask = (np.abs(px - np.array(base[o["colour"]])).max(2) < 45)
        tot = mask.sum()
        if tot == 0: continue
        x0, y0, x1, y1 = o["bbox"]
        def frac(x0, y0, x1, y1):
            return mask[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))].sum() / tot
        res["box"].append(frac(x0, y0, x1, y1))
        res["x-mirrored box"].append(frac(64 - x1, y0, 64 - x0, y1))
        res["y-mirrored box"].append(frac(x0, 64 - y1, x1, 64 - y0))
for k, v in res.items():
    print(f"{k}: mean fraction of the colour's pixels inside = {np.mean(v):.3f} over {len(v)} objects")
