"""Parts the one-stage grounding families share (FAOA, ReSC-base, LBYL-Net of the paper's Table II).

* :class:`ConvBNReLU` — convolution without bias, batch norm, ReLU (or leaky ReLU): the references' fusion block;
* :func:`coord_map` — the 8 spatial channels the references concatenate to each fused map;
* :func:`fold_levels` / :func:`unfold_levels` — the backbone's maps (strides 8, 16, 32, or some of them) carried as
  one stride-32 map (space-to-depth), so that a feature cache stores one tensor per image as it does for MGVLF;
* :class:`BatchNorm1dAnyBatch` — the text mappings' batch norm, which also takes a training batch of one;
* :func:`answer_map` — where the model looks, for the pictures: the anchor-cells' softmax on the finest grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.yolo import AnchorSet

__all__ = [
    "BatchNorm1dAnyBatch",
    "ConvBNReLU",
    "answer_map",
    "coord_map",
    "fold_levels",
    "folded_channels",
    "unfold_levels",
]


class ConvBNReLU(nn.Sequential):
    """``Conv2d(bias=False)`` → ``BatchNorm2d`` → ReLU (``leaky``: LeakyReLU 0.1), padding ``kernel // 2``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, leaky: bool = False) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.1) if leaky else nn.ReLU(),
        )


def coord_map(batch: int, height: int, width: int, device: torch.device | None = None) -> Tensor:
    """``(batch, 8, height, width)``: per cell its extent in ``[-1, 1]`` (min, max and centre along each axis),
    then ``1/height`` and ``1/width``, in the order of FAOA's ``generate_coord`` (zyang-ur/onestage_grounding
    2fff0943c3bc, ``model/grounding_model.py``) as coded: its grid comes from ``meshgrid(rows, columns)``, so
    channels 0, 2, 4 follow the row and 1, 3, 5 the column (each normalised by the other side, the same on the
    square maps every reference uses)."""
    rows = torch.arange(height, device=device, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, device=device, dtype=torch.float32)[None, :].expand(height, width)
    a_min, b_min = (rows * 2 - width) / width, (cols * 2 - height) / height
    a_max, b_max = ((rows + 1) * 2 - width) / width, ((cols + 1) * 2 - height) / height
    channels = [
        a_min,
        b_min,
        a_max,
        b_max,
        (a_min + a_max) / 2,
        (b_min + b_max) / 2,
        torch.full_like(rows, 1.0 / height),
        torch.full_like(rows, 1.0 / width),
    ]
    return torch.stack(channels).unsqueeze(0).expand(batch, -1, -1, -1)


def fold_levels(maps: Sequence[Tensor], strides: Sequence[int]) -> Tensor:
    """The backbone's maps at ``strides`` (highest resolution first, as a backbone returns them) as one stride-32
    map, coarsest first: each stride-32 cell carries the ``(32/s)²`` cells of stride ``s`` it covers as channels
    (strides 8, 16, 32: ``[C32; 4·C16; 16·C8]``)."""
    pairs = sorted(zip(strides, maps, strict=True), reverse=True)
    return torch.cat([F.pixel_unshuffle(m, 32 // s) if s < 32 else m for s, m in pairs], 1)


def unfold_levels(folded: Tensor, channels: Sequence[int], strides: Sequence[int]) -> list[Tensor]:
    """Inverse of :func:`fold_levels`: ``channels`` of the maps at ``strides``; the maps highest resolution
    first."""
    out: dict[int, Tensor] = {}
    start = 0
    for s, c in sorted(zip(strides, channels, strict=True), reverse=True):
        width = c * (32 // s) ** 2
        part = folded[:, start : start + width]
        out[s] = F.pixel_shuffle(part, 32 // s) if s < 32 else part
        start += width
    return [out[s] for s in sorted(out)]


def folded_channels(channels: Sequence[int], strides: Sequence[int]) -> int:
    """Channels of :func:`fold_levels`'s map."""
    return sum(c * (32 // s) ** 2 for c, s in zip(channels, strides, strict=True))


class BatchNorm1dAnyBatch(nn.BatchNorm1d):
    """``BatchNorm1d`` that also takes a training batch of one sample (the last batch of an epoch may be one):
    that batch is normalised with the running statistics, which it leaves unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def answer_map(conf: Tensor, anchors: AnchorSet, image_size: int) -> Tensor:
    """``(B, G, G)`` on the finest grid: the softmax of all anchor-cells' confidences, each coarser cell's share
    spread evenly over the finest cells it covers (for the pictures: where the model looks)."""
    probs = conf.float().softmax(1)
    grids = anchors.grids(image_size)
    fine = max(grids)
    out = probs.new_zeros(len(probs), fine, fine)
    start = 0
    for level, grid in zip(anchors.levels, grids, strict=True):
        n = len(level) * grid * grid
        per_cell = probs[:, start : start + n].reshape(-1, len(level), grid, grid).sum(1)
        scale = fine // grid
        out += per_cell.repeat_interleave(scale, 1).repeat_interleave(scale, 2) / (scale * scale)
        start += n
    return out
