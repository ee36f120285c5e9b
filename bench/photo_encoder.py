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
import os
import sys

import torch

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
    model = bp.random_network("resnet50")
    work = os.path.join(tmp, "r50")
    m = bp.make_model(imcap, work, "resnet50", model)
    trunk = bp.truncated(model, "resnet50", "layer4")
    worst, _, _ = bp.annotation_error(imcap, m, trunk, image, work)
    if not worst <= 1e-4:
        raise RuntimeError(f"ResNet-50: imcap's annotations differ from torchvision's by {worst:.3g}")
    return m, torch.nn.Sequential(trunk, Prep()).eval(), f"annotations agree within {worst:.1g} (x max(1, |v|))"


def variants(net, n):
    """{name: callable} over a batch of n random 224 x 224 inputs."""
    x = torch.randn(n, 3, 224, 224)
    out = {"eager": lambda: net(x)}
    with torch.no_grad():
        scripted = torch.jit.optimize_for_inference(torch.jit.script(net))
    out["script+ofi"] = lambda: scripted(x)
    return out
