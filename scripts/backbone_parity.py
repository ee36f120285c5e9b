#!/usr/bin/python3
"""Parity of `imcap init --backbone` with torchvision (issue: photographs).

Builds a torchvision network with random weights and batch-norm statistics
randomised so that every batch norm matters, writes its state_dict as
safetensors exactly as `safetensors.torch.save_file(model.state_dict(), W)`
lays it out (written here with the standard library, since Debian has no
python3-safetensors), makes an imcap model on it, captions a test image with
`imcap caption --trace`, runs the truncated torchvision network on the
trace's own input and compares the annotations within
1e-4 * max(1, |v|). Exit 0 when they agree, 1 when not, 77 when torch or
torchvision is missing.

usage: backbone_parity.py IMCAP WORKDIR IMAGE ARCH [--layer L] [--grid N] [--image-size S]
"""
import argparse
import json
import os
import subprocess
import sys

try:
    import torch
    import torchvision
except ImportError as e:  # the test skips
    print(f"backbone_parity: {e}", file=sys.stderr)
    sys.exit(77)

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def save_safetensors(tensors, path):
    """safetensors' layout: 8-byte header length, JSON header padded with
    spaces to a multiple of 8, tensors in ascending name order."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def randomise_bn(model, gen):
    # The batch norm that closes a residual branch gets small weights, as in
    # trained ResNets (and torchvision's zero_init_residual taken halfway):
    # otherwise the residual stream grows with every block, to values where
    # float32 itself (torch's included) is off by more than the tolerance.
    last = set()
    for m in model.modules():
        if isinstance(m, torchvision.models.resnet.Bottleneck):
            last.add(m.bn3)
        elif isinstance(m, torchvision.models.resnet.BasicBlock):
            last.add(m.bn2)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            scale = (0.1, 0.3) if m in last else (0.6, 0.8)
            m.weight.data = torch.rand(c, generator=gen) * scale[1] + scale[0]
            m.bias.data = torch.randn(c, generator=gen) * 0.2
            m.running_mean.data = torch.randn(c, generator=gen) * 0.3
            m.running_var.data = torch.rand(c, generator=gen) * 1.5 + 0.5
            m.num_batches_tracked.fill_(1000)


def truncated(model, arch, layer):
    """The network imcap keeps: ResNet through layerK, VGG features through module N."""
    if arch.startswith("resnet"):
        layer = layer or "layer4"
        mods = [model.conv1, model.bn1, model.relu, model.maxpool]
        for k in range(1, 5):
            mods.append(getattr(model, f"layer{k}"))
            if layer == f"layer{k}":
                break
        return torch.nn.Sequential(*mods)
    feats = model.features
    n = int(layer.split(".")[1]) + 1 if layer else len(feats) - 1
    return feats[:n]


def random_network(arch):
    """torchvision's arch with random weights (seed 0) and randomised batch norms (seed 1)."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    randomise_bn(model, torch.Generator().manual_seed(1))
    return model


def make_model(imcap, work, arch, model, init_args=()):
    """Writes model's weights as safetensors and an imcap model on them; its path."""
    os.makedirs(work, exist_ok=True)
    w = os.path.join(work, f"{arch}.safetensors")
    save_safetensors(model.state_dict(), w)
    words = os.path.join(work, "words.txt")
    with open(words, "w") as f:
        f.write("a\nphoto\n")
    m = os.path.join(work, "model.safetensors")
    subprocess.run([imcap, "init", "--backbone", arch, "--backbone-weights", w, "--vocab", words, "--seed", "3", "-o", m,
                    *init_args], check=True)
    return m


def annotation_error(imcap, m, trunk, image, work, grid=None):
    """(worst error relative to max(1, |v|), torchvision's [L, D] annotations, imcap's) on the trace's own input."""
    trace = os.path.join(work, "trace.json")
    subprocess.run([imcap, "caption", "--threads", "1", "--beam", "1", "--model", m, "--trace", trace, image],
                   check=True, stdout=subprocess.DEVNULL)
    with open(trace) as f:
        tr = json.load(f)
    x = torch.tensor(tr["input"], dtype=torch.float32).unsqueeze(0)
    with torch.no_grad():
        y = trunk(x)
        if grid:
            y = torch.nn.functional.adaptive_avg_pool2d(y, grid)
    want = y[0].reshape(y.shape[1], -1).t()  # [L, D], cell i = row-major
    got = torch.tensor(tr["annotations"], dtype=torch.float32)
    if got.shape != want.shape:
        return float("inf"), want, got
    return ((got - want).abs() / want.abs().clamp(min=1)).max().item(), want, got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("imcap")
    ap.add_argument("work")
    ap.add_argument("image")
    ap.add_argument("arch")
    ap.add_argument("--layer")
    ap.add_argument("--grid", type=int)
    ap.add_argument("--image-size", type=int, default=224)
    a = ap.parse_args()
    model = random_network(a.arch)
    decoder = os.path.join(a.work, "decoder.json")
    os.makedirs(a.work, exist_ok=True)
    with open(decoder, "w") as f:
        json.dump({"embed_dim": 8, "hidden_dim": 8, "attention_dim": 8, "max_length": 2}, f)
    args = ["--config", decoder, "--image-size", str(a.image_size)]
    if a.layer:
        args += ["--backbone-layer", a.layer]
    if a.grid:
        args += ["--grid", str(a.grid)]
    m = make_model(a.imcap, a.work, a.arch, model, args)
    worst, want, got = annotation_error(a.imcap, m, truncated(model, a.arch, a.layer), a.image, a.work, a.grid)
    if got.shape != want.shape:
        print(f"{a.arch}: annotations shape {tuple(got.shape)}, torchvision {tuple(want.shape)}")
        return 1
    print(f"{a.arch} {a.layer or 'default'} grid {a.grid or '-'}: {got.shape[0]} cells x {got.shape[1]}, "
          f"|v| up to {want.abs().max().item():.3g}, worst error {worst:.3g} (tolerance 1e-4 * max(1, |v|))")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
