#!/usr/bin/python3
"""bench/torch_ref.py — imcap's network in PyTorch, on the same weights.

A second implementation of docs/model-format.md for the side-by-side
benchmark (bench/compare.py, bench/run.sh): the encoder as nn.Conv2d / ReLU /
MaxPool2d / coordinate channels, the decoder as nn.Embedding / nn.Linear /
nn.LSTMCell and the soft attention, greedy and beam search exactly as the
spec's Decoding section, one image at a time or many images at once (every
image's live hypotheses stacked into one matrix per step).

    /usr/bin/python3 bench/torch_ref.py caption [--model M] [--beam K] IMAGE...
    /usr/bin/python3 bench/torch_ref.py batch [--model M] [--beam K] [--chunk N] [--variant V] DIR|FILE...

`caption` prints `PATH<TAB>caption` per image (one image at a time, eager),
as `imcap caption` does; `batch` captions every PNG/JPEG under the DIRs in
sorted path order with the batched folder mode and prints the same lines
(the time on stderr). Both run on one thread (torch.set_num_threads(1)).

The model file is read with struct + json + numpy (no safetensors package);
the module tree is named like the tensors, so load_state_dict(strict=True)
checks every name and shape. Needs Debian's python3-torch, python3-numpy and
python3-pil (scripts/setup.sh --bench-deps).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import reference_numpy  # noqa: E402  the model file reader, one copy for the project
from torch import nn

PAD, START, END, UNK = 0, 1, 2, 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "default.safetensors")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pnm", ".ppm", ".pgm", ".tga")

# Inference variants tried for every row; the best one is reported. "+ofi" is
# torch.jit.optimize_for_inference: freeze, then oneDNN (MKL-DNN) layouts for
# the convolutions (which PyTorch 1.13 otherwise runs through im2col + BLAS
# for a single small image).
VARIANTS = ["eager", "trace", "script", "trace+freeze", "script+freeze", "trace+ofi", "script+ofi"]


# ------------------------------------------------------------------ model file

def read_safetensors(path):
    """(metadata, {name: float32 numpy array}): the project's reader
    (scripts/reference_numpy.py, which widens to float64), narrowed back."""
    meta, tensors = reference_numpy.read_safetensors(path)
    return meta, {name: t.astype(np.float32) for name, t in tensors.items()}


# ------------------------------------------------------------------ network

class Coords(nn.Module):
    """Appends x = 2 (j + 0.5) / W - 1 and y = 2 (i + 0.5) / H - 1 channels."""

    def __init__(self, H, W):
        super().__init__()
        xs = torch.tensor([2 * (j + 0.5) / W - 1 for j in range(W)], dtype=torch.float32)
        ys = torch.tensor([2 * (i + 0.5) / H - 1 for i in range(H)], dtype=torch.float32)
        xy = torch.stack([xs.unsqueeze(0).expand(H, W), ys.unsqueeze(1).expand(H, W)]).contiguous()
        self.register_buffer("xy", xy, persistent=False)

    def forward(self, x):
        return torch.cat([x, self.xy.unsqueeze(0).expand(x.shape[0], -1, -1, -1)], 1)


class Attention(nn.Module):
    def __init__(self, D, Hd, A):
        super().__init__()
        self.encoder_att = nn.Linear(D, A)
        self.decoder_att = nn.Linear(Hd, A)
        self.full_att = nn.Linear(A, 1)


class Decoder(nn.Module):
    __constants__ = ["deep"]  # TorchScript then compiles only the branch the model uses

    def __init__(self, V, E, D, Hd, A, deep=False):
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        self.init_h = nn.Linear(D, Hd)
        self.init_c = nn.Linear(D, Hd)
        self.attention = Attention(D, Hd, A)
        self.f_beta = nn.Linear(Hd, D)
        self.lstm = nn.LSTMCell(E + D, Hd)  # gate order i, f, g, o, as the spec
        self.deep = deep
        if deep:  # format 2's deep output layer
            self.deep_h = nn.Linear(Hd, E)
            self.deep_z = nn.Linear(D, E)
        self.fc = nn.Linear(E if deep else Hd, V)

    def fc_input(self, h, z, emb):
        """What fc reads: h, or with the deep output layer tanh(deep_h(h) + deep_z(z) + E y)."""
        if not self.deep:
            return h
        return torch.tanh(self.deep_h(h) + self.deep_z(z) + emb)


class Net(nn.Module):
    """Module names = tensor names of the model file."""

    def __init__(self, cfg, V):
        super().__init__()
        layers, C, S = [], 3, cfg["image_size"]
        for layer in cfg["encoder"]:
            ty = layer["type"]
            if ty == "conv":
                layers.append(nn.Conv2d(C, layer["out"], layer["kernel"], layer["stride"], layer["pad"]))
                C, S = layer["out"], (S + 2 * layer["pad"] - layer["kernel"]) // layer["stride"] + 1
            elif ty == "relu":
                layers.append(nn.ReLU())
            elif ty == "maxpool":
                layers.append(nn.MaxPool2d(layer["kernel"], layer["stride"]))
                S = (S - layer["kernel"]) // layer["stride"] + 1
            elif ty == "coords":
                layers.append(Coords(S, S))
                C += 2
            else:
                raise ValueError(f"unknown encoder layer type {ty!r}")
        self.encoder = nn.Sequential(*layers)
        self.D, self.H, self.W = C, S, S
        self.L = S * S
        self.decoder = Decoder(V, cfg["embed_dim"], C, cfg["hidden_dim"], cfg["attention_dim"],
                               cfg.get("output", "linear") == "deep")


class Model:
    """The loaded model: config, vocabulary, the network and the constants of
    preprocessing."""

    def __init__(self, path=DEFAULT_MODEL):
        meta, tensors = read_safetensors(path)
        if meta.get("imcap.format") not in ("1", "2"):
            raise ValueError(f"{path}: not an imcap model (imcap.format {meta.get('imcap.format')!r})")
        # the in-domain statistics (format 2) change no caption: not part of the network
        tensors = {k: v for k, v in tensors.items() if not k.startswith("stats.")}
        self.path = path
        self.cfg = json.loads(meta["imcap.config"])
        self.vocab = json.loads(meta["imcap.vocab"])
        self.V = len(self.vocab)
        self.S = self.cfg["image_size"]
        self.max_length = self.cfg["max_length"]
        self.net = Net(self.cfg, self.V)
        self.net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
        self.net.eval()
        for prm in self.net.parameters():
            prm.requires_grad_(False)
        self.L, self.D = self.net.L, self.net.D
        self.Hd, self.A, self.E = self.cfg["hidden_dim"], self.cfg["attention_dim"], self.cfg["embed_dim"]
        # x = (p / 255 - mean[c]) / std[c] in float32, as a table per channel
        p = np.arange(256, dtype=np.float32) / np.float32(255.0)
        mean = np.asarray(self.cfg["mean"], np.float32)
        std = np.asarray(self.cfg["std"], np.float32)
        self.lut = torch.from_numpy(np.stack([(p - mean[c]) / std[c] for c in range(3)]).astype(np.float32))

    # -- preprocessing
    def load_rgb(self, path):
        """8-bit RGB [S, S, 3] of an image file, resized as the spec says."""
        from PIL import Image
        with Image.open(path) as im:
            im = im.convert("RGB")  # grey replicated, alpha dropped, palette expanded
            if im.size != (self.S, self.S):
                im = im.resize((self.S, self.S), Image.BILINEAR)
            return np.array(im, dtype=np.uint8)

    def to_input(self, rgb):
        """uint8 [B, S, S, 3] (numpy or tensor) -> float32 [B, 3, S, S]."""
        t = torch.as_tensor(rgb).long()
        return torch.stack([self.lut[c][t[..., c]] for c in range(3)], 1)

    def text(self, tokens):
        toks = tokens[:-1] if tokens and tokens[-1] == END else tokens
        return " ".join(self.vocab[t] for t in toks)


# ------------------------------------------------------------------ the pieces that are timed

class Encode(nn.Module):
    """CNN, annotation vectors and the decoder's per-image preparation:
    x [B,3,S,S] -> a [B,L,D], p = encoder_att(a) [B,L,A], h0, c0 [B,Hd]."""

    def __init__(self, net):
        super().__init__()
        self.cnn = net.encoder
        self.encoder_att = net.decoder.attention.encoder_att
        self.init_h = net.decoder.init_h
        self.init_c = net.decoder.init_c

    def forward(self, x):
        a = self.cnn(x).flatten(2).transpose(1, 2).contiguous()
        abar = a.mean(1)
        return a, self.encoder_att(a), torch.tanh(self.init_h(abar)), torch.tanh(self.init_c(abar))


class _Step(nn.Module):
    """The decoder's modules, shared by the two step shapes below."""

    def __init__(self, net):
        super().__init__()
        d = net.decoder
        self.embedding, self.decoder_att, self.full_att = d.embedding, d.attention.decoder_att, d.attention.full_att
        self.f_beta, self.lstm, self.fc, self.dec = d.f_beta, d.lstm, d.fc, d


class StepShared(_Step):
    """One decoder step for N rows of ONE image (beam search on one image):
    tokens [N], h, c [N,Hd], a [L,D], p [L,A] -> h, c, logits [N,V], alpha [N,L]."""

    def forward(self, tokens, h, c, a, p):
        q = self.decoder_att(h)
        e = self.full_att(torch.tanh(p.unsqueeze(0) + q.unsqueeze(1))).squeeze(2)
        alpha = torch.softmax(e, 1)
        z = torch.sigmoid(self.f_beta(h)) * torch.mm(alpha, a)
        emb = self.embedding(tokens)
        h2, c2 = self.lstm(torch.cat([emb, z], 1), (h, c))
        return h2, c2, self.fc(self.dec.fc_input(h2, z, emb)), alpha


class StepRows(_Step):
    """One decoder step for N rows, each with its own image (many images at
    once): a [N,L,D], p [N,L,A]."""

    def forward(self, tokens, h, c, a, p):
        q = self.decoder_att(h)
        e = self.full_att(torch.tanh(p + q.unsqueeze(1))).squeeze(2)
        alpha = torch.softmax(e, 1)
        z = torch.sigmoid(self.f_beta(h)) * torch.bmm(alpha.unsqueeze(1), a).squeeze(1)
        emb = self.embedding(tokens)
        h2, c2 = self.lstm(torch.cat([emb, z], 1), (h, c))
        return h2, c2, self.fc(self.dec.fc_input(h2, z, emb)), alpha


def compile_module(mod, variant, example):
    """mod as one of VARIANTS: eager, torch.jit.trace / torch.jit.script,
    optionally torch.jit.freeze'd (eval mode, parameters folded in) or
    torch.jit.optimize_for_inference'd (frozen, then oneDNN rewrites)."""
    mod = mod.eval()
    if variant == "eager":
        return mod
    with torch.no_grad():
        if variant.startswith("trace"):
            sm = torch.jit.trace(mod, example, check_trace=False)
        elif variant.startswith("script"):
            sm = torch.jit.script(mod)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        if variant.endswith("+freeze"):
            sm = torch.jit.freeze(sm)
        elif variant.endswith("+ofi"):
            sm = torch.jit.optimize_for_inference(sm)
    return sm


class Engine:
    """The encoder and both step modules of a model in one variant."""

    def __init__(self, model, variant="eager"):
        self.m, self.variant = model, variant
        m = model
        S, L, D, A, Hd = m.S, m.L, m.D, m.A, m.Hd
        g = torch.Generator().manual_seed(5)
        x = torch.randn(2, 3, S, S, generator=g)
        tok = torch.tensor([START, 4 % m.V])
        h, c = torch.randn(2, Hd, generator=g), torch.randn(2, Hd, generator=g)
        a, p = torch.randn(2, L, D, generator=g), torch.randn(2, L, A, generator=g)
        self.encode = compile_module(Encode(m.net), variant, (x,))
        self.step1 = compile_module(StepShared(m.net), variant, (tok, h, c, a[0], p[0]))
        self.stepn = compile_module(StepRows(m.net), variant, (tok, h, c, a, p))
        if variant != "eager":  # the profiling executor specialises on the first calls
            with torch.inference_mode():
                for n in (1, 3, 2, 1):
                    self.encode(x[:1].expand(n, -1, -1, -1).contiguous())
                    self.step1(tok[:1].expand(n), h[:1].expand(n, -1), c[:1].expand(n, -1), a[0], p[0])
                    self.stepn(tok[:1].expand(n), h[:1].expand(n, -1), c[:1].expand(n, -1),
                               a[:1].expand(n, -1, -1), p[:1].expand(n, -1, -1))

    def check_against(self, ref, tol=1e-4):
        """Max relative difference of this variant's outputs from ref's (an
        eager Engine) on random inputs; raises when above tol."""
        m = self.m
        g = torch.Generator().manual_seed(11)
        worst = 0.0
        with torch.inference_mode():
            for n in (1, 3, 5):
                x = torch.randn(n, 3, m.S, m.S, generator=g)
                outs = [self.encode(x), ref.encode(x)]
                a, p, h, c = outs[1]
                tok = torch.randint(0, m.V, (n,), generator=g)
                outs += [self.step1(tok, h, c, a[0], p[0]), ref.step1(tok, h, c, a[0], p[0])]
                outs += [self.stepn(tok, h, c, a, p), ref.stepn(tok, h, c, a, p)]
                for mine, theirs in zip(outs[0::2], outs[1::2]):
                    for u, v in zip(mine, theirs):
                        d = ((u - v).abs() / v.abs().clamp(min=1)).max().item()
                        worst = max(worst, d)
        if not worst <= tol:
            raise RuntimeError(f"variant {self.variant}: outputs differ from eager by {worst:.3g}")
        return worst


# ------------------------------------------------------------------ decoding, one image

def greedy_one(eng, x, max_length):
    """The spec's greedy search on one preprocessed image x [1,3,S,S]."""
    a, p, h, c = eng.encode(x)
    a, p = a[0], p[0]
    tok = torch.full((1,), START, dtype=torch.long)
    out = []
    for _ in range(max_length):
        h, c, logits, _ = eng.step1(tok, h, c, a, p)
        tok = torch.argmax(logits, 1)  # the first maximum: lowest id on a tie
        y = int(tok)
        out.append(y)
        if y == END:
            break
    return out


def beam_one(eng, x, k, max_length):
    """The spec's beam search on one image, batched over its live hypotheses.
    Returns the best hypothesis's tokens (<end> included when finished)."""
    V = eng.m.V
    a, p, h, c = eng.encode(x)
    a, p = a[0], p[0]
    tok = torch.full((1,), START, dtype=torch.long)
    seqs, scores = [[]], torch.zeros(1, dtype=torch.float64)
    done = []  # (score, tokens) in the order they finished
    width = k
    for _ in range(max_length):
        if width == 0:
            break
        h2, c2, logits, _ = eng.step1(tok, h, c, a, p)
        cand = (scores.unsqueeze(1) + torch.log_softmax(logits, 1).double()).flatten()
        # higher score first, ties to the lower parent_rank * V + token
        sc, idx = torch.sort(cand, stable=True, descending=True)
        sc, idx = sc[:width].tolist(), idx[:width].tolist()
        new_seqs, parents, new_scores, new_toks = [], [], [], []
        for s, i in zip(sc, idx):
            r, v = divmod(i, V)
            if v == END:
                done.append((s, seqs[r] + [v]))
                width -= 1
            else:
                new_seqs.append(seqs[r] + [v])
                parents.append(r)
                new_scores.append(s)
                new_toks.append(v)
        if not parents:
            seqs = []
            break
        rows = torch.tensor(parents)
        h, c = h2.index_select(0, rows), c2.index_select(0, rows)
        tok = torch.tensor(new_toks)
        seqs, scores = new_seqs, torch.tensor(new_scores, dtype=torch.float64)
    for s, seq in zip(scores.tolist(), seqs):  # live ones join without <end>
        done.append((s, seq))
    best = done[0]
    for d in done[1:]:
        if d[0] > best[0]:  # a tie goes to the one finished first
            best = d
    return best[1]


def caption_one(eng, rgb, beam, max_length=None):
    """Tokens for one decoded uint8 image [S,S,3] (already at image_size)."""
    m = eng.m
    T = max_length or m.max_length
    x = m.to_input(rgb[None])
    return greedy_one(eng, x, T) if beam == 1 else beam_one(eng, x, beam, T)


# ------------------------------------------------------------------ decoding, many images at once

def encode_many(eng, X, enc_batch):
    parts = [eng.encode(X[i:i + enc_batch]) for i in range(0, X.shape[0], enc_batch)]
    return [torch.cat([q[j] for q in parts]) for j in range(4)]


def greedy_many(eng, X, chunk=None, enc_batch=32, max_length=None):
    """Greedy over images X [n,3,S,S]: every live image's row in one matrix per
    step; finished rows leave the matrix. Returns a list of token lists."""
    n = X.shape[0]
    T = max_length or eng.m.max_length
    chunk = chunk or n
    out = torch.zeros(n, T, dtype=torch.long)
    length = torch.full((n,), T, dtype=torch.long)
    for s in range(0, n, chunk):
        a, p, h, c = encode_many(eng, X[s:s + chunk], enc_batch)
        ids = torch.arange(s, s + a.shape[0])
        tok = torch.full((a.shape[0],), START, dtype=torch.long)
        for t in range(T):
            h, c, logits, _ = eng.stepn(tok, h, c, a, p)
            tok = torch.argmax(logits, 1)
            out[ids, t] = tok
            fin = tok == END
            if bool(fin.any()):
                length[ids[fin]] = t + 1
                keep = torch.nonzero(~fin).squeeze(1)
                if keep.numel() == 0:
                    break
                ids, tok, h, c = ids[keep], tok[keep], h[keep], c[keep]
                a, p = a.index_select(0, keep), p.index_select(0, keep)
    return [out[i, :length[i]].tolist() for i in range(n)]


def beam_many(eng, X, k, chunk=None, enc_batch=32, max_length=None):
    """The spec's beam search over images X [n,3,S,S], every image's live
    hypotheses stacked into one matrix per step (rows grouped by image, in
    rank order), selection vectorised over images."""
    m = eng.m
    n, V = X.shape[0], m.V
    T = max_length or m.max_length
    chunk = chunk or n
    NEG = float("-inf")
    best_score = torch.full((n,), NEG, dtype=torch.float64)
    best_tok = torch.zeros(n, T, dtype=torch.long)
    best_len = torch.zeros(n, dtype=torch.long)
    ar_k = torch.arange(k)
    for s in range(0, n, chunk):
        a, p, h, c = encode_many(eng, X[s:s + chunk], enc_batch)
        B = a.shape[0]
        row_img = torch.arange(B)              # local image of each live row
        row_rank = torch.zeros(B, dtype=torch.long)
        scores = torch.zeros(B, dtype=torch.float64)
        hist = torch.zeros(B, 0, dtype=torch.long)
        tok = torch.full((B,), START, dtype=torch.long)
        width = torch.full((B,), k, dtype=torch.long)
        a_rows, p_rows = a, p
        for t in range(T):
            R = row_img.numel()
            if R == 0:
                break
            h2, c2, logits, _ = eng.stepn(tok, h, c, a_rows, p_rows)
            cand = scores.unsqueeze(1) + torch.log_softmax(logits, 1).double()  # [R,V]
            live, counts = torch.unique_consecutive(row_img, return_counts=True)
            nl = live.numel()
            pos = torch.repeat_interleave(torch.arange(nl), counts)
            pad = torch.full((nl, k, V), NEG, dtype=torch.float64)
            pad[pos, row_rank] = cand
            rowmap = torch.zeros(nl, k, dtype=torch.long)
            rowmap[pos, row_rank] = torch.arange(R)
            sc, idx = torch.sort(pad.view(nl, k * V), stable=True, dim=1, descending=True)
            sc, idx = sc[:, :k], idx[:, :k]
            w = width[live]
            valid = ar_k.unsqueeze(0) < w.unsqueeze(1)
            ptok = idx % V
            parent = rowmap.gather(1, idx // V)
            is_end = valid & (ptok == END)
            keep = valid & ~is_end
            if bool(is_end.any()):
                for j in range(k):  # in rank order: finish order within the step
                    mj = is_end[:, j]
                    if not bool(mj.any()):
                        continue
                    g = live[mj] + s
                    sj = sc[mj, j]
                    upd = sj > best_score[g]
                    if bool(upd.any()):
                        gi = g[upd]
                        best_score[gi] = sj[upd]
                        best_tok[gi, :t] = hist[parent[mj, j][upd]]
                        best_tok[gi, t] = END
                        best_len[gi] = t + 1
                width[live] = w - is_end.sum(1)
            kp, kj = torch.nonzero(keep, as_tuple=True)  # row-major: by image, then rank
            par = parent[kp, kj]
            new_img = live[kp]
            row_rank = (keep.cumsum(1) - 1)[kp, kj]
            scores = sc[kp, kj]
            tok = ptok[kp, kj]
            hist = torch.cat([hist.index_select(0, par), tok.unsqueeze(1)], 1)
            h, c = h2.index_select(0, par), c2.index_select(0, par)
            if new_img.numel() != row_img.numel() or not torch.equal(new_img, row_img):
                a_rows, p_rows = a.index_select(0, new_img), p.index_select(0, new_img)
            row_img = new_img
        if row_img.numel():  # after max_length steps: live ones join without <end>, in rank order
            for j in range(k):
                mj = row_rank == j
                if not bool(mj.any()):
                    continue
                g = row_img[mj] + s
                sj = scores[mj]
                upd = sj > best_score[g]
                if bool(upd.any()):
                    gi = g[upd]
                    best_score[gi] = sj[upd]
                    best_tok[gi, :hist.shape[1]] = hist[mj][upd]
                    best_len[gi] = hist.shape[1]
    return [best_tok[i, :best_len[i]].tolist() for i in range(n)]


def list_images(paths):
    """Image files under DIRs (not recursive) and FILEs, sorted by path bytes."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            for name in os.listdir(p):
                f = os.path.join(p, name)
                if name.lower().endswith(IMAGE_EXTS) and os.path.isfile(f):
                    out.append(f)
        else:
            out.append(p)
    return sorted(out, key=lambda s: s.encode())


def caption_folder(eng, files, beam, chunk=None, enc_batch=32):
    """The folder mode: decode + preprocess every file, caption all of them
    with the batched search. Returns [(path, caption)]."""
    m = eng.m
    rgb = np.stack([m.load_rgb(f) for f in files])
    X = m.to_input(rgb)
    if beam == 1:
        toks = greedy_many(eng, X, chunk, enc_batch)
    else:
        toks = beam_many(eng, X, beam, chunk, enc_batch)
    return [(f, m.text(t)) for f, t in zip(files, toks)]


# ------------------------------------------------------------------ training step

class TrainStep(nn.Module):
    """Forward with teacher forcing (dropout on fc's input: h, or u with the
    deep output layer), loss =
    cross-entropy over every token + att_reg * the doubly stochastic attention
    regulariser sum_i (1 - sum_t alpha_ti)^2 averaged over examples."""

    def __init__(self, net, lut, dropout=0.5, att_reg=1.0):
        super().__init__()
        self.enc = Encode(net)
        self.step = StepRows(net)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("lut", lut.clone(), persistent=False)
        self.att_reg = att_reg
        self.start = START

    def forward(self, rgb, tokens):
        # rgb uint8 [B,S,S,3] -> [B,3,S,S], as imcap_normalise
        t = rgb.long()
        x = torch.stack([self.lut[0][t[..., 0]], self.lut[1][t[..., 1]], self.lut[2][t[..., 2]]], 1)
        a, p, h, c = self.enc(x)
        B, T = tokens.shape[0], tokens.shape[1]
        s = self.step
        alpha_sum = torch.zeros(B, a.shape[1], dtype=a.dtype)
        prev = torch.full((B,), self.start, dtype=torch.long)
        logits = []
        for i in range(T):
            q = s.decoder_att(h)
            e = s.full_att(torch.tanh(p + q.unsqueeze(1))).squeeze(2)
            alpha = torch.softmax(e, 1)
            z = torch.sigmoid(s.f_beta(h)) * torch.bmm(alpha.unsqueeze(1), a).squeeze(1)
            emb = s.embedding(prev)
            h, c = s.lstm(torch.cat([emb, z], 1), (h, c))
            logits.append(s.fc(self.drop(s.dec.fc_input(h, z, emb))))
            alpha_sum = alpha_sum + alpha
            prev = tokens[:, i]
        lg = torch.stack(logits, 1)
        ce = F.cross_entropy(lg.reshape(B * T, lg.shape[2]), tokens.reshape(B * T))
        reg = ((1.0 - alpha_sum) ** 2).sum(1).mean()
        return ce + self.att_reg * reg


class Trainer:
    """One optimiser step on a fixed batch, as imcap-bench's train row: a
    private copy of the weights, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8)
    with the gradient's global norm clipped at 5, as imcap train."""

    def __init__(self, model, variant="eager", batch=32, length=12, seed=7):
        import copy
        self.net = copy.deepcopy(model.net).train()
        for prm in self.net.parameters():
            prm.requires_grad_(True)
        mod = TrainStep(self.net, model.lut).train()
        self.fn = torch.jit.script(mod) if variant == "script" else mod
        g = torch.Generator().manual_seed(seed)
        S, V = model.S, model.V
        self.rgb = torch.randint(0, 256, (batch, S, S, 3), generator=g, dtype=torch.uint8)
        T = min(length, model.max_length)
        tok = torch.randint(4, V, (batch, T), generator=g) if V > 4 else torch.full((batch, T), UNK)
        tok[:, T - 1] = END
        self.tokens = tok
        self.params = [p for p in self.net.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
        self.batch = batch

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.fn(self.rgb, self.tokens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 5.0)
        self.opt.step()
        v = float(loss)
        if not math.isfinite(v):
            raise RuntimeError("non-finite loss")
        return v


# ------------------------------------------------------------------ timing

def measure(fn, min_time=1.0, min_reps=5, rep_target=0.01):
    """imcap-bench's rule: a warm-up, then repetitions until min_time and
    min_reps; work faster than rep_target grouped `inner` times per rep.
    Returns (median s, min s, reps, inner)."""
    fn()
    t0 = time.perf_counter()
    fn()
    t = time.perf_counter() - t0
    inner = 1 if t >= rep_target else int(math.ceil(rep_target / max(t, 1e-9)))
    ts = [t] if inner == 1 else []
    start = time.perf_counter() - (t if inner == 1 else 0)
    while len(ts) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        ts.append((time.perf_counter() - t0) / inner)
    ts.sort()
    n = len(ts)
    med = ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])
    return med, ts[0], n, inner


def one_thread():
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


# ------------------------------------------------------------------ CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("caption", help="caption images one at a time (eager)")
    c.add_argument("--model", default=DEFAULT_MODEL)
    c.add_argument("--beam", type=int, default=3)
    c.add_argument("images", nargs="+")
    b = sub.add_parser("batch", help="caption a folder with the batched folder mode")
    b.add_argument("--model", default=DEFAULT_MODEL)
    b.add_argument("--beam", type=int, default=3)
    b.add_argument("--chunk", type=int, default=0, help="images decoded together (0: all)")
    b.add_argument("--variant", default="eager", choices=VARIANTS)
    b.add_argument("inputs", nargs="+")
    args = ap.parse_args(argv)
    one_thread()
    t0 = time.perf_counter()
    model = Model(args.model)
    if args.cmd == "caption":
        eng = Engine(model)
        rc = 0
        with torch.inference_mode():
            for path in args.images:
                try:
                    toks = caption_one(eng, model.load_rgb(path), args.beam)
                except Exception as e:  # noqa: BLE001 — one line per failed image, as imcap
                    print(f"{path}: {e}", file=sys.stderr)
                    rc = 1
                    continue
                print(f"{path}\t{model.text(toks)}")
        return rc
    eng = Engine(model, args.variant)
    files = list_images(args.inputs)
    t1 = time.perf_counter()
    with torch.inference_mode():
        res = caption_folder(eng, files, args.beam, args.chunk or None)
    t2 = time.perf_counter()
    for f, text in res:
        print(f"{f}\t{text}")
    print(f"torch_ref batch: {len(files)} images in {t2 - t1:.3f} s ({len(files) / max(t2 - t1, 1e-9):.1f} images/s; "
          f"model load and {args.variant} compilation {t1 - t0:.3f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
