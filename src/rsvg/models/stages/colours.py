"""The image's colour map: the normalised image averaged over ``COLOUR_STRIDE``-pixel squares.

A frozen ImageNet backbone behind a LayerNorm keeps what an object is but little of its colour. The stages that
need colours (the candidate ranking, the box refinement) read them from this map instead. It is folded
space-to-depth into the stride-32 grid and rides at the end of the visual feature map, so feature caches hold it
with the backbone's maps.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

COLOUR_STRIDE = 4  # input pixels averaged into one pixel of the colour map


def colour_channels(cell_stride: int) -> int:
    """Channels the colour map adds to a stride-``cell_stride`` feature map (folded space-to-depth)."""
    return 3 * (cell_stride // COLOUR_STRIDE) ** 2


def colour_map(image: Tensor, cell_stride: int) -> Tensor:
    """The normalised image ``(B, 3, S, S)`` averaged over ``COLOUR_STRIDE``-pixel squares and folded into the
    stride-``cell_stride`` grid: ``(B, colour_channels(cell_stride), S/cell_stride, S/cell_stride)``."""
    pooled = F.avg_pool2d(image.float(), COLOUR_STRIDE)
    return F.pixel_unshuffle(pooled, cell_stride // COLOUR_STRIDE).to(image.dtype)


def unfold_colour_map(folded: Tensor, cell_stride: int) -> Tensor:
    """Inverse of the folding in :func:`colour_map`: ``(B, 3, S/COLOUR_STRIDE, S/COLOUR_STRIDE)``."""
    return F.pixel_shuffle(folded, cell_stride // COLOUR_STRIDE)
