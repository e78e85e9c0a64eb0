"""Image, box and query transforms for visual grounding: letterbox, normalisation and training augmentations.

Conventions. Images are ``torch.uint8`` tensors ``(3, H, W)`` in RGB. Boxes are float tensors ``(4,)`` (or
``(N, 4)``) ``(x1, y1, x2, y2)`` in continuous pixel coordinates of the current image: no "+1" anywhere, a box
from 10 to 20 is 10 wide, and a horizontal flip maps x to ``W - x`` exactly. Queries are ``str``.

Pipeline. The dataset applies an optional augmentation ``aug(image, box, query, generator)`` to the original
image, then :func:`letterbox` to the network size and :func:`normalize`::

    image, box, query = aug(image, box, query, generator)        # training only
    image, pad_mask, params = letterbox(image, 640)
    box = params.box_to_network(box)
    x = normalize(image, IMAGENET_MEAN, IMAGENET_STD, pad_mask)   # padding is exactly 0
    ...
    pred_original = params.box_to_original(pred_network)         # at test time

Letterbox. The image is scaled by ``size / max(H, W)`` (bilinear, antialiased) and **centred** on a
``size x size`` canvas filled with ``fill`` (by default the ImageNet mean colour, so that padding is neutral
even before :func:`normalize` zeroes it through the mask); odd padding puts the extra pixel right/bottom.

Augmentations. Each is a small class called as ``aug(image, box, query, generator)`` that returns ``(image, box,
query)`` and draws all its randomness from ``generator``, so a seeded generator gives the same result every time.
Flips and quarter turns remap the query's spatial words (:mod:`rsvg.data.spatial_words`); :mod:`rsvg.data.affine`
holds the one-stage references' small random affine transform. Flips and crops use torchvision's ``transforms.v2``
kernels on ``tv_tensors.BoundingBoxes`` (whose box maths match the convention above exactly); quarter turns and
resizes map boxes here: torchvision's rotate goes through cos/sin (errors ~1e-14), its box resize through float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from rsvg.data.affine import RandomAffine
from rsvg.data.spatial_words import remap_query

__all__ = [
    "DEFAULT_TRAIN_AUGMENTATION",
    "IMAGENET_FILL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Augmentation",
    "ColorJitter",
    "Compose",
    "LetterboxParams",
    "RandomHorizontalFlip",
    "RandomRotate90",
    "RandomScaleCrop",
    "RandomVerticalFlip",
    "build_train_transforms",
    "denormalize",
    "letterbox",
    "letterbox_geometry",
    "normalize",
    "padding_mask",
    "rot90_box",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
IMAGENET_FILL: tuple[int, int, int] = (124, 116, 104)  # the mean colour in uint8: round(255 * mean)

BoxLike = Tensor | np.ndarray
Augmentation = Callable[[Tensor, Tensor, str, torch.Generator], tuple[Tensor, Tensor, str]]


# --------------------------------------------------------------------------------------------------
# Box maps
# --------------------------------------------------------------------------------------------------
def _affine(
    box: BoxLike | Sequence[float],
    ratio: tuple[float, float, float, float],
    offset: tuple[float, float],
    inverse: bool = False,
) -> BoxLike:
    """``box * num / den + offset`` per axis (or its inverse) in float64, keeping the container type.

    ``ratio`` is ``(num_x, den_x, num_y, den_y)``; multiplying before dividing keeps whole-pixel
    coordinates exact (61 * 64 / 61 == 64, whereas 61 * (64 / 61) is not). Tensors keep their floating
    dtype and device (integer tensors become float64); anything else becomes a float64 numpy array.
    Works on ``(4,)`` and ``(..., 4)``.
    """
    num_x, den_x, num_y, den_y = ratio
    num, den = (num_x, num_y, num_x, num_y), (den_x, den_y, den_x, den_y)
    off = (offset[0], offset[1], offset[0], offset[1])
    if isinstance(box, Tensor):
        if box.shape[-1:] != (4,):
            raise ValueError(f"expected boxes of shape (..., 4), got {tuple(box.shape)}")
        out_dtype = box.dtype if box.is_floating_point() else torch.float64
        b = box.to(torch.float64)
        n, d, o = (torch.tensor(v, dtype=torch.float64, device=box.device) for v in (num, den, off))
        return ((b - o) * d / n if inverse else b * n / d + o).to(out_dtype)
    arr = np.asarray(box, dtype=np.float64)
    if arr.shape[-1:] != (4,):
        raise ValueError(f"expected boxes of shape (..., 4), got {arr.shape}")
    n, d, o = (np.asarray(v, dtype=np.float64) for v in (num, den, off))
    return (arr - o) * d / n if inverse else arr * n / d + o


def _resize_box(box: Tensor, new_w: int, old_w: int, new_h: int, old_h: int) -> Tensor:
    """Box after resizing its image from ``old_w x old_h`` to ``new_w x new_h`` (exact, float64 maths)."""
    out = _affine(box, (new_w, old_w, new_h, old_h), (0.0, 0.0))
    assert isinstance(out, Tensor)
    return out


def _v2_boxes(box: Tensor, height: int, width: int, op: Callable[..., Tensor], *args: Any) -> Tensor:
    """Apply a ``transforms.v2`` kernel to a plain ``(4,)``/``(N, 4)`` XYXY box tensor."""
    wrapped = tv_tensors.BoundingBoxes(box.reshape(-1, 4), format="XYXY", canvas_size=(height, width))
    return op(wrapped, *args).as_subclass(Tensor).reshape(box.shape)


# --------------------------------------------------------------------------------------------------
# Letterbox and normalisation
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LetterboxParams:
    """How :func:`letterbox` placed an image on its square canvas.

    ``scale`` is the nominal factor ``size / max(orig_w, orig_h)``. The resized image is
    ``resized_w x resized_h`` (whole pixels), so the exact per-axis factors used by the box maps are
    ``scale_x = resized_w / orig_w`` and ``scale_y = resized_h / orig_h``; they equal ``scale`` on the long
    side and differ from it by less than half a pixel over the short side. The image's top-left corner lies at
    ``(pad_x, pad_y)`` on the canvas.
    """

    scale: float
    pad_x: int
    pad_y: int
    orig_w: int
    orig_h: int
    size: int
    resized_w: int
    resized_h: int

    @property
    def scale_x(self) -> float:
        """Horizontal factor from original to network pixels."""
        return self.resized_w / self.orig_w

    @property
    def scale_y(self) -> float:
        """Vertical factor from original to network pixels."""
        return self.resized_h / self.orig_h

    def box_to_network(self, box: BoxLike | Sequence[float]) -> BoxLike:
        """Map ``(x1, y1, x2, y2)`` box(es) from original-image pixels to canvas pixels (float, exact)."""
        return _affine(box, self._ratio, (self.pad_x, self.pad_y))

    def box_to_original(self, box: BoxLike | Sequence[float]) -> BoxLike:
        """Map box(es) from canvas pixels back to original-image pixels; the inverse of :meth:`box_to_network`."""
        return _affine(box, self._ratio, (self.pad_x, self.pad_y), inverse=True)

    @property
    def _ratio(self) -> tuple[float, float, float, float]:
        return (self.resized_w, self.orig_w, self.resized_h, self.orig_h)


def letterbox(
    image: Tensor, size: int = 640, fill: int | Sequence[int] = IMAGENET_FILL
) -> tuple[Tensor, Tensor, LetterboxParams]:
    """Resize ``image`` (C, H, W) to fit ``size x size`` keeping its aspect ratio, centred on a filled canvas.

    Returns ``(canvas, pad_mask, params)``: the canvas has the image's dtype, ``pad_mask`` is a
    ``(size, size)`` bool tensor that is True on padding, and ``params`` maps boxes both ways.
    """
    if image.ndim != 3:
        raise ValueError(f"expected an image of shape (C, H, W), got {tuple(image.shape)}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    channels, height, width = image.shape
    if height < 1 or width < 1:
        raise ValueError(f"empty image of shape {tuple(image.shape)}")
    params = letterbox_geometry(width, height, size)
    new_w, new_h, pad_x, pad_y = params.resized_w, params.resized_h, params.pad_x, params.pad_y
    if (new_h, new_w) != (height, width):
        image = F.resize(image, [new_h, new_w], interpolation=InterpolationMode.BILINEAR, antialias=True)

    fill_values = torch.as_tensor(fill, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    canvas = fill_values.expand(channels, size, size).clone()
    canvas[:, pad_y : pad_y + new_h, pad_x : pad_x + new_w] = image
    pad_mask = torch.ones((size, size), dtype=torch.bool, device=image.device)
    pad_mask[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = False
    return canvas, pad_mask, params


def letterbox_geometry(width: int, height: int, size: int = 640) -> LetterboxParams:
    """Where :func:`letterbox` puts a ``width x height`` image on its ``size x size`` canvas (no pixels needed)."""
    scale = size / max(height, width)
    new_w = min(size, max(1, round(width * scale)))
    new_h = min(size, max(1, round(height * scale)))
    return LetterboxParams(scale, (size - new_w) // 2, (size - new_h) // 2, width, height, size, new_w, new_h)


def padding_mask(params: LetterboxParams) -> Tensor:
    """The ``(size, size)`` padding mask (True = padding) :func:`letterbox` returns for these parameters."""
    mask = torch.ones((params.size, params.size), dtype=torch.bool)
    mask[params.pad_y : params.pad_y + params.resized_h, params.pad_x : params.pad_x + params.resized_w] = False
    return mask


def normalize(
    image: Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    pad_mask: Tensor | None = None,
) -> Tensor:
    """uint8 image(s) ``(..., C, H, W)`` to float32 ``(x / 255 - mean) / std``.

    ``mean``/``std`` are per channel in [0, 1] units (the backbone's configuration). With ``pad_mask``
    (``(..., H, W)``, True on padding) the padded pixels are set to exactly 0 after normalisation.
    """
    out = F.normalize(image.to(torch.float32) / 255.0, list(mean), list(std))
    if pad_mask is not None:
        out = out.masked_fill(pad_mask.unsqueeze(-3), 0.0)
    return out


def denormalize(image: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """Inverse of :func:`normalize` for display: float ``(..., C, H, W)`` back to uint8 (rounded, clipped)."""
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device).reshape(-1, 1, 1)
    return ((image * s + m) * 255.0).round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------------
# Augmentations
# --------------------------------------------------------------------------------------------------
def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand(1, generator=generator, dtype=torch.float64).item()


def _fires(p: float, generator: torch.Generator) -> bool:
    """Draw once from ``generator`` (always, so the stream does not depend on ``p``) and compare to ``p``."""
    return torch.rand(1, generator=generator).item() < p


def _check_probability(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    return p


class Compose:
    """Apply augmentations in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Augmentation]) -> None:
        self.transforms = list(transforms)

    def __call__(
        self, image: Tensor, box: Tensor, query: str, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, str]:
        for t in self.transforms:
            image, box, query = t(image, box, query, generator)
        return image, box, query

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class _RandomFlip:
    """Mirror with probability ``p`` along one axis: the image, the box and the query's spatial words."""

    kernel: Callable[..., Tensor]
    op: str

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_probability(p)

    def __call__(
        self, image: Tensor, box: Tensor, query: str, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, str]:
        if not _fires(self.p, generator):
            return image, box, query
        height, width = image.shape[-2:]
        box = _v2_boxes(box, height, width, type(self).kernel)
        return type(self).kernel(image), box, remap_query(query, self.op)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror left-right with probability ``p``: x -> W - x, and "left" <-> "right" in the query."""

    kernel = staticmethod(F.horizontal_flip)
    op = "hflip"


class RandomVerticalFlip(_RandomFlip):
    """Mirror top-bottom with probability ``p``: y -> H - y, and "above" <-> "below" in the query."""

    kernel = staticmethod(F.vertical_flip)
    op = "vflip"


def rot90_box(box: Tensor, k: int, height: int, width: int) -> Tensor:
    """Box after ``torch.rot90(image, k, dims=(-2, -1))`` of an ``height x width`` image (counter-clockwise).

    One quarter turn maps a point (x, y) to (y, W - x); the result is exact (a permutation and reflections).
    """
    x1, y1, x2, y2 = box.unbind(-1)
    k %= 4
    if k == 1:
        out = (y1, width - x2, y2, width - x1)
    elif k == 2:
        out = (width - x2, height - y2, width - x1, height - y1)
    elif k == 3:
        out = (height - y2, x1, height - y1, x2)
    else:
        out = (x1, y1, x2, y2)
    return torch.stack(out, dim=-1)


_QUARTER_TURN_OPS = ("", "rot90", "rot180", "rot270")


class RandomRotate90:
    """With probability ``p``, turn the image by k in {1, 2, 3} quarter turns counter-clockwise (equally likely).

    The image is ``torch.rot90(image, k, dims=(-2, -1))``; the query is remapped with op ``"rot90"``,
    ``"rot180"`` or ``"rot270"`` (see :mod:`rsvg.data.spatial_words`).
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_probability(p)

    def __call__(
        self, image: Tensor, box: Tensor, query: str, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, str]:
        fires = _fires(self.p, generator)
        k = int(torch.randint(1, 4, (1,), generator=generator).item())
        if not fires:
            return image, box, query
        height, width = image.shape[-2:]
        box = rot90_box(box, k, height, width)
        return torch.rot90(image, k, dims=(-2, -1)).contiguous(), box, remap_query(query, _QUARTER_TURN_OPS[k])

    def __repr__(self) -> str:
        return f"RandomRotate90(p={self.p})"


class ColorJitter:
    """Random brightness, contrast and saturation, applied in a random order; **never hue**.

    Each factor is drawn uniformly from ``[max(0, 1 - v), 1 + v]``; ``v = 0`` disables that adjustment.
    Hue is left alone because queries name colours ("the red vehicle"); the box and query are unchanged.
    Keep the ranges mild: a strong brightness or saturation change can also make "white" or "gray" wrong.
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2, p: float = 1.0) -> None:
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self.p = _check_probability(p)

    def __call__(
        self, image: Tensor, box: Tensor, query: str, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, str]:
        if not _fires(self.p, generator):
            return image, box, query
        adjustments = [
            (F.adjust_brightness, self.brightness),
            (F.adjust_contrast, self.contrast),
            (F.adjust_saturation, self.saturation),
        ]
        order = torch.randperm(len(adjustments), generator=generator).tolist()
        factors = [_uniform(generator, max(0.0, 1.0 - v), 1.0 + v) for _, v in adjustments]
        for i in order:
            adjust, amount = adjustments[i]
            if amount > 0:
                image = adjust(image, factors[i])
        return image, box, query

    def __repr__(self) -> str:
        return (
            f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, p={self.p})"
        )


class RandomScaleCrop:
    """With probability ``p``, zoom in by ``s ~ U(scale_range)`` with a crop that always keeps the whole box.

    The crop window is ``round(W / s) x round(H / s)`` pixels at whole-pixel offsets, with ``s`` lowered as
    needed so that the box (clipped to the image) fits inside; its position is uniform among those that
    contain the box. The box is shifted exactly. By default the crop is returned at its own size,
    because the letterbox that follows rescales it to the network input anyway (resizing here too would only
    interpolate twice); ``resize_to_input=True`` resizes it back to ``H x W`` (bilinear, antialiased) and
    scales the box exactly.

    ``scale_range`` must lie in ``[1, inf)``: zooming out would need padding that the letterbox mask does not
    know about. The query is not edited, so absolute locations ("on the upper left", "top of the image") can
    become less true after a strong crop; the mild default (at most 1.25, i.e. 80 % of each side kept) keeps
    an object in the same part of the image in nearly all cases.
    """

    def __init__(
        self, scale_range: tuple[float, float] = (1.0, 1.25), p: float = 0.5, resize_to_input: bool = False
    ) -> None:
        low, high = scale_range
        if not 1.0 <= low <= high:
            raise ValueError(f"scale_range must satisfy 1 <= low <= high, got {scale_range}")
        self.scale_range = (float(low), float(high))
        self.p = _check_probability(p)
        self.resize_to_input = resize_to_input

    def __call__(
        self, image: Tensor, box: Tensor, query: str, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, str]:
        fires = _fires(self.p, generator)
        s = _uniform(generator, *self.scale_range)
        u, v = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        if not fires:
            return image, box, query
        height, width = image.shape[-2:]
        x_lo, x_hi = self._extent(box[..., 0::2], width)
        y_lo, y_hi = self._extent(box[..., 1::2], height)
        s = min(s, width / max(x_hi - x_lo, 1), height / max(y_hi - y_lo, 1))  # the box must fit
        left, crop_w = self._place(x_lo, x_hi, width, round(width / s), u)
        top, crop_h = self._place(y_lo, y_hi, height, round(height / s), v)
        box = _v2_boxes(box, height, width, F.crop, top, left, crop_h, crop_w)
        image = F.crop(image, top, left, crop_h, crop_w)
        if self.resize_to_input and (crop_h, crop_w) != (height, width):
            image = F.resize(image, [height, width], interpolation=InterpolationMode.BILINEAR, antialias=True)
            box = _resize_box(box, width, crop_w, height, crop_h)
        return image, box, query

    @staticmethod
    def _extent(edges: Tensor, extent: int) -> tuple[int, int]:
        """Whole-pixel span ``[lo, hi]`` covering ``edges`` clipped to ``[0, extent]``."""
        lo = math.floor(min(max(edges.min().item(), 0.0), extent))
        hi = math.ceil(min(max(edges.max().item(), 0.0), extent))
        return lo, hi

    @staticmethod
    def _place(lo: int, hi: int, extent: int, length: int, u: float) -> tuple[int, int]:
        """Offset (chosen by ``u`` in [0, 1)) and length of a window in ``[0, extent]`` containing ``[lo, hi]``."""
        length = min(extent, max(hi - lo, length, 1))
        first, last = max(0, hi - length), min(lo, extent - length)  # the valid offsets
        return first + min(last - first, math.floor(u * (last - first + 1))), length

    def __repr__(self) -> str:
        return f"RandomScaleCrop(scale_range={self.scale_range}, p={self.p}, resize_to_input={self.resize_to_input})"


# --------------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------------
DEFAULT_TRAIN_AUGMENTATION: dict[str, Any] = {
    "scale_crop": {"scale_range": (1.0, 1.25), "p": 0.5},
    "hflip": 0.5,
    "vflip": 0.5,
    "rot90": 0.5,
    "color_jitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2},
    "affine": None,
}


def build_train_transforms(cfg: Mapping[str, Any] | None = None) -> Compose:
    """Build the training augmentation from a config mapping (``None``: :data:`DEFAULT_TRAIN_AUGMENTATION`).

    Keys (all optional; a missing key keeps its default, ``None``/``0``/``False`` disables it):
    ``hflip``, ``vflip``, ``rot90``: a probability; ``color_jitter``: kwargs of :class:`ColorJitter`;
    ``scale_crop``: kwargs of :class:`RandomScaleCrop`; ``affine``: kwargs of :class:`RandomAffine` (off by
    default). Order: crop, flips, quarter turns, affine, colour.
    For evaluation use no augmentation at all (``aug=None``).
    """
    merged = dict(DEFAULT_TRAIN_AUGMENTATION)
    if cfg is not None:
        unknown = set(cfg) - set(DEFAULT_TRAIN_AUGMENTATION)
        if unknown:
            raise ValueError(
                f"unknown augmentation keys {sorted(unknown)}; expected {sorted(DEFAULT_TRAIN_AUGMENTATION)}"
            )
        merged.update(cfg)
    steps: list[Augmentation] = []
    if merged["scale_crop"]:
        steps.append(RandomScaleCrop(**dict(merged["scale_crop"])))
    if merged["hflip"]:
        steps.append(RandomHorizontalFlip(float(merged["hflip"])))
    if merged["vflip"]:
        steps.append(RandomVerticalFlip(float(merged["vflip"])))
    if merged["rot90"]:
        steps.append(RandomRotate90(float(merged["rot90"])))
    if merged["affine"]:
        steps.append(RandomAffine(**dict(merged["affine"])))
    if merged["color_jitter"]:
        steps.append(ColorJitter(**dict(merged["color_jitter"])))
    return Compose(steps)
