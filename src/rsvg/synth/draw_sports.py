"""Drawers for sports grounds seen from above: courts, baseball diamonds, track fields, stadiums, golf courses.

Lines and markings are detail paint (a minority of the pixels); the playing surface carries the colour name.
"""

from __future__ import annotations

import math

import numpy as np

from rsvg.synth.geometry import aspect_shape, capsule, ellipse, local_rect, place
from rsvg.synth.layer import Layer, Sprite
from rsvg.synth.noise import noise_1d
from rsvg.synth.palette import Paint, detail, paint

_LINE = (236, 236, 230)
_SAND = (222, 206, 160)


def _seg(
    layer: Layer,
    a: tuple[float, float],
    b: tuple[float, float],
    cx: float,
    cy: float,
    angle: float,
    pnt: Paint,
    thickness: float,
) -> None:
    p = place([a, b], cx, cy, angle)
    layer.line(p[0], p[1], pnt, thickness)


def draw_tennis_court(
    rng: np.random.Generator, cx: float, cy: float, angle: float, length: float, width: float, color: str
) -> Sprite | None:
    """A tennis court with its run-off area (``length`` x ``width``); the length lies along ``angle``."""
    layer = Layer(cx, cy, math.hypot(length, width) / 2 + 1)
    surface = paint(rng, color)
    layer.poly(place(local_rect(-length / 2, -width / 2, length / 2, width / 2), cx, cy, angle), surface)
    cl, cw = 0.65 * length / 2, 0.6 * width / 2
    layer.poly(place(local_rect(-cl, -cw, cl, cw), cx, cy, angle), surface.shade(rng.uniform(1.06, 1.15)))
    line, t = detail(_LINE), max(1.0, length / 70)
    layer.polyline(place(local_rect(-cl, -cw, cl, cw), cx, cy, angle), line, t, closed=True)
    single = cw * 0.75
    for y in (-single, single):
        _seg(layer, (-cl, y), (cl, y), cx, cy, angle, line, t)
    service = cl * 0.54
    for x in (-service, service):
        _seg(layer, (x, -single), (x, single), cx, cy, angle, line, t)
    _seg(layer, (-service, 0), (service, 0), cx, cy, angle, line, t)
    _seg(layer, (0, -cw * 1.08), (0, cw * 1.08), cx, cy, angle, detail((40, 40, 40)), t)
    return layer.finish("tenniscourt", aspect_shape(length, width))


def draw_basketball_court(
    rng: np.random.Generator, cx: float, cy: float, angle: float, length: float, width: float, color: str
) -> Sprite | None:
    """A basketball court (``length`` x ``width``): surface, centre circle, keys and three-point arcs."""
    layer = Layer(cx, cy, math.hypot(length, width) / 2 + 1)
    surface = paint(rng, color)
    layer.poly(place(local_rect(-length / 2, -width / 2, length / 2, width / 2), cx, cy, angle), surface)
    hl, hw = 0.45 * length, 0.42 * width
    line, t = detail(_LINE), max(1.0, length / 70)
    layer.polyline(place(local_rect(-hl, -hw, hl, hw), cx, cy, angle), line, t, closed=True)
    _seg(layer, (0, -hw), (0, hw), cx, cy, angle, line, t)
    layer.polyline(place(ellipse(0.065 * length, 0.065 * length, 24), cx, cy, angle), line, t, closed=True)
    key = surface.shade(0.8)
    for sign in (1, -1):
        kx = sign * hl
        layer.poly(
            place(
                local_rect(
                    min(kx, kx - sign * 0.2 * length), -0.12 * width, max(kx, kx - sign * 0.2 * length), 0.12 * width
                ),
                cx,
                cy,
                angle,
            ),
            key,
        )
        arc = ellipse(0.25 * length, 0.25 * length, 20, math.pi / 2, 3 * math.pi / 2)
        arc[:, 0] = kx - sign * (0.05 * length) + sign * arc[:, 0]
        arc[:, 1] = np.clip(arc[:, 1], -hw * 0.94, hw * 0.94)
        layer.polyline(place(arc, cx, cy, angle), line, t)
    return layer.finish("basketballcourt", aspect_shape(length, width))


def draw_baseball_field(
    rng: np.random.Generator, cx: float, cy: float, angle: float, radius: float, dry: bool
) -> Sprite | None:
    """A baseball field: the fan of the outfield opening along ``angle`` from home plate at (cx, cy)."""
    grass = paint(rng, "brown" if dry else "green")
    dirt = paint(rng, "brown")
    fan = np.concatenate([[(0.0, 0.0)], ellipse(radius, radius, 40, -math.pi / 4, math.pi / 4)])
    layer = Layer(cx, cy, radius + 2)
    layer.poly(place(fan, cx, cy, angle), grass)
    infield = np.concatenate([[(0.0, 0.0)], ellipse(0.43 * radius, 0.43 * radius, 24, -math.pi / 4, math.pi / 4)])
    layer.poly(place(infield, cx, cy, angle), dirt.shade(1.1) if dry else dirt)
    layer.circle((cx, cy), 0.07 * radius, dirt)
    b = 0.27 * radius
    diamond = np.array(
        [(0, 0), (b / math.sqrt(2), -b / math.sqrt(2)), (b * math.sqrt(2), 0), (b / math.sqrt(2), b / math.sqrt(2))]
    )
    inner = diamond * 0.8 + (b * math.sqrt(2) * 0.1, 0)
    layer.poly(place(inner, cx, cy, angle), grass.shade(1.08))
    line, t = detail(_LINE), max(1.0, radius / 110)
    for corner in diamond[1:]:
        p = place([corner], cx, cy, angle)[0]
        layer.circle(p, max(0.8, radius / 90), line)
    for sign in (1, -1):
        end = (radius * math.cos(math.pi / 4) * 0.98, sign * radius * math.sin(math.pi / 4) * 0.98)
        _seg(layer, (0, 0), end, cx, cy, angle, line, t)
    layer.circle(place([(b * math.sqrt(2) / 2, 0)], cx, cy, angle)[0], max(1.0, 0.025 * radius), dirt.shade(1.15))
    return layer.finish("baseballfield", "irregular")


def draw_track_field(
    rng: np.random.Generator, cx: float, cy: float, angle: float, length: float, color: str
) -> Sprite | None:
    """A ground track field: running track (``color``) around a grass pitch."""
    width = length * rng.uniform(0.5, 0.56)
    layer = Layer(cx, cy, length / 2 + 2)
    track = paint(rng, color)
    layer.poly(place(capsule(length, width, 24), cx, cy, angle), track)
    band = 0.13 * width
    lane = detail(np.asarray(track.rgb) * 0.75 + np.asarray(_LINE) * 0.25)
    for k in (0.33, 0.66):
        layer.polyline(
            place(capsule(length - 2 * k * band, width - 2 * k * band, 24), cx, cy, angle), lane, 1, closed=True
        )
    pitch = paint(rng, "green" if rng.random() < 0.8 else "brown")
    layer.poly(place(capsule(length - 2 * band, width - 2 * band, 24), cx, cy, angle), pitch)
    line, t = detail(_LINE), max(1.0, length / 160)
    pl, pw = (length - width) / 2 + 0.15 * width, 0.3 * width
    layer.polyline(place(local_rect(-pl, -pw, pl, pw), cx, cy, angle), line, t, closed=True)
    _seg(layer, (0, -pw), (0, pw), cx, cy, angle, line, t)
    layer.polyline(place(ellipse(0.08 * width, 0.08 * width, 20), cx, cy, angle), line, t, closed=True)
    return layer.finish("groundtrackfield", "oval")


def draw_stadium(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    angle: float,
    length: float,
    width: float,
    color: str,
    sun: np.ndarray,
) -> Sprite | None:
    """A stadium (``length`` x ``width`` oval): roofed stands (``color``) around a pitch with a track."""
    aspect = min(1.0, width / length)
    a, b = length / 2, width / 2
    layer = Layer(cx, cy, a + 0.08 * a + 2)
    off = sun * 0.07 * a
    layer.shadow_poly(place(ellipse(a, b, 64), cx + off[0], cy + off[1], angle))
    roof = paint(rng, color)
    layer.poly(place(ellipse(a, b, 64), cx, cy, angle), roof)
    k = rng.uniform(0.58, 0.64)
    ribs = detail(np.asarray(roof.rgb) * 0.82)
    for th in np.linspace(0, 2 * math.pi, int(rng.integers(16, 28)), endpoint=False):
        p = place(
            [(k * a * math.cos(th), k * b * math.sin(th)), (a * 0.97 * math.cos(th), b * 0.97 * math.sin(th))],
            cx,
            cy,
            angle,
        )
        layer.line(p[0], p[1], ribs, 1)
    inner = ellipse(k * a, k * b, 48)
    layer.poly(place(inner, cx, cy, angle), detail(paint(rng, "red" if rng.random() < 0.7 else "blue").rgb))
    il, iw = 2 * k * a * 0.92, 2 * k * b * 0.8
    layer.poly(place(capsule(il, iw, 24), cx, cy, angle), detail(paint(rng, "green").rgb))
    line, t = detail(_LINE), max(1.0, length / 200)
    pl, pw = 0.3 * il, 0.28 * min(il, iw)
    layer.polyline(place(local_rect(-pl, -pw, pl, pw), cx, cy, angle), line, t, closed=True)
    _seg(layer, (0, -pw), (0, pw), cx, cy, angle, line, t)
    return layer.finish("stadium", "round" if aspect > 0.9 else "oval")


def draw_golf_field(rng: np.random.Generator, cx: float, cy: float, extent: float) -> Sprite | None:
    """A golf course within ``extent`` of (cx, cy): an irregular rough, fairways, putting greens, bunkers."""
    layer = Layer(cx, cy, extent + 2)
    rough = paint(rng, "green").shade(rng.uniform(0.85, 0.95))
    fairway = rough.shade(rng.uniform(1.2, 1.35))
    th = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    wobble = noise_1d(rng, 40, 6)
    r = extent * np.clip(0.72 + 0.22 * wobble, 0.45, 0.98)
    aspect = rng.uniform(0.6, 1.0)
    outline = np.stack([r * np.cos(th), r * np.sin(th) * aspect], axis=1)
    angle = rng.uniform(0, math.pi)
    layer.poly(place(outline, cx, cy, angle), rough)
    holes = []
    for _ in range(int(rng.integers(3, 7))):
        k = int(rng.integers(len(th)))
        reach = r[k] * rng.uniform(0.2, 0.55)
        hx, hy = place([(reach * math.cos(th[k]), reach * math.sin(th[k]) * aspect)], cx, cy, angle)[0]
        hl = rng.uniform(0.3, 0.55) * extent
        hw = rng.uniform(0.1, 0.16) * extent
        holes.append((hx, hy, hl, hw, angle + th[k] + rng.normal(0, 0.4)))
    for hx, hy, hl, hw, ang in holes:
        layer.poly(place(capsule(hl, hw, 16), hx, hy, ang), fairway)
    sand, green = detail(_SAND), fairway.shade(1.12)
    for hx, hy, hl, hw, ang in holes:
        end = place([(hl * 0.42, 0)], hx, hy, ang)[0]
        layer.circle(end, hw * 0.5, green)
        if rng.random() < 0.8:
            bunker = place([(hl * 0.3, hw * 0.6)], hx, hy, ang)[0]
            layer.poly(place(ellipse(hw * 0.3, hw * 0.18, 16), bunker[0], bunker[1], ang + 0.5), sand)
    if rng.random() < 0.4:
        hx, hy, hl, hw, ang = holes[0]
        pond = place([(-hl * 0.2, hw * 1.1)], hx, hy, ang)[0]
        layer.poly(place(ellipse(hw * 0.6, hw * 0.35, 20), pond[0], pond[1], ang), detail((40, 74, 88)))
    return layer.finish("golffield", "irregular")
