"""A numpy re-implementation of the imcap model (docs/model-format.md: preprocessing, encoder,
soft-attention decoder), used for teacher-forced probes and interventions on the annotation
vectors. Checked against `imcap caption --trace` by check_npmodel.py."""
import json, struct
import numpy as np
from PIL import Image


class Model:
    def __init__(self, path=__import__("os").environ.get("MODEL", "models/default.safetensors")):
        b = open(path, "rb").read()
        n = struct.unpack("<Q", b[:8])[0]
        h = json.loads(b[8:8 + n])
        self.meta = h.pop("__metadata__")
        self.T = {}
        for k, v in h.items():
            s, e = v["data_offsets"]
            self.T[k] = np.frombuffer(b[8 + n + s: 8 + n + e], dtype=np.float32).reshape(v["shape"]).astype(np.float64)
        self.cfg = json.loads(self.meta["imcap.config"])
        self.vocab = json.loads(self.meta["imcap.vocab"])
        self.id = {w: i for i, w in enumerate(self.vocab)}

    def preprocess(self, png):
        im = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
        x = (im / 255.0 - np.array(self.cfg["mean"])) / np.array(self.cfg["std"])
        return np.transpose(x, (2, 0, 1)).astype(np.float32).astype(np.float64)

    def encode(self, x):
        i = 0
        for l in self.cfg["encoder"]:
            t = l["type"]
            if t == "conv":
                W, bb = self.T[f"encoder.{i}.weight"], self.T[f"encoder.{i}.bias"]
                C, H, Wd = x.shape
                p = l["pad"]
                xp = np.pad(x, ((0, 0), (p, p), (p, p)))
                k = l["kernel"]
                cols = np.stack([xp[:, dy:dy + H, dx:dx + Wd] for dy in range(k) for dx in range(k)], 1)  # C,k*k,H,W
                x = np.tensordot(W.reshape(W.shape[0], C * k * k), cols.reshape(C * k * k, H * Wd), 1).reshape(-1, H, Wd) + bb[:, None, None]
            elif t == "relu":
                x = np.maximum(x, 0)
            elif t == "maxpool":
                C, H, Wd = x.shape
                k = l["kernel"]
                x = x[:, :H // k * k, :Wd // k * k].reshape(C, H // k, k, Wd // k, k).max((2, 4))
            elif t == "coords":
                C, H, Wd = x.shape
                xs = np.tile(2 * (np.arange(Wd) + 0.5) / Wd - 1, (H, 1))
                ys = np.tile((2 * (np.arange(H) + 0.5) / H - 1)[:, None], (1, Wd))
                x = np.concatenate([x, xs[None], ys[None]], 0)
            i += 1
        D, H, Wd = x.shape
        return x.reshape(D, H * Wd).T  # [L, D]

    def lin(self, name, v):
        return v @ self.T[name + ".weight"].T + self.T[name + ".bias"]

    def init(self, a):
        abar = a.mean(0)
        return np.tanh(self.lin("decoder.init_h", abar)), np.tanh(self.lin("decoder.init_c", abar))

    def step(self, a, p, y_prev, h, c, override_alpha=None):
        e = self.lin("decoder.attention.full_att", np.tanh(p + self.lin("decoder.attention.decoder_att", h)))[:, 0]
        alpha = np.exp(e - e.max())
        alpha /= alpha.sum()
        if override_alpha is not None:
            alpha = override_alpha
        gate = 1 / (1 + np.exp(-self.lin("decoder.f_beta", h)))
        if getattr(self, "gate_override", None):
            gate = gate.copy()
            for ch, v in self.gate_override.items():
                gate[ch] = v
        z = gate * (alpha @ a)
        xin = np.concatenate([self.T["decoder.embedding.weight"][y_prev], z])
        g = xin @ self.T["decoder.lstm.weight_ih"].T + self.T["decoder.lstm.bias_ih"] + h @ self.T["decoder.lstm.weight_hh"].T + self.T["decoder.lstm.bias_hh"]
        Hd = h.shape[0]
        i_, f_, g_, o_ = g[:Hd], g[Hd:2 * Hd], g[2 * Hd:3 * Hd], g[3 * Hd:]
        sig = lambda v: 1 / (1 + np.exp(-v))
        c = sig(f_) * c + sig(i_) * np.tanh(g_)
        h = sig(o_) * np.tanh(c)
        logits = self.lin("decoder.fc", h)
        return logits, alpha, h, c

    def teacher_force(self, a, tokens):
        """tokens: word ids y_1..y_T. Returns per-step logits (predicting y_t) and alphas."""
        p = self.lin("decoder.attention.encoder_att", a)
        h, c = self.init(a)
        prev = self.id["<start>"]
        L, A = [], []
        for y in tokens:
            logits, alpha, h, c = self.step(a, p, prev, h, c)
            L.append(logits)
            A.append(alpha)
            prev = y
        return np.array(L), np.array(A)

    def greedy(self, a, max_len=24):
        p = self.lin("decoder.attention.encoder_att", a)
        h, c = self.init(a)
        prev = self.id["<start>"]
        out = []
        for _ in range(max_len):
            logits, alpha, h, c = self.step(a, p, prev, h, c)
            prev = int(np.argmax(logits))
            out.append(prev)
            if prev == self.id["<end>"]:
                break
        return [self.vocab[t] for t in out]
