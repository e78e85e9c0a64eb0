"""Attribute a2: the colour of an object, from an HSV analysis of its own pixels.

Pixels: the object mask of :mod:`rsvg.construct.mask` (pixels unlike the box's surrounding ring), so that
the background of the box does not decide the colour. When the mask holds fewer than ``MIN_MASK_SHARE``
(15 %) of the box's pixels it may be a detail or a shadow rather than the object: its colour is then said only
when it also covers ``CENTRE_CONFIRM_SHARE`` (25 %) of the box's central region (half its width and height).
With no mask at all (an object the colour of its surroundings) nothing is said, and the central region's
colours are the plausible ones. On synthetic scenes this says a colour for about 85 % of the objects and is
right for about 97 % of those.

Palette (OpenCV HSV: H in 0-179, S and V in 0-255), tested in this order:

======  ===========================================================
black   V < 60
white   S < 40 and V >= 190
gray    S < 40 (and 60 <= V < 190)
brown   6 <= H < 25 and V < 170 (dark orange)
red     H < 6 or H >= 168
orange  6 <= H < 20
yellow  20 <= H < 34 (and 25 <= H for dark pixels, which are brown)
green   34 <= H < 85
blue    85 <= H < 130 (cyan included)
purple  130 <= H < 168 (magenta and pink included)
======  ===========================================================

Confidence: the colour is the most frequent palette word among the object's pixels when it covers at least
``MIN_SHARE`` (50 %) of them and there are ``MIN_PIXELS`` (12) pixels; otherwise :func:`object_color` returns
``None``. The *plausible* colours (used to keep other objects' expressions unambiguous) are every word with at
least ``PLAUSIBLE_SHARE`` (15 %) of the pixels, plus the words the dominant colour's median pixel takes when
moved by H +-4, S +-15 and V +-15 (a light gray near white is plausibly "white").

Two colours: DIOR-RSVG names some objects by two colours, "gray and black" and "white and gray"
(:data:`~rsvg.construct.vocabulary.TWO_COLORS`). The colour is such a pair, written in DIOR-RSVG's order, when the
object's two most frequent palette words are that pair, the second covers at least ``TWO_COLOR_SHARE`` (30 %) of
the pixels and the two together ``TWO_COLOR_TOTAL`` (80 %): a white vehicle whose windows and shaded side take a
third of its pixels is "white and gray". It replaces the one-colour word (or says a colour where no single word
reaches 50 %). A pair is plausible for an object when both its colours are.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rsvg.construct.mask import box_slices
from rsvg.construct.vocabulary import COLORS, TWO_COLORS, color_parts, two_color_phrase
from rsvg.data.records import BoxXYXY

MIN_PIXELS = 12
MIN_MASK_SHARE = 0.15
CENTRE_CONFIRM_SHARE = 0.25
MIN_SHARE = 0.50
PLAUSIBLE_SHARE = 0.15
TWO_COLOR_SHARE = 0.30
TWO_COLOR_TOTAL = 0.80
_JITTER = ((-4, 0, 4), (-15, 0, 15), (-15, 0, 15))


@dataclass(frozen=True)
class ColorResult:
    """The colour word (``None`` when not confident) and every colour a reader could see in the object."""

    color: str | None  # a palette word, or a two-colour phrase such as "gray and black"
    plausible: frozenset[str]  # empty: too few pixels to say anything (any colour is possible)
    shares: dict[str, float]  # palette word -> share of the pixels


def palette_labels(hsv: np.ndarray) -> np.ndarray:
    """Index into :data:`COLORS` of every pixel of an ``(..., 3)`` OpenCV HSV array."""
    h = hsv[..., 0].astype(np.int16)
    s = hsv[..., 1].astype(np.int16)
    v = hsv[..., 2].astype(np.int16)
    idx = {c: i for i, c in enumerate(COLORS)}
    out = np.full(h.shape, idx["purple"], np.uint8)
    out[(h >= 85) & (h < 130)] = idx["blue"]
    out[(h >= 34) & (h < 85)] = idx["green"]
    out[(h >= 20) & (h < 34)] = idx["yellow"]
    out[(h >= 6) & (h < 20)] = idx["orange"]
    out[(h < 6) | (h >= 168)] = idx["red"]
    out[(h >= 6) & (h < 25) & (v < 170)] = idx["brown"]
    low_sat = s < 40
    out[low_sat] = idx["gray"]
    out[low_sat & (v >= 190)] = idx["white"]
    out[v < 60] = idx["black"]
    return out


def _median_hsv(pixels: np.ndarray) -> np.ndarray:
    h = pixels[:, 0].astype(np.float64)
    # Hue is circular (red wraps around 0/180): take the median in a frame centred on the mean direction.
    ang = h * (2 * np.pi / 180.0)
    centre = np.arctan2(np.sin(ang).mean(), np.cos(ang).mean()) * 180.0 / (2 * np.pi)
    shifted = (h - centre + 90.0) % 180.0 - 90.0
    med_h = (np.median(shifted) + centre) % 180.0
    return np.array([med_h, np.median(pixels[:, 1]), np.median(pixels[:, 2])])


def _neighbour_colors(median: np.ndarray) -> set[str]:
    grid = np.array(
        [
            [(median[0] + dh) % 180, median[1] + ds, median[2] + dv]
            for dh in _JITTER[0]
            for ds in _JITTER[1]
            for dv in _JITTER[2]
        ]
    )
    grid[:, 1:] = np.clip(grid[:, 1:], 0, 255)
    return {COLORS[i] for i in np.unique(palette_labels(grid.astype(np.int16)))}


def two_colors(shares: dict[str, float]) -> str | None:
    """The two-colour phrase the pixel ``shares`` support (see the module docstring), or ``None``."""
    ranked = sorted(shares.items(), key=lambda kv: (-kv[1], COLORS.index(kv[0])))
    if len(ranked) < 2:
        return None
    (first, p1), (second, p2) = ranked[:2]
    if p2 < TWO_COLOR_SHARE or p1 + p2 < TWO_COLOR_TOTAL:
        return None
    return two_color_phrase(first, second)


def with_pairs(plausible: set[str] | frozenset[str]) -> frozenset[str]:
    """``plausible`` palette words with every two-colour phrase both of whose colours are among them."""
    return frozenset(plausible) | {" and ".join(pair) for pair in TWO_COLORS if set(pair) <= plausible}


def color_share(shares: dict[str, float], color: str) -> float:
    """The share of the pixels a colour attribute value covers (both colours of a pair)."""
    return sum(shares.get(part, 0.0) for part in color_parts(color))


def classify_pixels(pixels: np.ndarray) -> ColorResult:
    """The colour of a set of HSV pixels (see the module docstring for the rules)."""
    if len(pixels) < MIN_PIXELS:
        return ColorResult(None, frozenset(), {})
    labels = palette_labels(pixels)
    counts = np.bincount(labels, minlength=len(COLORS)) / len(labels)
    shares = {COLORS[i]: float(c) for i, c in enumerate(counts) if c > 0}
    top = int(np.argmax(counts))
    plausible = {COLORS[i] for i, c in enumerate(counts) if c >= PLAUSIBLE_SHARE}
    plausible |= _neighbour_colors(_median_hsv(pixels[labels == top]))
    color = two_colors(shares) or (COLORS[top] if counts[top] >= MIN_SHARE else None)
    return ColorResult(color, with_pairs(plausible), shares)


def _centre(hsv: np.ndarray) -> np.ndarray:
    bh, bw = hsv.shape[:2]
    y0, x0 = bh // 4, bw // 4
    return hsv[y0 : max(y0 + 1, bh - bh // 4), x0 : max(x0 + 1, bw - bw // 4)].reshape(-1, 3)


def object_color(rgb: np.ndarray, box: BoxXYXY, mask: np.ndarray | None = None) -> ColorResult:
    """Colour of the object in ``box`` of an RGB image; ``mask`` from :func:`rsvg.construct.mask.object_mask`."""
    h, w = rgb.shape[:2]
    rows, cols = box_slices(box, w, h)
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[rows, cols]), cv2.COLOR_RGB2HSV)
    n_mask = int(mask.sum()) if mask is not None else 0
    if mask is not None and n_mask >= max(MIN_PIXELS, MIN_MASK_SHARE * mask.size):
        return classify_pixels(hsv[mask])
    centre = classify_pixels(_centre(hsv))
    if n_mask < MIN_PIXELS:
        return ColorResult(None, centre.plausible, centre.shares)
    small = classify_pixels(hsv[mask])
    confirmed = small.color is not None and color_share(centre.shares, small.color) >= CENTRE_CONFIRM_SHARE
    plausible = with_pairs(small.plausible | centre.plausible)
    return ColorResult(small.color if confirmed else None, plausible, small.shares)
