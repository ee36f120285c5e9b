"""Mirror test: flip every held-out image horizontally (hflip) or vertically (vflip), mirror the
ground-truth boxes accordingly, caption, and score relations against the mirrored scenes.
Writes held_hflip/, held_vflip/ (dataset.json + images)."""
import json, os, copy, sys
from PIL import Image
d = json.load(open("held/dataset.json"))
for kind in ["hflip", "vflip"]:
    out = f"held_{kind}"
    os.makedirs(f"{out}/images", exist_ok=True)
    dd = copy.deepcopy(d)
    for im in dd["images"]:
        img = Image.open(f"held/images/{im['filename']}")
        img = img.transpose(Image.FLIP_LEFT_RIGHT if kind == "hflip" else Image.FLIP_TOP_BOTTOM)
        img.save(f"{out}/images/{im['filename']}")
        W = im["width"]
        for o in im["objects"]:
            if kind == "hflip":
                x0, y0, x1, y1 = o["bbox"]; o["bbox"] = [round(W - x1, 2), y0, round(W - x0, 2), y1]
                x0, y0, x1, y1 = o["bbox_norm"]; o["bbox_norm"] = [float("%.9g" % (1 - x1)), y0, float("%.9g" % (1 - x0)), y1]
                o["cx"] = round(W - o["cx"], 2)
            else:
                x0, y0, x1, y1 = o["bbox"]; o["bbox"] = [x0, round(W - y1, 2), x1, round(W - y0, 2)]
                x0, y0, x1, y1 = o["bbox_norm"]; o["bbox_norm"] = [x0, float("%.9g" % (1 - y1)), x1, float("%.9g" % (1 - y0))]
                o["cy"] = round(W - o["cy"], 2)
        sw = {"left": "right", "right": "left"} if kind == "hflip" else {"above": "below", "below": "above", "over": "under", "under": "over"}
        for s in im["sentences"]:
            s["tokens"] = [sw.get(t, t) for t in s["tokens"]]
            s["raw"] = " ".join(s["tokens"])
    json.dump(dd, open(f"{out}/dataset.json", "w"))
