"""The second look's source image: the sample letterboxed ``scale`` times finer than the network input.

:func:`zoom_letterbox` draws it; :class:`ZoomCanvas`, a sample extra (:mod:`rsvg.data.extras`), adds it to each
evaluation or inference sample as ``zoom_image`` (uint8), one canvas per image for all its expressions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from rsvg.data.records import GroundingSample
from rsvg.data.transforms import IMAGENET_FILL, LetterboxParams

__all__ = ["ZoomCanvas", "zoom_letterbox"]


def zoom_letterbox(
    image: Tensor, params: LetterboxParams, scale: int, fill: int | Sequence[int] = IMAGENET_FILL
) -> Tensor:
    """The letterbox ``params`` describes, ``scale`` times finer: ``image`` (C, H, W) resized to
    ``(resized_h·scale, resized_w·scale)`` and placed at ``(pad_y·scale, pad_x·scale)`` on a
    ``(size·scale)²`` canvas, so input pixel ``(x, y)`` of :func:`letterbox` covers pixels
    ``[x·scale, (x+1)·scale)`` here (the second look's source)."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    channels = image.shape[0]
    new_h, new_w = params.resized_h * scale, params.resized_w * scale
    if (new_h, new_w) != tuple(image.shape[1:]):
        image = F.resize(image, [new_h, new_w], interpolation=InterpolationMode.BILINEAR, antialias=True)
    side = params.size * scale
    fill_values = torch.as_tensor(fill, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    canvas = fill_values.expand(channels, side, side).clone()
    y0, x0 = params.pad_y * scale, params.pad_x * scale
    canvas[:, y0 : y0 + new_h, x0 : x0 + new_w] = image
    return canvas



class ZoomCanvas:
    """The sample's image letterboxed ``scale`` times finer than the network input (same layout)."""

    key = "zoom_canvas"
    supports_augmentation = False  # one canvas per image, reused for its expressions

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self._memo: tuple[str, torch.Tensor] | None = None  # the last image's canvas

    def bind(self, samples: Sequence[GroundingSample]) -> None:
        self._memo = None

    def add(
        self, out: dict, sample: GroundingSample | None, params: LetterboxParams, image: Callable[[], torch.Tensor]
    ) -> None:
        if sample is None:  # a user's image
            out["zoom_image"] = zoom_letterbox(image(), params, self.scale)
            return
        # a split lists an image's expressions one after another: decode and resize once for all of them
        if self._memo is None or self._memo[0] != sample.image_id:
            self._memo = (sample.image_id, zoom_letterbox(image(), params, self.scale))
        out["zoom_image"] = self._memo[1]
