"""Drawers for vehicles, airplanes, ships and train stations, seen from above.

Each drawer paints one object around (cx, cy) with its length along ``angle`` and returns a
:class:`~rsvg.synth.layer.Sprite` (``None`` if nothing could be drawn). ``sun`` is the unit vector shadows
fall along. Sizes are in pixels of the image being drawn.
"""

from __future__ import annotations

import math

import numpy as np

from rsvg.synth.geometry import aspect_shape, local_rect, place, rect
from rsvg.synth.layer import Layer, Sprite
from rsvg.synth.palette import detail, paint, pick

_GLASS = (36, 42, 50)


def draw_vehicle(
    rng: np.random.Generator, cx: float, cy: float, angle: float, length: float, color: str, sun: np.ndarray
) -> Sprite | None:
    """A car (or, now and then, a truck): a rectangle with windscreens."""
    truck = rng.random() < 0.15
    if truck:
        length *= rng.uniform(1.6, 2.2)
    width = length * (rng.uniform(0.3, 0.36) if truck else rng.uniform(0.42, 0.5))
    layer = Layer(cx, cy, length * 0.6 + width * 0.5 + 2)
    off = sun * width * 0.35
    layer.shadow_poly(rect(cx + off[0], cy + off[1], length, width, angle))
    body = paint(rng, color)
    layer.poly(rect(cx, cy, length, width, angle), body)
    glass = detail(_GLASS)
    if truck:
        layer.poly(place(local_rect(0.26 * length, -width / 2, 0.3 * length, width / 2), cx, cy, angle), glass)
        layer.poly(place(local_rect(0.38 * length, -0.4 * width, 0.44 * length, 0.4 * width), cx, cy, angle), glass)
    else:
        layer.poly(place(local_rect(0.08 * length, -0.41 * width, 0.24 * length, 0.41 * width), cx, cy, angle), glass)
        layer.poly(place(local_rect(-0.4 * length, -0.38 * width, -0.3 * length, 0.38 * width), cx, cy, angle), glass)
    return layer.finish("vehicle", aspect_shape(length, width))


def draw_airplane(
    rng: np.random.Generator, cx: float, cy: float, angle: float, span: float, color: str, sun: np.ndarray
) -> Sprite | None:
    """A swept-wing airliner: fuselage, wings, tailplane and engines; nose points along ``angle``."""
    length = span * rng.uniform(0.85, 1.05)
    fw = span * rng.uniform(0.08, 0.1)
    hl = length / 2
    fuselage = [
        (hl, 0),
        (hl - 1.2 * fw, -fw / 2),
        (-hl + 1.5 * fw, -fw / 2),
        (-hl, -fw / 5),
        (-hl, fw / 5),
        (-hl + 1.5 * fw, fw / 2),
        (hl - 1.2 * fw, fw / 2),
    ]
    sweep = rng.uniform(0.12, 0.22) * length
    root_lead, root_trail = 0.12 * length, -0.1 * length
    half = span / 2
    wing = [(root_lead, 0), (root_lead - sweep, half), (root_lead - sweep - 0.07 * length, half), (root_trail, 0)]
    tail_half = span * 0.18
    tail = [(-0.33 * hl, 0), (-0.8 * hl, tail_half), (-0.9 * hl, tail_half), (-0.86 * hl, 0)]
    parts = [np.array(fuselage)]
    for sign in (1, -1):
        for part in (wing, tail):
            parts.append(np.array(part) * (1, sign))
    layer = Layer(cx, cy, math.hypot(hl, half) + span * 0.15 + 2)
    off = sun * span * 0.1
    for p in parts:
        layer.shadow_poly(place(p, cx + off[0], cy + off[1], angle))
    body = paint(rng, color)
    for p in parts:
        layer.poly(place(p, cx, cy, angle), body)
    engine = detail(np.asarray(body.rgb) * 0.7)
    for sign in (1, -1):
        e = place(local_rect(root_lead - 0.1 * length, -fw * 0.3, root_lead + 0.02 * length, fw * 0.3), 0, 0, 0)
        e[:, 1] += sign * span * 0.17
        e[:, 0] -= sweep * 0.3
        layer.poly(place(e, cx, cy, angle), engine)
    return layer.finish("airplane", "cross")


def draw_ship(
    rng: np.random.Generator, cx: float, cy: float, angle: float, length: float, color: str, sun: np.ndarray
) -> Sprite | None:
    """A ship: hull with a pointed bow along ``angle``, a superstructure near the stern and deck details."""
    width = length * rng.uniform(0.16, 0.24)
    hl, hw = length / 2, width / 2
    bow = rng.uniform(0.18, 0.3) * length
    hull = np.array([(-hl, -hw), (hl - bow, -hw), (hl, 0), (hl - bow, hw), (-hl, hw)])
    layer = Layer(cx, cy, hl + 3)
    off = sun * width * 0.25
    layer.shadow_poly(place(hull, cx + off[0], cy + off[1], angle))
    body = paint(rng, color)
    layer.poly(place(hull, cx, cy, angle), body)
    top_color = "white" if color != "white" else pick(rng, {"gray": 1, "blue": 0.5, "red": 0.3})
    layer.poly(
        place(local_rect(-0.4 * length, -0.38 * width, -0.26 * length, 0.38 * width), cx, cy, angle),
        detail(paint(rng, top_color).rgb),
    )
    if length > 30 and rng.random() < 0.6:  # hatches of a cargo ship
        hatch = detail(np.asarray(body.rgb) * 0.78)
        for x in np.linspace(-0.18 * length, hl - bow - 0.08 * length, int(rng.integers(2, 5))):
            layer.poly(
                place(local_rect(x - 0.04 * length, -0.3 * width, x + 0.04 * length, 0.3 * width), cx, cy, angle), hatch
            )
    return layer.finish("ship", "slender")


def draw_train_station(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    angle: float,
    length: float,
    color: str,
    s: float,
    sun: np.ndarray,
) -> Sprite | None:
    """Platforms with canopies between tracks along the railway, and a station building on one side."""
    n = int(rng.integers(2, 5))
    pw, tw = rng.uniform(12, 16) * s, rng.uniform(7, 9) * s
    total = n * pw + (n - 1) * tw
    side = 1 if rng.random() < 0.5 else -1
    bdepth, blen = rng.uniform(24, 40) * s, length * rng.uniform(0.25, 0.4)
    layer = Layer(cx, cy, math.hypot(length / 2, total / 2 + bdepth + 6 * s) + 8 * s)
    canopy = paint(rng, color)
    ballast, rail = detail((118, 110, 98)), detail((58, 54, 50))
    y = -total / 2
    for i in range(n):
        plat = local_rect(-length / 2, y, length / 2, y + pw)
        off = sun * 3 * s
        layer.shadow_poly(place(plat, cx + off[0], cy + off[1], angle))
        layer.poly(place(plat, cx, cy, angle), canopy)
        layer.line(
            place([(-length / 2, y + pw / 2)], cx, cy, angle)[0],
            place([(length / 2, y + pw / 2)], cx, cy, angle)[0],
            canopy.shade(0.85),
            1,
        )
        y += pw
        if i < n - 1:
            layer.poly(place(local_rect(-length / 2 - 6 * s, y, length / 2 + 6 * s, y + tw), cx, cy, angle), ballast)
            for r in (0.3, 0.7):
                a = place([(-length / 2 - 6 * s, y + r * tw)], cx, cy, angle)[0]
                b = place([(length / 2 + 6 * s, y + r * tw)], cx, cy, angle)[0]
                layer.line(a, b, rail, max(1.0, 0.8 * s))
            y += tw
    bx = rng.uniform(-0.3, 0.3) * length
    gap = 4 * s
    y0 = total / 2 + gap if side > 0 else -total / 2 - gap - bdepth
    building = local_rect(bx - blen / 2, y0, bx + blen / 2, y0 + bdepth)
    off = sun * 5 * s
    layer.shadow_poly(place(building, cx + off[0], cy + off[1], angle))
    layer.poly(place(building, cx, cy, angle), canopy.shade(0.95))
    link = local_rect(bx - 3 * s, min(y0, -total / 2), bx + 3 * s, max(y0 + bdepth, total / 2))
    layer.poly(place(link, cx, cy, angle), canopy.shade(0.95))
    width = total + gap + bdepth
    return layer.finish("trainstation", aspect_shape(length, width))
