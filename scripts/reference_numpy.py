#!/usr/bin/python3
"""Independent numpy check of an imcap trace against the model format spec.

    imcap caption --model M.safetensors --beam K --trace T.json IMAGE
    /usr/bin/python3 scripts/reference_numpy.py M.safetensors T.json --beam K

Reads the model with a plain safetensors reader (no safetensors package),
takes the preprocessed input from the trace's "input" field, recomputes the
encoder, the annotation vectors and the decoding (the spec's greedy / beam
search, in float64) and compares tokens, logits, attention and annotations
with the trace. Exit 0 when everything agrees within 1e-4 * max(1, |v|)
(token differences are tolerated only where the reference sees two
candidates within 1e-4 of each other, as the spec's conformance rule says),
1 when something disagrees, 2 on bad usage or unreadable files.
Needs only numpy (Debian: python3-numpy).
"""
import argparse
import json
import struct
import sys

import numpy as np

TOL = 1e-4
PAD, START, END, UNK = 0, 1, 2, 3


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    dtypes = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2")}
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        raw = data[base + b:base + e]
        if t["dtype"] == "BF16":  # widen: the 16 high bits of a float32
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtypes[t["dtype"]])
        tensors[name] = arr.astype(np.float64).reshape(t["shape"])
    return meta, tensors


def conv2d(x, w, b, stride, pad):
    C, H, W = x.shape
    O, _, k, _ = w.shape
    xp = np.zeros((C, H + 2 * pad, W + 2 * pad))
    xp[:, pad:pad + H, pad:pad + W] = x
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = np.zeros((O, Ho, Wo)) + b[:, None, None]
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, ky:ky + stride * (Ho - 1) + 1:stride, kx:kx + stride * (Wo - 1) + 1:stride]
            out += np.einsum("oc,chw->ohw", w[:, :, ky, kx], patch)
    return out


def maxpool(x, k, stride):
    C, H, W = x.shape
    Ho, Wo = (H - k) // stride + 1, (W - k) // stride + 1
    out = np.full((C, Ho, Wo), -np.inf)
    for ky in range(k):
        for kx in range(k):
            out = np.maximum(out, x[:, ky:ky + stride * (Ho - 1) + 1:stride, kx:kx + stride * (Wo - 1) + 1:stride])
    return out


def coords(x):
    C, H, W = x.shape
    xs = 2 * (np.arange(W) + 0.5) / W - 1
    ys = 2 * (np.arange(H) + 0.5) / H - 1
    return np.concatenate([x, np.broadcast_to(xs[None, :], (H, W))[None], np.broadcast_to(ys[:, None], (H, W))[None]])


def encode(cfg, T, x):
    for i, layer in enumerate(cfg["encoder"]):
        ty = layer["type"]
        if ty == "conv":
            x = conv2d(x, T[f"encoder.{i}.weight"], T[f"encoder.{i}.bias"], layer["stride"], layer["pad"])
        elif ty == "relu":
            x = np.maximum(x, 0)
        elif ty == "maxpool":
            x = maxpool(x, layer["kernel"], layer["stride"])
        elif ty == "coords":
            x = coords(x)
        else:
            raise ValueError(f"unknown layer type {ty}")
    D, H, W = x.shape
    return x.reshape(D, H * W).T.copy()  # a_i = column i = y * W + x


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def log_softmax(v):
    m = v.max()
    return v - m - np.log(np.exp(v - m).sum())


class Decoder:
    def __init__(self, T, a):
        self.T, self.a = T, a
        g = lambda n: T["decoder." + n]
        abar = a.mean(axis=0)
        self.h0 = np.tanh(g("init_h.weight") @ abar + g("init_h.bias"))
        self.c0 = np.tanh(g("init_c.weight") @ abar + g("init_c.bias"))
        self.p = a @ g("attention.encoder_att.weight").T + g("attention.encoder_att.bias")
        self.g = g
        self.Hd = self.h0.shape[0]

    def step(self, y, h, c):
        g, Hd = self.g, self.Hd
        q = g("attention.decoder_att.weight") @ h + g("attention.decoder_att.bias")
        e = np.tanh(self.p + q) @ g("attention.full_att.weight")[0] + g("attention.full_att.bias")[0]
        alpha = np.exp(e - e.max())
        alpha /= alpha.sum()
        z = sigmoid(g("f_beta.weight") @ h + g("f_beta.bias")) * (alpha @ self.a)
        x = np.concatenate([g("embedding.weight")[y], z])
        gates = g("lstm.weight_ih") @ x + g("lstm.bias_ih") + g("lstm.weight_hh") @ h + g("lstm.bias_hh")
        i, f = sigmoid(gates[:Hd]), sigmoid(gates[Hd:2 * Hd])
        gg, o = np.tanh(gates[2 * Hd:3 * Hd]), sigmoid(gates[3 * Hd:])
        c2 = f * c + i * gg
        h2 = o * np.tanh(c2)
        fc_in = h2
        if "decoder.deep_h.weight" in self.T:  # format 2's deep output layer
            E = g("embedding.weight").shape[1]
            fc_in = np.tanh(g("deep_h.weight") @ h2 + g("deep_h.bias") + g("deep_z.weight") @ z + g("deep_z.bias") + x[:E])
        return h2, c2, g("fc.weight") @ fc_in + g("fc.bias"), alpha


def beam_search(dec, k, max_length, V):
    """The spec's beam search. Returns (best hypothesis, smallest decision gap)."""
    live = [dict(tokens=[], score=0.0, logits=[], alpha=[], h=dec.h0, c=dec.c0)]
    done, width, gap = [], k, np.inf
    for _ in range(max_length):
        if width == 0:
            break
        steps, scores = [], []
        for hyp in live:
            y = hyp["tokens"][-1] if hyp["tokens"] else START
            h2, c2, logits, alpha = dec.step(y, hyp["h"], hyp["c"])
            lp = log_softmax(logits)
            steps.append((h2, c2, logits, alpha, lp))
            scores.append(hyp["score"] + lp)
        scores = np.concatenate(scores)
        idx = np.arange(scores.shape[0])
        order = np.lexsort((idx, -scores))  # higher score first, ties to lower parent_rank * V + token
        keep = min(width, len(order))
        if keep < len(order):
            gap = min(gap, scores[order[keep - 1]] - scores[order[keep]])
        new_live = []
        for j in order[:keep]:
            r, v = divmod(int(j), V)
            h2, c2, logits, alpha, lp = steps[r]
            parent = live[r]
            child = dict(tokens=parent["tokens"] + [v], score=float(scores[j]), logits=parent["logits"] + [logits],
                         alpha=parent["alpha"] + [alpha], h=h2, c=c2)
            if v == END:
                done.append(child)
                width -= 1
            else:
                new_live.append(child)
        live = new_live
    done += live  # leftovers join, after the finished ones
    ranked = sorted(done, key=lambda hh: -hh["score"])  # stable: ties to the earlier finished
    for x, y in zip(ranked, ranked[1:]):
        gap = min(gap, x["score"] - y["score"])
    return ranked[0], gap


def close(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return bool(np.all(np.abs(got - want) <= TOL * np.maximum(1, np.abs(want))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("trace")
    ap.add_argument("--beam", type=int, default=3, help="the --beam the trace was made with (default 3)")
    ap.add_argument("--max-length", type=int, default=0, help="0: the model's max_length")
    args = ap.parse_args()
    if args.beam < 1:
        ap.error("--beam must be at least 1")
    try:
        meta, T = read_safetensors(args.model)
        cfg = json.loads(meta["imcap.config"])
        vocab = json.loads(meta["imcap.vocab"])
        with open(args.trace, "rb") as f:
            raw = f.read()
    except (OSError, ValueError, KeyError, struct.error) as e:
        print(f"reference_numpy: {args.model}: {e}", file=sys.stderr)
        return 2
    # a malformed trace is the engine's fault: a mismatch, not a usage error
    try:
        nul = raw.find(b"\0")
        if nul >= 0:
            raise ValueError(f"a NUL byte at offset {nul}")
        trace = json.loads(raw.decode("utf-8"))
        for key in ("tokens", "logits", "attention", "annotations", "input"):
            if key not in trace:
                raise ValueError(f"no '{key}' field")
    except ValueError as e:
        print(f"reference_numpy: {args.trace}: not a valid trace: {e}", file=sys.stderr)
        print("MISMATCH")
        return 1
    V = len(vocab)
    S = cfg["image_size"]
    x = np.array(trace["input"], dtype=np.float64)
    ok = True
    if x.shape != (3, S, S):
        print(f"input: shape {x.shape}, expected (3, {S}, {S})")
        return 1
    a = encode(cfg, T, x)
    ann = np.array(trace["annotations"], dtype=np.float64)
    if ann.shape != a.shape:
        print(f"annotations: shape {ann.shape}, expected {a.shape}")
        return 1
    print(f"annotations: max abs diff {np.abs(ann - a).max():.3g} over {a.shape[0]} x {a.shape[1]}")
    ok &= close(ann, a)
    dec = Decoder(T, a)
    best, gap = beam_search(dec, args.beam, args.max_length or cfg["max_length"], V)
    want_tokens, got_tokens = best["tokens"], [int(t) for t in trace["tokens"]]
    same = want_tokens == got_tokens
    words = lambda ts: " ".join(vocab[t] if 0 <= t < V else f"#{t}" for t in ts)
    print(f"tokens: {'agree' if same else 'DIFFER'} ({len(got_tokens)} engine, {len(want_tokens)} reference)")
    if not same:
        print(f"  engine:    {words(got_tokens)}\n  reference: {words(want_tokens)}")
        if gap < TOL:
            print(f"  the reference saw two candidates {gap:.3g} apart (< {TOL}): allowed by the spec")
        else:
            ok = False
    n = 0
    while n < min(len(got_tokens), len(want_tokens)) and got_tokens[n] == want_tokens[n]:
        n += 1
    # logits and attention are comparable while the token histories agree
    # (step t's inputs depend on y_1..y_{t-1})
    n_cmp = min(n + 1, len(got_tokens), len(want_tokens))
    if len(trace["logits"]) != len(got_tokens) or len(trace["attention"]) != len(got_tokens):
        print("logits/attention: one row per token expected")
        ok = False
    else:
        dl = da = 0.0
        for t in range(n_cmp):
            gl, wl = np.array(trace["logits"][t], dtype=np.float64), best["logits"][t]
            ga, wa = np.array(trace["attention"][t], dtype=np.float64), best["alpha"][t]
            if gl.shape != wl.shape or ga.shape != wa.shape:
                print(f"step {t + 1}: logits or attention of the wrong size")
                ok = False
                break
            dl, da = max(dl, np.abs(gl - wl).max()), max(da, np.abs(ga - wa).max())
            ok &= close(gl, wl) and close(ga, wa)
        print(f"logits: max abs diff {dl:.3g} over {n_cmp} steps")
        print(f"attention: max abs diff {da:.3g}")
    print(f"score (reference): {best['score']:.6f}; smallest decision gap {gap:.3g}")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
