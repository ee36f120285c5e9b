"""bench/photo_encoder.py — the photo-scale rows of bench/compare.py: a
torchvision ResNet-50 (random weights, batch-norm statistics randomised as
in scripts/backbone_parity.py) cut after layer4, at 224 x 224, in imcap
(`imcap init --backbone resnet50`, timed by imcap-bench's encoder rows) and
in PyTorch on the same weights, at batch 1 and batch 8.

Both sides time the same work: the network to layer4 ([2048, 7, 7]), then
the decoder's per-image preparation (encoder_att over the 49 cells, the mean
annotation, init_h and init_c), with the tutorial's 512-wide decoder.
Before timing, imcap's annotations (from `imcap caption --trace`) are
checked against PyTorch's on the same input.
"""
import json
import os
import subprocess
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
import backbone_parity as bp  # noqa: E402

BATCHES = (1, 8)


class Prep(torch.nn.Module):
    """The decoder's per-image preparation, as imcap's encoder row has it."""

    def __init__(self, D=2048, A=512, H=512):
        super().__init__()
        self.encoder_att = torch.nn.Linear(D, A)
        self.init_h = torch.nn.Linear(D, H)
        self.init_c = torch.nn.Linear(D, H)

    def forward(self, f):
        a = f.flatten(2).transpose(1, 2)          # [n, L, D]
        p = self.encoder_att(a)
        abar = a.mean(1)
        return p, torch.tanh(self.init_h(abar)), torch.tanh(self.init_c(abar))


def prepare(imcap, tmp, image):
    """(imcap model path, PyTorch module, agreement note) for the rows."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    bp.randomise_bn(model, torch.Generator().manual_seed(1))
    w = os.path.join(tmp, "resnet50.safetensors")
    bp.save_safetensors(model.state_dict(), w)
    words = os.path.join(tmp, "r50words.txt")
    with open(words, "w") as f:
        f.write("a\nphoto\n")
    m = os.path.join(tmp, "r50model.safetensors")
    subprocess.run([imcap, "init", "--backbone", "resnet50", "--backbone-weights", w, "--vocab", words, "--seed", "1",
                    "-o", m], check=True)
    trunk = bp.truncated(model, "resnet50", "layer4")
    net = torch.nn.Sequential(trunk, Prep()).eval()
    trace = os.path.join(tmp, "r50trace.json")
    subprocess.run([imcap, "caption", "--threads", "1", "--beam", "1", "--model", m, "--trace", trace, image],
                   check=True, stdout=subprocess.DEVNULL)
    with open(trace) as f:
        tr = json.load(f)
    x = torch.tensor(tr["input"], dtype=torch.float32)[None]
    with torch.no_grad():
        y = trunk(x)[0].reshape(2048, -1).t()
    got = torch.tensor(tr["annotations"], dtype=torch.float32)
    worst = ((got - y).abs() / y.abs().clamp(min=1)).max().item()
    if not worst <= 1e-4:
        raise RuntimeError(f"ResNet-50: imcap's annotations differ from torchvision's by {worst:.3g}")
    return m, net, f"annotations agree within {worst:.1g} (x max(1, |v|))"


def variants(net, n):
    """{name: callable} over a batch of n random 224 x 224 inputs."""
    x = torch.randn(n, 3, 224, 224)
    out = {"eager": lambda: net(x)}
    with torch.no_grad():
        scripted = torch.jit.optimize_for_inference(torch.jit.script(net))
    out["script+ofi"] = lambda: scripted(x)
    return out
