"""A small random affine transform of the image and its box: the one-stage grounding references' augmentation.

FAOA, ReSC and LBYL-Net (Table II of the paper) train with a random rotation of up to ±5°, a shift of up to 10 % of
each side, a scale of 0.9–1.1 and a shear of up to ±2° (their training scripts; ``docs/models.md``). The box is the
axis-aligned box around its four transformed corners, clipped to the image, as the references compute it; a box
that the transform pushes mostly out of the image (less than ``min_visible`` of its transformed area left inside)
keeps the sample untransformed, as LBYL-Net keeps only valid transforms.

It works on the original image before the letterbox (the references transform the letterboxed 256-px canvas): the
shift is a fraction of the image's own sides, and the uncovered corners are filled with ``fill`` (the ImageNet mean
colour by default, which the normalisation maps to about 0). The query is unchanged: a turn of a few degrees moves
nothing from left to right.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = ["RandomAffine"]


class RandomAffine:
    """Rotate by ``U(-degrees, degrees)``, shift by ``U(-translate, translate)`` of each side, scale by
    ``U(*scale)`` and shear along x and y by ``U(-shear, shear)`` degrees each, about the image centre, with
    probability ``p``. Every draw is taken whether or not the transform fires or is kept, so the generator's
    stream does not depend on the image."""

    def __init__(
        self,
        degrees: float = 5.0,
        translate: float = 0.1,
        scale: Sequence[float] = (0.9, 1.1),
        shear: float = 2.0,
        p: float = 1.0,
        fill: Sequence[int] = (124, 116, 104),
        min_visible: float = 0.5,
    ) -> None:
        low, high = (float(v) for v in scale)
        checks = {
            "degrees": (degrees, 0.0 <= degrees <= 180.0, "in [0, 180]"),
            "translate": (translate, 0.0 <= translate < 1.0, "in [0, 1)"),
            "scale": (tuple(scale), 0.0 < low <= high, "(low, high) with 0 < low <= high"),
            "shear": (shear, 0.0 <= shear < 90.0, "in [0, 90)"),
            "p": (p, 0.0 <= p <= 1.0, "in [0, 1]"),
            "min_visible": (min_visible, 0.0 <= min_visible <= 1.0, "in [0, 1]"),
        }
        for name, (value, ok, want) in checks.items():
            if not ok:
                raise ValueError(f"affine {name} must be {want}, got {value!r}")
        if len(fill) != 3:
            raise ValueError(f"affine fill must be three channel values, got {fill!r}")
        self.degrees, self.translate, self.shear = float(degrees), float(translate), float(shear)
        self.scale = (low, high)
        self.p, self.fill, self.min_visible = float(p), [float(v) for v in fill], float(min_visible)

    def draw(self, generator: torch.Generator) -> tuple[bool, float, tuple[float, float], float, tuple[float, float]]:
        """Whether it fires, the angle, the shift as fractions of the sides, the scale and the two shears."""
        u = torch.rand(7, generator=generator, dtype=torch.float64).tolist()
        angle = (2 * u[1] - 1) * self.degrees
        shift = ((2 * u[2] - 1) * self.translate, (2 * u[3] - 1) * self.translate)
        factor = self.scale[0] + (self.scale[1] - self.scale[0]) * u[4]
        shears = ((2 * u[5] - 1) * self.shear, (2 * u[6] - 1) * self.shear)
        return u[0] < self.p, angle, shift, factor, shears

    def __call__(
        self, image: Tensor, box: Tensor, query: str, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, str]:
        fires, angle, shift, factor, shears = self.draw(generator)
        if not fires:
            return image, box, query
        height, width = image.shape[-2:]
        args = (angle, [shift[0] * width, shift[1] * height], factor, list(shears))
        moved = F.affine_bounding_boxes(
            box.reshape(-1, 4).to(torch.float64), "XYXY", (height, width), *args, clamping_mode=None
        )
        clipped = moved.clone()
        clipped[:, 0::2] = clipped[:, 0::2].clamp(0, width)
        clipped[:, 1::2] = clipped[:, 1::2].clamp(0, height)
        if not bool((_area(clipped) >= self.min_visible * _area(moved)).all() and (_area(clipped) > 0).all()):
            return image, box, query
        image = F.affine(image, *args, interpolation=InterpolationMode.BILINEAR, fill=self.fill)
        return image, clipped.to(box.dtype).reshape(box.shape), query

    def __repr__(self) -> str:
        return (
            f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
            f"shear={self.shear}, p={self.p}, min_visible={self.min_visible})"
        )


def _area(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
