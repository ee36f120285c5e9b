"""f_beta gate on the x (64) and y (65) channels at every decoding step of the greedy captions of
the first 200 held-out scenes, by the word emitted at that step."""
import collections
import numpy as np
from npmodel import Model
m = Model()
by = collections.defaultdict(list)
for k in range(200):
    a = m.encode(m.preprocess(f"held/images/{k:06d}.png"))
    p = m.lin("decoder.attention.encoder_att", a)
    h, c = m.init(a); prev = m.id["<start>"]
    for _ in range(24):
        g = 1 / (1 + np.exp(-m.lin("decoder.f_beta", h)))
        logits, al, h, c = m.step(a, p, prev, h, c); prev = int(np.argmax(logits))
        w = m.vocab[prev]
        cls = w if w in ("left", "right", "above", "below", "over", "under", "to", "the", "of", "and", "a", "<end>", "is", "are", "two") else \
            "size" if w in ("small", "large") else "colour" if w in ("red","green","blue","yellow","purple","orange","white","black") else \
            "shape" if w.rstrip("s") in ("circle","square","triangle","star","cross","ring","diamond","crosse") else "other"
        by[cls].append((g[64], g[65], g[:64].mean()))
        if prev == m.id["<end>"]: break
print("| word emitted | steps | gate x mean | gate y mean | gate CNN channels mean |\n|---|---:|---:|---:|---:|")
for k, v in sorted(by.items(), key=lambda kv: -len(kv[1])):
    v = np.array(v)
    print(f"| {k} | {len(v)} | {v[:,0].mean():.3f} | {v[:,1].mean():.3f} | {v[:,2].mean():.3f} |")
