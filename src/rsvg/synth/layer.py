"""A local drawing surface for one object, and the finished sprite with its tight box and colour.

Drawers work in image coordinates; a :class:`Layer` holds only the square around the object. Every paint call
also writes the paint's label, so the finished :class:`Sprite` knows exactly which pixels it covers (its tight
box) and which colour name covers most of them. Shadows are kept apart: they darken what lies beneath.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from rsvg.synth.palette import COLOR_NAMES, EMPTY, Paint

_SHIFT = 4  # cv2 fixed-point bits: coordinates are drawn with 1/16 pixel precision
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Slot:
    """A spot another object may occupy inside this one (a parking space, an apron stand, a berth)."""

    category: str
    x: float
    y: float
    angle: float
    max_size: float


@dataclass
class Sprite:
    """A drawn object cut to its extent, ready to be placed and composited."""

    category: str
    shape: str
    rgb: np.ndarray  # h x w x 3 uint8
    label: np.ndarray  # h x w uint8: colour index, DETAIL or EMPTY
    shadow: np.ndarray  # h x w bool
    ox: int  # image column of rgb[:, 0]
    oy: int  # image row of rgb[0]
    box: tuple[float, float, float, float]
    color: str
    color_share: float  # fraction of the body painted with ``color``
    slots: list[Slot] = field(default_factory=list)

    @property
    def body(self) -> np.ndarray:
        return self.label != EMPTY


class Layer:
    """A square drawing surface of half-size ``radius`` around (cx, cy), addressed in image coordinates."""

    def __init__(self, cx: float, cy: float, radius: float) -> None:
        r = math.ceil(radius) + 2
        self.ox = round(cx) - r
        self.oy = round(cy) - r
        n = 2 * r + 1
        self.rgb = np.zeros((n, n, 3), dtype=np.uint8)
        self.label = np.full((n, n), EMPTY, dtype=np.uint8)
        self.shadow = np.zeros((n, n), dtype=np.uint8)
        self.slots: list[Slot] = []

    def _fixed(self, pts: np.ndarray | list) -> np.ndarray:
        p = np.asarray(pts, dtype=np.float64).reshape(-1, 2) - (self.ox, self.oy)
        return np.round(p * _ONE).astype(np.int32)

    def _point(self, p: np.ndarray | tuple[float, float]) -> tuple[int, int]:
        q = self._fixed([p])[0]
        return int(q[0]), int(q[1])

    # Painted parts --------------------------------------------------------------------------------------
    def poly(self, pts: np.ndarray, pnt: Paint) -> None:
        """Fill a polygon."""
        p = [self._fixed(pts)]
        cv2.fillPoly(self.rgb, p, pnt.rgb, cv2.LINE_8, _SHIFT)
        cv2.fillPoly(self.label, p, pnt.label, cv2.LINE_8, _SHIFT)

    def circle(self, center: np.ndarray | tuple[float, float], radius: float, pnt: Paint) -> None:
        """Fill a disc."""
        c, r = self._point(center), max(1, round(radius * _ONE))
        cv2.circle(self.rgb, c, r, pnt.rgb, -1, cv2.LINE_8, _SHIFT)
        cv2.circle(self.label, c, r, pnt.label, -1, cv2.LINE_8, _SHIFT)

    def line(self, p0: np.ndarray, p1: np.ndarray, pnt: Paint, thickness: float = 1.0) -> None:
        """A straight line ``thickness`` pixels wide (at least 1)."""
        a, b, t = self._point(p0), self._point(p1), max(1, round(thickness))
        cv2.line(self.rgb, a, b, pnt.rgb, t, cv2.LINE_8, _SHIFT)
        cv2.line(self.label, a, b, pnt.label, t, cv2.LINE_8, _SHIFT)

    def polyline(self, pts: np.ndarray, pnt: Paint, thickness: float = 1.0, closed: bool = False) -> None:
        """An open or closed polyline ``thickness`` pixels wide."""
        p, t = [self._fixed(pts)], max(1, round(thickness))
        cv2.polylines(self.rgb, p, closed, pnt.rgb, t, cv2.LINE_8, _SHIFT)
        cv2.polylines(self.label, p, closed, pnt.label, t, cv2.LINE_8, _SHIFT)

    # Shadows --------------------------------------------------------------------------------------------
    def shadow_poly(self, pts: np.ndarray) -> None:
        cv2.fillPoly(self.shadow, [self._fixed(pts)], 1, cv2.LINE_8, _SHIFT)

    def shadow_circle(self, center: np.ndarray | tuple[float, float], radius: float) -> None:
        cv2.circle(self.shadow, self._point(center), max(1, round(radius * _ONE)), 1, -1, cv2.LINE_8, _SHIFT)

    def shadow_line(self, p0: np.ndarray, p1: np.ndarray, thickness: float = 1.0) -> None:
        t = max(1, round(thickness))
        cv2.line(self.shadow, self._point(p0), self._point(p1), 1, t, cv2.LINE_8, _SHIFT)

    # Result ---------------------------------------------------------------------------------------------
    def add_slot(self, category: str, x: float, y: float, angle: float, max_size: float) -> None:
        self.slots.append(Slot(category, float(x), float(y), float(angle), float(max_size)))

    def finish(self, category: str, shape: str, box_with_shadow: bool = False) -> Sprite | None:
        """Cut the layer to what was drawn; ``None`` when nothing was painted."""
        body = self.label != EMPTY
        shadow = self.shadow.astype(bool) & ~body
        cover = body | shadow
        rows, cols = np.flatnonzero(cover.any(axis=1)), np.flatnonzero(cover.any(axis=0))
        boxed = cover if box_with_shadow else body
        brows, bcols = np.flatnonzero(boxed.any(axis=1)), np.flatnonzero(boxed.any(axis=0))
        if brows.size == 0:
            return None
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        label = self.label[r0:r1, c0:c1]
        counts = np.bincount(label[label < len(COLOR_NAMES)], minlength=len(COLOR_NAMES))
        n_body = int(np.count_nonzero(body))
        top = int(np.argmax(counts))
        box = (
            float(self.ox + bcols[0]),
            float(self.oy + brows[0]),
            float(self.ox + bcols[-1] + 1),
            float(self.oy + brows[-1] + 1),
        )
        return Sprite(
            category=category,
            shape=shape,
            rgb=self.rgb[r0:r1, c0:c1],
            label=label,
            shadow=shadow[r0:r1, c0:c1],
            ox=self.ox + int(c0),
            oy=self.oy + int(r0),
            box=box,
            color=COLOR_NAMES[top],
            color_share=float(counts[top]) / max(1, n_body),
            slots=self.slots,
        )


def composite(canvas: np.ndarray, sprite: Sprite, shade: float = 0.5) -> None:
    """Draw ``sprite`` onto the uint8 RGB ``canvas`` in place: darken its shadow, then paint its body."""
    h, w = canvas.shape[:2]
    sh, sw = sprite.label.shape
    x0, y0 = max(0, sprite.ox), max(0, sprite.oy)
    x1, y1 = min(w, sprite.ox + sw), min(h, sprite.oy + sh)
    if x0 >= x1 or y0 >= y1:
        return
    lx, ly = x0 - sprite.ox, y0 - sprite.oy
    sl = np.s_[ly : ly + y1 - y0, lx : lx + x1 - x0]
    region = canvas[y0:y1, x0:x1]
    dark = sprite.shadow[sl]
    if dark.any():
        cv2.copyTo(cv2.convertScaleAbs(region, alpha=shade), dark.view(np.uint8), region)
    cv2.copyTo(sprite.rgb[sl], (sprite.label[sl] != EMPTY).view(np.uint8), region)


def body_window(sprite: Sprite, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of a full-image ``mask`` under the sprite and the sprite's body there (clipped to the image)."""
    h, w = mask.shape[:2]
    sh, sw = sprite.label.shape
    x0, y0 = max(0, sprite.ox), max(0, sprite.oy)
    x1, y1 = min(w, sprite.ox + sw), min(h, sprite.oy + sh)
    if x0 >= x1 or y0 >= y1:
        return np.zeros((0, 0), bool), np.zeros((0, 0), bool)
    lx, ly = x0 - sprite.ox, y0 - sprite.oy
    body = sprite.label[ly : ly + y1 - y0, lx : lx + x1 - x0] != EMPTY
    return mask[y0:y1, x0:x1], body
