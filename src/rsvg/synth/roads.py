"""Straight roads, highways and railways across the image, and where they cross water or each other.

Roads are planned first: :func:`plan_road` records the bridge sites (road over water) and overpass sites (local
road over a highway) a road needs, and rejects roads that would end in water, need an overly long bridge, or
whose bridges and overpasses would clash. Then :func:`draw_roads` draws them together (local roads, highways
over them, railways last).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rsvg.synth.geometry import bbox, rect
from rsvg.synth.water import lookup
from rsvg.synth.world import Road, Span, World, inside_footprints

ASPHALT = (76, 78, 80)
_BALLAST = (124, 114, 100)
_RAIL = (58, 54, 50)
_WHITE = (222, 222, 214)
_YELLOW = (214, 186, 70)
WIDTHS = {"local": (14.0, 22.0), "highway": (46.0, 64.0), "rail": (16.0, 22.0)}
_DRAW_ORDER = ("local", "highway", "rail")


def _clip(p0: np.ndarray, d: np.ndarray, size: int) -> tuple[float, float] | None:
    """Parameter range of the line ``p0 + t d`` inside the square [0, size]^2 (slab method)."""
    lo, hi = -math.inf, math.inf
    for axis in (0, 1):
        if abs(d[axis]) < 1e-12:
            if not 0 <= p0[axis] <= size:
                return None
            continue
        a, b = (0 - p0[axis]) / d[axis], (size - p0[axis]) / d[axis]
        lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
    return (lo, hi) if hi - lo > 1 else None


def water_runs(world: World, road: Road, mask: np.ndarray | None = None) -> list[tuple[float, float, bool]]:
    """Stretches ``(t0, t1, touches_end)`` of the road's centre line over ``mask`` (water by default)."""
    t, pts = road.samples(1.0)
    wet = lookup(world.water if mask is None else mask, pts)
    if not wet.any():
        return []
    edges = np.diff(np.concatenate([[0], wet.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(float(t[a]), float(t[b]), a == 0 or b == t.size - 1) for a, b in zip(starts, stops, strict=True)]


def intersection(a: Road, b: Road) -> tuple[float, float] | None:
    """Parameters ``(ta, tb)`` where the centre lines of ``a`` and ``b`` meet (None if parallel)."""
    da, db = a.dir, b.dir
    det = da[0] * -db[1] - da[1] * -db[0]
    if abs(det) < 1e-9:
        return None
    rhs = b.p0 - a.p0
    ta = (rhs[0] * -db[1] - rhs[1] * -db[0]) / det
    tb = (da[0] * rhs[1] - da[1] * rhs[0]) / det
    return float(ta), float(tb)


def _crossings(world: World, road: Road) -> list[Span] | None:
    """Bridge and overpass sites the road would need; ``None`` if it cannot be built as planned."""
    s, size = world.s, world.size
    spans: list[Span] = []
    for t0, t1, touches in water_runs(world, road):
        if touches or t1 - t0 > 0.4 * size:
            return None
        margin = 6 * s + 0.12 * (t1 - t0)
        c = road.point((t0 + t1) / 2)
        length, width = t1 - t0 + 2 * margin, road.width + 4 * s
        spans.append(Span("bridge", float(c[0]), float(c[1]), road.angle, length, width, road.kind))
    for hw in world.roads_of("highway"):
        meet = intersection(road, hw)
        if meet is None or not (road.tmin <= meet[0] <= road.tmax and hw.tmin <= meet[1] <= hw.tmax):
            continue
        sin = abs(math.sin(road.angle - hw.angle))
        if road.kind == "highway" or sin < math.sin(math.radians(35)):
            return None  # highway interchanges are not drawn
        c = road.point(meet[0])
        length = hw.width / sin + 2 * world.rng.uniform(10, 24) * s
        spans.append(Span("overpass", float(c[0]), float(c[1]), road.angle, length, road.width + 3 * s, road.kind))
    return spans


def span_box(span: Span, s: float) -> tuple[float, float, float, float]:
    """A generous box around what a bridge, overpass or dam on ``span`` will cover (with its shadow)."""
    pad = 12 * s
    if span.kind == "dam":
        return bbox(rect(span.cx, span.cy, span.length + 50 * s, 0.8 * span.length + 50 * s, span.angle))
    x0, y0, x1, y1 = bbox(rect(span.cx, span.cy, span.length, span.width * 1.3, span.angle))
    return x0 - pad, y0 - pad, x1 + pad, y1 + pad


def _clashes(box: tuple[float, ...], boxes: list[tuple[float, ...]], size: int) -> bool:
    if box[0] < 1 or box[1] < 1 or box[2] > size - 1 or box[3] > size - 1:
        return True
    return any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes)


def plan_road(world: World, kind: str, angle: float, through: np.ndarray, width: float | None = None) -> Road | None:
    """Add a road through ``through`` along ``angle``, with its bridge and overpass sites.

    The road is refused when it would end in water or cross too much of it, when it would meet a highway at a
    shallow angle (or be a second highway), or when one of its bridges or overpasses would clash with another
    or leave the image.
    """
    lo, hi = WIDTHS[kind]
    w = width if width is not None else world.rng.uniform(lo, hi) * world.s
    d = np.array([math.cos(angle), math.sin(angle)])
    extent = _clip(np.asarray(through, dtype=np.float64), d, world.size)
    if extent is None:
        return None
    road = Road(kind, np.asarray(through, dtype=np.float64), angle, w, extent[0], extent[1])
    if world.keepout and inside_footprints(road.samples(4.0)[1], world.keepout, w / 2 + 6 * world.s).any():
        return None
    spans = _crossings(world, road)
    if spans is None:
        return None
    boxes = [span_box(sp, world.s) for sp in spans]
    for i, box in enumerate(boxes):
        if _clashes(box, world.reserved + boxes[:i], world.size):
            return None
    world.roads.append(road)
    world.spans.extend(spans)
    world.reserved.extend(boxes)
    return road


def _dashes(road: Road, offset: float, period: float, dash: float) -> list[np.ndarray]:
    n = np.array([-road.dir[1], road.dir[0]])
    t = np.arange(road.tmin - period, road.tmax + period, period)
    a = road.p0[None, :] + t[:, None] * road.dir[None, :] + offset * n[None, :]
    b = a + dash * road.dir[None, :]
    segs = np.stack([a, b], axis=1)
    return list(np.round(segs * 16).astype(np.int32))


def _stroke(img: np.ndarray, road: Road, offset: float, color: tuple, width: float) -> None:
    n = np.array([-road.dir[1], road.dir[0]])
    a = road.point(road.tmin - 4) + offset * n
    b = road.point(road.tmax + 4) + offset * n
    pa, pb = np.round(a * 16).astype(int), np.round(b * 16).astype(int)
    cv2.line(img, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), color, max(1, round(width)), cv2.LINE_8, 4)


def _draw_local(world: World, road: Road) -> None:
    c, s = world.canvas, world.s
    _stroke(c, road, 0, ASPHALT, road.width)
    color = _YELLOW if world.rng.random() < 0.4 else _WHITE
    cv2.polylines(c, _dashes(road, 0, 26 * s, 12 * s), False, color, max(1, round(1.3 * s)), cv2.LINE_8, 4)


def _draw_highway(world: World, road: Road) -> None:
    c, s, w = world.canvas, world.s, road.width
    _stroke(c, road, 0, ASPHALT, w)
    median = 0.1 * w
    _stroke(c, road, 0, (96, 110, 78) if world.rng.random() < 0.6 else (150, 150, 146), median)
    lane_w = (w - median) / 4
    thin = max(1, round(1.2 * s))
    for side in (-1, 1):
        _stroke(c, road, side * (w / 2 - 2 * s), _WHITE, thin)
        off = side * (median / 2 + lane_w)
        cv2.polylines(c, _dashes(road, off, 30 * s, 14 * s), False, _WHITE, thin, cv2.LINE_8, 4)


def _draw_rail(world: World, road: Road) -> None:
    c, s, w = world.canvas, world.s, road.width
    _stroke(c, road, 0, _BALLAST, w)
    gauge = 3.0 * s
    for track in (-w / 4, w / 4):
        for rail in (-gauge / 2, gauge / 2):
            _stroke(c, road, track + rail, _RAIL, max(1.0, 0.9 * s))


def draw_roads(world: World) -> None:
    """Draw every planned road onto the canvas and the road masks (water stays on top: draw water after)."""
    masks = {kind: np.zeros((world.size, world.size), dtype=np.uint8) for kind in _DRAW_ORDER}
    for kind in _DRAW_ORDER:
        for road in world.roads_of(kind):
            {"local": _draw_local, "highway": _draw_highway, "rail": _draw_rail}[kind](world, road)
            _stroke(masks[kind], road, 0, 1, road.width)
    dry = ~world.water
    world.highway |= masks["highway"].astype(bool) & dry
    world.rail |= masks["rail"].astype(bool) & dry
    world.road |= (masks["local"].astype(bool) & dry) | world.highway | world.rail
