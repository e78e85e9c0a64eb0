"""Attributes computed from boxes alone: a3 size, a5 absolute location, a6 relative location, a7 relative size.

Each comes as a *definite* word (said about a target only when it is clear) and a set of *plausible* words
(every word a reader might apply; used to keep expressions about other objects unambiguous).

a3 size — ``r = box area / image area``: tiny ``r < 0.1 %`` (about 25 x 25 px at 800 x 800), small
``< 1 %``, medium ``< 5 %`` (never written), large ``< 25 %``, huge above. Definite only when ``r`` is at
least a factor ``SIZE_MARGIN`` (1.25) away from the thresholds around it. Plausible: tiny ``r < 0.125 %``,
small ``r < 1.25 %`` (tiny things are small too), large ``r >= 4 %``, huge ``r >= 20 %``.

a5 absolute location — the box centre on a 3 x 3 grid of the image, its lines at ``GRID_LINES`` (30 % and 70 %
of each side: the middle band is wider than a third, so that, on objects placed uniformly, "in the middle" takes
about the share it has among DIOR-RSVG's location phrases, 21.6 %, and each corner about its 8 %). Definite
only when the centre is at least ``GRID_MARGIN`` (3 % of the image side) from the grid lines. Plausible: every
cell whose extent, widened by ``GRID_SLACK`` (6 %), holds the centre; an edge word also covers its corners
("left" is plausible for an object on the top left), "middle" only the central cell.

a6 relative location — the direction from the anchor's centre to the target's centre (degrees, y up), in
eight 45-degree sectors (right, upper right, above, upper left, left, lower left, below, lower right).
Definite when the angle is within ``DIRECTION_DEFINITE`` (17.5 degrees) of a direction and the boxes overlap
by less than ``MAX_OVERLAP`` (30 % of the smaller box). Plausible: left/right/above/below within
``CARDINAL_SPREAD`` (50 degrees, so diagonal neighbours count), diagonal words within ``DIAGONAL_SPREAD``
(35 degrees); every direction when the boxes overlap that much or share a centre.

a7 relative size — ``q = target area / anchor area``: "smaller" when ``q <= 1 / SIZE_RATIO`` (1.5),
"bigger" (DIOR-RSVG's word, never "larger") when ``q >= SIZE_RATIO``; plausible from the factor
``PLAUSIBLE_SIZE_RATIO`` (1.2). "Similar in size" is never said (too vague to be unambiguous).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rsvg.construct.vocabulary import DIRECTIONS, LOCATIONS
from rsvg.data.records import BoxXYXY

SIZE_THRESHOLDS: tuple[float, ...] = (0.001, 0.01, 0.05, 0.25)
SIZE_WORDS: tuple[str, ...] = ("tiny", "small", "medium", "large", "huge")
SIZE_MARGIN = 1.25
PLAUSIBLE_SIZE: dict[str, tuple[float, float]] = {
    "tiny": (0.0, 0.00125),
    "small": (0.0, 0.0125),
    "medium": (0.008, 0.0625),
    "large": (0.04, math.inf),
    "huge": (0.2, math.inf),
}
GRID_LINES = (0.3, 0.7)
GRID_MARGIN = 0.03
GRID_SLACK = 0.06
DIRECTION_DEFINITE = 17.5
CARDINAL_SPREAD = 50.0
DIAGONAL_SPREAD = 35.0
MAX_OVERLAP = 0.30
SIZE_RATIO = 1.5
PLAUSIBLE_SIZE_RATIO = 1.2
_CARDINAL = frozenset({"left", "right", "above", "below"})


def area_fraction(box: BoxXYXY, width: int, height: int) -> float:
    """Box area over image area."""
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0) / (float(width) * float(height))


def size_word(box: BoxXYXY, width: int, height: int) -> str | None:
    """Definite size word of a box (``None`` near a threshold); may be "medium", which is never written."""
    r = area_fraction(box, width, height)
    k = int(np.searchsorted(SIZE_THRESHOLDS, r, side="right"))
    lo = SIZE_THRESHOLDS[k - 1] if k > 0 else None
    hi = SIZE_THRESHOLDS[k] if k < len(SIZE_THRESHOLDS) else None
    if (lo is not None and r < lo * SIZE_MARGIN) or (hi is not None and r * SIZE_MARGIN > hi):
        return None
    return SIZE_WORDS[k]


def plausible_sizes(box: BoxXYXY, width: int, height: int) -> frozenset[str]:
    """Every size word a reader might apply to the box."""
    r = area_fraction(box, width, height)
    return frozenset(w for w, (lo, hi) in PLAUSIBLE_SIZE.items() if lo <= r < hi)


def _cell_word(row: int, col: int) -> str:
    return LOCATIONS[3 * row + col]


_BANDS = (0.0, *GRID_LINES, 1.0)


def _bands(v: float, margin: float) -> list[int]:
    """The grid bands (0, 1, 2) whose extent, widened by ``margin`` (narrowed when negative), holds ``v``."""
    return [k for k in range(3) if _BANDS[k] - margin <= v <= _BANDS[k + 1] + margin]


def _centre(box: BoxXYXY) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def absolute_location(box: BoxXYXY, width: int, height: int) -> str | None:
    """The grid cell of the box centre ("top left" ... "bottom right"), ``None`` near a grid line."""
    cx, cy = _centre(box)
    u, v = cx / width, cy / height
    cols, rows = _bands(u, -GRID_MARGIN), _bands(v, -GRID_MARGIN)
    if len(cols) != 1 or len(rows) != 1:
        return None
    return _cell_word(rows[0], cols[0])


def plausible_locations(box: BoxXYXY, width: int, height: int) -> frozenset[str]:
    """Every location word a reader might apply to the box (see the module docstring)."""
    cx, cy = _centre(box)
    cols, rows = _bands(cx / width, GRID_SLACK), _bands(cy / height, GRID_SLACK)
    words = {_cell_word(r, c) for r in rows for c in cols}
    if 0 in cols:
        words.add("left")
    if 2 in cols:
        words.add("right")
    if 0 in rows:
        words.add("top")
    if 2 in rows:
        words.add("bottom")
    return frozenset(words)


def _as_array(boxes: Sequence[BoxXYXY]) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def overlap_matrix(boxes: Sequence[BoxXYXY]) -> np.ndarray:
    """``[i, j]`` = intersection of boxes i and j over the smaller of their areas."""
    b = _as_array(boxes)
    iw = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    smaller = np.maximum(np.minimum(area[:, None], area[None, :]), 1e-9)
    return iw * ih / smaller


def direction_matrix(boxes: Sequence[BoxXYXY]) -> np.ndarray:
    """``[i, j]`` = direction in degrees [0, 360) from box j's centre to box i's centre, y pointing up."""
    b = _as_array(boxes)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    dx = cx[:, None] - cx[None, :]
    dy = -(cy[:, None] - cy[None, :])
    return np.degrees(np.arctan2(dy, dx)) % 360.0


def _angle_gap(angles: np.ndarray, axis: float) -> np.ndarray:
    return np.abs((angles - axis + 180.0) % 360.0 - 180.0)


def relative_location_matrices(boxes: Sequence[BoxXYXY]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(definite, plausible)``: for each a6 word, a boolean ``[target, anchor]`` matrix (diagonal False)."""
    b = _as_array(boxes)
    n = len(b)
    angles = direction_matrix(b)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    same_centre = (np.abs(cx[:, None] - cx[None, :]) < 1e-6) & (np.abs(cy[:, None] - cy[None, :]) < 1e-6)
    tangled = (overlap_matrix(b) >= MAX_OVERLAP) | same_centre
    off_diag = ~np.eye(n, dtype=bool)
    definite, plausible = {}, {}
    for word, axis in DIRECTIONS.items():
        gap = _angle_gap(angles, axis)
        spread = CARDINAL_SPREAD if word in _CARDINAL else DIAGONAL_SPREAD
        definite[word] = (gap <= DIRECTION_DEFINITE) & ~tangled & off_diag
        plausible[word] = ((gap <= spread) | tangled) & off_diag
    return definite, plausible


def relative_size_matrices(boxes: Sequence[BoxXYXY]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(definite, plausible)``: for "smaller" and "bigger", boolean ``[target, anchor]`` matrices."""
    b = _as_array(boxes)
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9)
    q = area[:, None] / area[None, :]
    off_diag = ~np.eye(len(b), dtype=bool)
    definite = {"smaller": (q <= 1 / SIZE_RATIO) & off_diag, "bigger": (q >= SIZE_RATIO) & off_diag}
    plausible = {
        "smaller": (q < 1 / PLAUSIBLE_SIZE_RATIO) & off_diag,
        "bigger": (q > PLAUSIBLE_SIZE_RATIO) & off_diag,
    }
    return definite, plausible


def relative_location(target: BoxXYXY, anchor: BoxXYXY) -> str | None:
    """Definite a6 word for a target box with respect to an anchor box, or ``None``."""
    definite, _ = relative_location_matrices([target, anchor])
    return next((w for w, m in definite.items() if m[0, 1]), None)


def relative_size(target: BoxXYXY, anchor: BoxXYXY) -> str | None:
    """Definite a7 word ("smaller" / "bigger") for a target box with respect to an anchor box, or ``None``."""
    definite, _ = relative_size_matrices([target, anchor])
    return next((w for w, m in definite.items() if m[0, 1]), None)
