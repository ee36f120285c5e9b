#!/usr/bin/python3
"""bench/photo_set.py — a Flickr8k-sized stand-in for timing: N synthetic
500 x 375 JPEG photographs (smooth random colour fields with noise, about
the size of a Flickr JPEG) and a Karpathy-split dataset.json with five
random captions each over a 2,000-word vocabulary (Flickr8k's split:
6,000 / 1,000 / 1,000 when N = 8,000). For measuring the feature cache and
decoder epochs (README, "Captioning photographs"); not for training.

usage: bench/photo_set.py N OUTDIR [--seed S]
"""
import argparse
import json
import os

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    words = [f"w{i}" for i in range(2000)]
    n_val = n_test = a.n // 8
    images = []
    for i in range(a.n):
        low = rng.random((6, 8, 3)) * 255
        img = Image.fromarray(low.astype(np.uint8)).resize((500, 375), Image.BICUBIC)
        px = np.asarray(img, dtype=np.float32) + rng.normal(0, 12, (375, 500, 3))
        name = f"{i:06d}.jpg"
        Image.fromarray(px.clip(0, 255).astype(np.uint8)).save(os.path.join(a.out, "images", name), quality=90)
        split = "val" if i < n_val else "test" if i < n_val + n_test else "train"
        sents = []
        for _ in range(5):
            toks = [words[int(k)] for k in rng.zipf(1.3, int(rng.integers(8, 16))) % len(words)]
            sents.append({"tokens": toks, "raw": " ".join(toks)})
        images.append({"filename": name, "filepath": "images", "split": split, "imgid": i, "sentences": sents})
    with open(os.path.join(a.out, "dataset.json"), "w") as f:
        json.dump({"dataset": "photo_set", "images": images}, f)


if __name__ == "__main__":
    main()
