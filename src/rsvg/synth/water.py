"""Water bodies: sea along a coast, meandering rivers, lakes and dammed reservoirs.

Shapes are built on a quarter-resolution mask, roughened with noise and scaled up, so shores are smooth and
cheap. Each function only updates ``world.water`` (and the geometry objects need later); :func:`paint_water`
draws all water at once.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rsvg.synth.geometry import bbox, direction, ellipse, place, rect
from rsvg.synth.noise import noise_1d, value_noise
from rsvg.synth.world import Coast, Span, World

_SEA = ((22, 52, 78), (40, 78, 100))
_INLAND = ((38, 66, 72), (62, 92, 92))
_BEACH = (206, 192, 156)


def _upsample(small: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR) > 0.5


def add_sea(world: World) -> None:
    """Sea along a random image side, reaching 20-45% into the image with a wavy coastline."""
    rng, size = world.rng, world.size
    side = ("top", "bottom", "left", "right")[int(rng.integers(4))]
    depth = size * rng.uniform(0.22, 0.42) + size * 0.05 * noise_1d(rng, size, int(rng.integers(3, 8)))
    depth += size * 0.012 * noise_1d(rng, size, 30)
    v = np.arange(size, dtype=np.float64)
    along_rows = v[:, None] < depth[None, :]  # sea at the top: row index < depth(column)
    mask = {
        "top": along_rows,
        "bottom": along_rows[::-1],
        "left": along_rows.T,
        "right": along_rows.T[:, ::-1],
    }[side]
    world.water |= mask
    world.coast = Coast(side=side, depth=depth, size=size)


def _meander(rng: np.random.Generator, size: int, angle: float, through: np.ndarray) -> np.ndarray:
    """A wavy centre line through ``through`` roughly along ``angle``, long enough to leave the image."""
    d, n = direction(angle), direction(angle + math.pi / 2)
    t = np.linspace(-1.5 * size, 1.5 * size, 400)
    wiggle = size * 0.08 * noise_1d(rng, t.size, 6)
    wiggle -= wiggle[t.size // 2]
    return through[None, :] + t[:, None] * d[None, :] + wiggle[:, None] * n[None, :]


def add_river(world: World, width: float | None = None) -> None:
    """A meandering river crossing the whole image."""
    rng, size, s = world.rng, world.size, world.s
    angle = rng.uniform(0, math.pi)
    through = rng.uniform(0.3, 0.7, 2) * size
    line = _meander(rng, size, angle, through)
    w = width if width is not None else rng.uniform(34, 80) * s
    _draw_channel(world, line, w)
    inside = (line[:, 0] >= 0) & (line[:, 0] < size) & (line[:, 1] >= 0) & (line[:, 1] < size)
    world.river = line[inside]


def _draw_channel(world: World, line: np.ndarray, width: float) -> None:
    q = max(1, world.size // 4)
    small = np.zeros((q, q), dtype=np.float32)
    pts = np.round(line * (q / world.size) * 16).astype(np.int32)
    cv2.polylines(small, [pts], False, 1.0, max(1, round(width * q / world.size)), cv2.LINE_AA, 4)
    rough = value_noise(world.rng, (q, q), cells=10, octaves=2) - 0.5
    small = cv2.GaussianBlur(small, (0, 0), 1.0) + 0.5 * rough
    world.water |= _upsample(small, world.size)


def add_lake(world: World) -> None:
    """An irregular lake somewhere in the image."""
    rng, size = world.rng, world.size
    q = max(1, size // 4)
    small = np.zeros((q, q), dtype=np.float32)
    c = rng.uniform(0.25, 0.75, 2) * q
    a, b = rng.uniform(0.1, 0.22) * q, rng.uniform(0.08, 0.18) * q
    pts = np.round(place(ellipse(a, b, 48), c[0], c[1], rng.uniform(0, math.pi)) * 16).astype(np.int32)
    cv2.fillPoly(small, [pts], 1.0, cv2.LINE_AA, 4)
    rough = value_noise(rng, (q, q), cells=6, octaves=2) - 0.5
    small = cv2.GaussianBlur(small, (0, 0), 1.5) + 0.6 * rough
    world.water |= _upsample(small, size)


def add_reservoir(world: World) -> None:
    """A reservoir held by a dam line, with the river leaving below the dam; records the dam span."""
    rng, size, s = world.rng, world.size, world.s
    dam_c = rng.uniform(0.35, 0.65, 2) * size
    along = rng.uniform(0, 2 * math.pi)  # dam direction; upstream lies on the +normal side
    normal = direction(along + math.pi / 2)
    a = rng.uniform(0.18, 0.3) * size  # reservoir half-width along the dam
    b = rng.uniform(0.2, 0.35) * size
    centre = dam_c + normal * 0.3 * b
    q = max(1, size // 4)
    k = q / size
    small = np.zeros((q, q), dtype=np.float32)
    pts = np.round(place(ellipse(a, b, 64), *centre, along) * k * 16).astype(np.int32)
    cv2.fillPoly(small, [pts], 1.0, cv2.LINE_AA, 4)
    rough = value_noise(rng, (q, q), cells=7, octaves=2) - 0.5
    small = cv2.GaussianBlur(small, (0, 0), 1.5) + 0.5 * rough
    lake = _upsample(small, size)
    yy, xx = np.mgrid[0:size, 0:size]
    upstream = (xx - dam_c[0]) * normal[0] + (yy - dam_c[1]) * normal[1] > 0
    world.water |= lake & upstream
    # The river leaves the dam downstream and winds off the image.
    width = rng.uniform(24, 46) * s
    line = _meander(rng, size, along - math.pi / 2, dam_c)
    d = (line - dam_c) @ normal
    down = line[d <= 0]
    _draw_channel(world, down, width)
    # Dam: across the reservoir at the cut line, sized on the water actually there.
    t = np.arange(-1.5 * a, 1.5 * a)
    probe = dam_c[None, :] + t[:, None] * direction(along)[None, :] + 3 * normal[None, :]
    wet = lookup(world.water, probe)
    zero = t.size // 2
    if not wet[zero]:
        return
    lo, hi = zero, zero
    while lo > 0 and wet[lo - 1]:
        lo -= 1
    while hi < t.size - 1 and wet[hi + 1]:
        hi += 1
    mid = (t[lo] + t[hi]) / 2
    c = dam_c + mid * direction(along)
    span = Span("dam", float(c[0]), float(c[1]), along, float(t[hi] - t[lo]), 0.0)
    world.spans.append(span)
    world.reserved.append(bbox(rect(span.cx, span.cy, span.length * 1.3 + 50 * s, span.length + 50 * s, along)))
    world.river = down


def lookup(mask: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Mask values at points; points outside the image read False."""
    h, w = mask.shape
    xi, yi = np.floor(pts[:, 0]).astype(np.int64), np.floor(pts[:, 1]).astype(np.int64)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    out = np.zeros(len(pts), dtype=bool)
    out[ok] = mask[yi[ok], xi[ok]]
    return out


def paint_beach(world: World) -> None:
    """A sand strip along the sea shore."""
    if world.coast is None:
        return
    k = max(3, round(world.rng.uniform(8, 20) * world.s)) | 1
    grown = cv2.dilate(world.water.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    band = grown & ~world.water
    world.canvas[band] = (world.canvas[band] * 0.3 + np.asarray(_BEACH, dtype=np.float32) * 0.7).astype(np.uint8)


def paint_water(world: World) -> None:
    """Paint every water pixel with a slightly varying water colour and soft shores."""
    rows, cols = np.flatnonzero(world.water.any(axis=1)), np.flatnonzero(world.water.any(axis=0))
    if rows.size == 0:
        return
    size = world.size
    y0, y1 = max(0, rows[0] - 2), min(size, rows[-1] + 3)
    x0, x1 = max(0, cols[0] - 2), min(size, cols[-1] + 3)
    lo, hi = _SEA if world.coast is not None else _INLAND
    q = min(size, 64)
    tone = value_noise(world.rng, (q, q), cells=3, octaves=2)
    low = np.asarray(lo, dtype=np.float32)
    coarse = (low + tone[..., None] * (np.asarray(hi, dtype=np.float32) - low)).astype(np.uint8)
    color = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)[y0:y1, x0:x1]
    alpha = cv2.GaussianBlur(world.water[y0:y1, x0:x1].astype(np.float32), (3, 3), 0.8)
    region = world.canvas[y0:y1, x0:x1]
    region[...] = cv2.blendLinear(region, color, 1.0 - alpha, alpha)
