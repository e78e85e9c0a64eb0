"""LBYL-Net's landmark feature convolution (Huang et al., CVPR 2021, Sec. 3.2): ``LandmarkP4``.

Each cell of a map looks at four quadrants of the map around it: the cells above and to its left, above and to
its right, below and to its left, below and to its right. Per channel, a quadrant is summarised by its maximum,
so one 16×16 map gives every cell a view of the whole image split into four landmark directions.

As the reference builds it (svip-lab/LBYLNet @ 47a0e83b6db6, ``core/models/context/module.py: LandmarkP4`` with
``ctx_dim`` 128 in ``configs/lbyl_*.json``): four 3×3 conv-BN-ReLU branches narrow the map to ``ctx_dim``
channels, each branch is max-pooled over one quadrant (in the order top-right, top-left, bottom-left,
bottom-right), the four pooled maps are concatenated and brought back by a 3×3 conv + BN, added to a 1×1 conv + BN
of the input, passed through ReLU and a last 3×3 conv-BN-ReLU. At 256 channels and ``ctx_dim`` 128 that is
3,017,216 parameters, the reference's count.

The pooling. The reference calls the CUDA-only extension hbb1/landmarkconv (``lib/layers/csrc/conv4/conv4.cu``):
a scan that sets ``out[i, j] = g·max(x[i, j], out[i, j∓1], out[i∓1, j]) + (1 − g)·x[i, j]`` with a guide ``g``,
and LBYL-Net passes ``g = 1`` everywhere (``torch.ones_like``), which makes ``out[i, j]`` the maximum of ``x``
over the quadrant. :func:`quadrant_max` computes that maximum in plain torch, on any device and dtype, with
autograd: a running maximum along the rows, then along the columns, each in ⌈log2 n⌉ steps of
``torch.maximum`` between a map and itself shifted by 1, 2, 4, … cells (the two windows of each step are
disjoint). Its gradient is torch's: the whole gradient of an output goes to the input cell holding the maximum,
as in the extension, except between two cells holding exactly the same value, which share it where the extension
gives it to one; the branches end in a ReLU, so the common tie, between zeros, passes no gradient either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.onestage_layers import ConvBNReLU

__all__ = ["QUADRANTS", "LandmarkP4", "quadrant_max", "running_max"]

#: the quadrants pooled by the four branches, in the reference's order (``pool1..pool4``: TopRightPool,
#: TopLeftPool, BottomLeftPool, BottomRightPool), as (the rows above: True, the columns to the left: True)
QUADRANTS: tuple[tuple[bool, bool], ...] = ((True, False), (True, True), (False, True), (False, False))


def running_max(x: Tensor, dim: int, forward: bool = True) -> Tensor:
    """The running maximum of ``x`` along ``dim``: at index ``i`` the maximum over indices ``≤ i`` (``forward``)
    or ``≥ i``, computed by doubling (the same values as ``x.cummax(dim)``, without its scatter in backward)."""
    n = x.shape[dim]
    shift = 1
    while shift < n:
        m = n - shift
        if forward:  # y[i] = max(x[i], x[i - shift]) for i >= shift
            x = torch.cat([x.narrow(dim, 0, shift), torch.maximum(x.narrow(dim, shift, m), x.narrow(dim, 0, m))], dim)
        else:  # y[i] = max(x[i], x[i + shift]) for i < n - shift
            x = torch.cat([torch.maximum(x.narrow(dim, 0, m), x.narrow(dim, shift, m)), x.narrow(dim, m, shift)], dim)
        shift *= 2
    return x


def quadrant_max(x: Tensor, top: bool, left: bool) -> Tensor:
    """``(B, C, H, W)`` → per cell ``(i, j)`` and channel the maximum of ``x`` over rows ``≤ i`` (``top``) or
    ``≥ i``, and columns ``≤ j`` (``left``) or ``≥ j``: the landmark extension's pooling at guide 1."""
    return running_max(running_max(x, 2, forward=top), 3, forward=left)


class LandmarkP4(nn.Module):
    """The landmark feature convolution on a ``(B, dim, h, w)`` map, ``ctx_dim`` channels per quadrant; the
    submodules are the reference's ``p1..p4_conv1`` (``branches``), ``p_conv1``/``p_bn1`` (``merge``),
    ``conv1``/``bn1`` (``skip``) and ``conv2`` (``out``)."""

    def __init__(self, dim: int, ctx_dim: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(ConvBNReLU(dim, ctx_dim, 3) for _ in QUADRANTS)
        self.merge = nn.Sequential(
            nn.Conv2d(len(QUADRANTS) * ctx_dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim)
        )
        self.skip = nn.Sequential(nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim))
        self.out = ConvBNReLU(dim, dim, 3)

    def forward(self, x: Tensor) -> Tensor:
        pooled = [quadrant_max(branch(x), *q) for branch, q in zip(self.branches, QUADRANTS, strict=True)]
        return self.out(F.relu(self.merge(torch.cat(pooled, 1)) + self.skip(x)))
