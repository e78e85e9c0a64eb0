"""Separate an object's pixels from the background inside its bounding box, without GrabCut.

Heuristic ("differs from the border ring"):

1. The *ring* is a band just outside the box, ``RING_FRACTION`` (15 %) of the box's shorter side wide, between
   ``RING_MIN`` (2) and ``RING_MAX`` (12) pixels, clipped to the image. When the box covers (nearly) the whole
   image and the ring has fewer than 16 pixels, the box's own 2-pixel border is the ring instead.
2. The background is modelled by up to ``MAX_MODES`` (3) colour modes of the ring in CIE Lab (OpenCV's 8-bit
   scale): the median, then the median of the ring pixels farther than the threshold from every mode so far,
   as long as they are at least 20 % of the ring.
3. A box pixel belongs to the object when its Lab distance to the nearest mode exceeds
   ``max(DIST_THRESHOLD, 2.5 x the ring's own median distance to its modes)`` (18 units at least; the second
   term adapts to textured backgrounds), cleaned by a 3x3 morphological opening on boxes of 9+ pixels a side.

The mask may be empty (an object the colour of its surroundings); callers fall back on the box centre.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rsvg.data.records import BoxXYXY

RING_FRACTION = 0.15
RING_MIN = 2
RING_MAX = 12
MAX_MODES = 3
DIST_THRESHOLD = 18.0
_KERNEL = np.ones((3, 3), np.uint8)


def box_slices(box: BoxXYXY, width: int, height: int) -> tuple[slice, slice]:
    """Integer pixel slices ``(rows, cols)`` covering a float box, clipped to the image, at least 1 pixel."""
    x0 = min(max(math.floor(box[0]), 0), width - 1)
    y0 = min(max(math.floor(box[1]), 0), height - 1)
    x1 = max(min(math.ceil(box[2]), width), x0 + 1)
    y1 = max(min(math.ceil(box[3]), height), y0 + 1)
    return slice(y0, y1), slice(x0, x1)


def _ring_pixels(lab: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    h, w = lab.shape[:2]
    bh, bw = rows.stop - rows.start, cols.stop - cols.start
    r = int(min(max(round(RING_FRACTION * min(bh, bw)), RING_MIN), RING_MAX))
    oy0, oy1 = max(rows.start - r, 0), min(rows.stop + r, h)
    ox0, ox1 = max(cols.start - r, 0), min(cols.stop + r, w)
    outer = lab[oy0:oy1, ox0:ox1]
    keep = np.ones(outer.shape[:2], bool)
    keep[rows.start - oy0 : rows.stop - oy0, cols.start - ox0 : cols.stop - ox0] = False
    ring = outer[keep]
    if len(ring) >= 16:
        return ring
    inner = lab[rows, cols]
    band = np.zeros(inner.shape[:2], bool)
    band[:2, :] = band[-2:, :] = band[:, :2] = band[:, -2:] = True
    return inner[band]


def _modes(ring: np.ndarray) -> np.ndarray:
    modes = [np.median(ring, axis=0)]
    rest = ring
    for _ in range(MAX_MODES - 1):
        d = np.min(np.linalg.norm(rest[:, None, :] - np.asarray(modes)[None], axis=2), axis=1)
        far = rest[d > DIST_THRESHOLD]
        if len(far) < 0.2 * len(ring):
            break
        modes.append(np.median(far, axis=0))
        rest = far
    return np.asarray(modes, np.float32)


def object_mask(lab: np.ndarray, box: BoxXYXY) -> np.ndarray:
    """Boolean mask (over the box's pixel slices, see :func:`box_slices`) of the pixels unlike the ring."""
    h, w = lab.shape[:2]
    rows, cols = box_slices(box, w, h)
    ring = _ring_pixels(lab, rows, cols).astype(np.float32)
    modes = _modes(ring)
    ring_d = np.min(np.linalg.norm(ring[:, None, :] - modes[None], axis=2), axis=1)
    threshold = max(DIST_THRESHOLD, 2.5 * float(np.median(ring_d)))
    crop = lab[rows, cols].astype(np.float32)
    d = np.min(np.linalg.norm(crop[:, :, None, :] - modes[None, None], axis=3), axis=2)
    mask = (d > threshold).astype(np.uint8)
    if min(mask.shape) >= 9:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _KERNEL)
    return mask.astype(bool)
