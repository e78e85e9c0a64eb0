"""Drawers for storage tanks, chimneys, windmills, bridges, overpasses and dams, seen from above."""

from __future__ import annotations

import math

import numpy as np

from rsvg.synth.geometry import aspect_shape, direction, local_rect, place
from rsvg.synth.layer import Layer, Sprite
from rsvg.synth.palette import detail, paint
from rsvg.synth.world import Span

_DARK = (30, 30, 32)


def draw_storage_tank(
    rng: np.random.Generator, cx: float, cy: float, radius: float, color: str, sun: np.ndarray
) -> Sprite | None:
    """A round tank: a darker rim, the roof in ``color``, a centre vent and a short shadow."""
    layer = Layer(cx, cy, radius * 1.35 + 2)
    off = sun * radius * 0.3
    layer.shadow_circle((cx + off[0], cy + off[1]), radius)
    roof = paint(rng, color)
    layer.circle((cx, cy), radius, detail(np.asarray(roof.rgb) * 0.7))
    layer.circle((cx, cy), radius - max(1.0, 0.1 * radius), roof)
    if radius > 6 and rng.random() < 0.5:  # floating roof sitting a little below the rim
        inner = -sun * radius * 0.08
        layer.circle((cx + inner[0], cy + inner[1]), radius * 0.8, roof.shade(0.9))
    layer.circle((cx, cy), max(0.8, 0.1 * radius), detail(np.asarray(roof.rgb) * 0.6))
    return layer.finish("storagetank", "round")


def draw_chimney(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    height: float,
    width: float,
    color: str,
    sun: np.ndarray,
    lean: np.ndarray,
) -> Sprite | None:
    """A tall chimney seen slightly off-nadir: a tapering body from its base along ``lean``, and its shadow.

    The box covers body and shadow; the shadow is narrower than the body, so the body dominates.
    """
    base = np.array([cx, cy])
    top = base + lean * height
    n = np.array([-lean[1], lean[0]])
    layer = Layer(cx, cy, height * 1.1 + width + 2)
    tip = base + sun * height * 0.85
    ns = np.array([-sun[1], sun[0]])
    layer.shadow_poly(
        np.array([base + ns * width * 0.3, tip + ns * width * 0.2, tip - ns * width * 0.2, base - ns * width * 0.3])
    )
    body = paint(rng, color)
    layer.poly(
        np.array([base + n * width / 2, top + n * width * 0.36, top - n * width * 0.36, base - n * width / 2]), body
    )
    layer.circle(base, width / 2, body)
    if rng.random() < 0.35:  # a painted band near the top
        band = detail(paint(rng, "white" if color == "red" else "red").rgb)
        a, b = base + lean * height * 0.8, base + lean * height * 0.9
        layer.poly(
            np.array([a + n * width * 0.39, b + n * width * 0.37, b - n * width * 0.37, a - n * width * 0.39]), band
        )
    layer.circle(top, width * 0.36, body.shade(0.92))
    layer.circle(top, max(0.8, width * 0.22), detail(_DARK))
    return layer.finish("chimney", "slender", box_with_shadow=True)


def draw_windmill(
    rng: np.random.Generator, cx: float, cy: float, blade: float, color: str, sun: np.ndarray
) -> Sprite | None:
    """A wind turbine: three tapering blades around a hub and nacelle, the tower and rotor shadows.

    The box covers blades and shadow; shadow lines are thinner than the blades.
    """
    rotor = rng.uniform(0, 2 * math.pi)
    layer = Layer(cx, cy, blade * 2.2 + 3)
    hub = np.array([cx, cy])
    foot = hub + sun * blade * 1.1
    layer.shadow_line(hub, foot, max(1.0, 0.045 * blade))
    for k in range(3):
        th = rotor + 0.3 + k * 2 * math.pi / 3
        end = foot + blade * 0.75 * direction(th)
        layer.shadow_line(foot, end, max(1.0, 0.03 * blade))
    body = paint(rng, color)
    root, tip = max(1.0, 0.09 * blade), max(0.8, 0.03 * blade)
    shape = np.array([(0, -root / 2), (blade, -tip / 2), (blade, tip / 2), (0, root / 2)])
    for k in range(3):
        layer.poly(place(shape, cx, cy, rotor + k * 2 * math.pi / 3), body)
    yaw = rotor + math.pi / 2
    layer.poly(place(local_rect(-0.16 * blade, -0.045 * blade, 0.04 * blade, 0.045 * blade), cx, cy, yaw), body)
    layer.circle(hub, max(1.0, 0.05 * blade), body.shade(0.92))
    return layer.finish("windmill", "irregular", box_with_shadow=True)


def draw_deck(
    rng: np.random.Generator, category: str, span: Span, color: str, s: float, sun: np.ndarray
) -> Sprite | None:
    """A bridge or overpass deck along ``span``: railings, a dashed centre line (or tracks), its shadow below."""
    length, width, angle = span.length, span.width, span.angle
    cx, cy = span.cx, span.cy
    drop = rng.uniform(5, 10) * s
    layer = Layer(cx, cy, math.hypot(length / 2, width * 0.7) + drop + 2)
    off = sun * drop
    layer.shadow_poly(
        place(local_rect(-length / 2, -width / 2, length / 2, width / 2), cx + off[0], cy + off[1], angle)
    )
    deck = paint(rng, color)
    layer.poly(place(local_rect(-length / 2, -width / 2, length / 2, width / 2), cx, cy, angle), deck)
    end = min(0.06 * length, 10 * s)
    for sign in (1, -1):
        x0, x1 = sorted((sign * length / 2, sign * (length / 2 - end)))
        layer.poly(place(local_rect(x0, -width * 0.62, x1, width * 0.62), cx, cy, angle), deck.shade(0.94))
    rail = detail(np.asarray(deck.rgb) * 0.75 + 40)
    t = max(1.0, 1.0 * s)
    for y in (-width / 2 + t / 2, width / 2 - t / 2):
        p = place([(-length / 2, y), (length / 2, y)], cx, cy, angle)
        layer.line(p[0], p[1], rail, t)
    if span.road == "rail":
        steel, gauge = detail((70, 64, 58)), 3.0 * s
        for track in (-width / 5, width / 5):
            for y in (track - gauge / 2, track + gauge / 2):
                p = place([(-length / 2, y), (length / 2, y)], cx, cy, angle)
                layer.line(p[0], p[1], steel, max(1.0, 0.9 * s))
    else:
        mark = detail((222, 222, 214))
        period, dash = 24 * s, 11 * s
        for x in np.arange(-length / 2 + end, length / 2 - end - dash, period):
            p = place([(x, 0), (x + dash, 0)], cx, cy, angle)
            layer.line(p[0], p[1], mark, max(1.0, 1.2 * s))
    return layer.finish(category, aspect_shape(length, width))


def draw_dam(rng: np.random.Generator, span: Span, color: str, s: float, sun: np.ndarray) -> Sprite | None:
    """A gravity dam across the water along ``span`` (reservoir on its +normal side) with a spillway."""
    margin = rng.uniform(10, 22) * s
    length = span.length + 2 * margin
    thick = rng.uniform(12, 22) * s
    angle = span.angle
    # Upstream face on the water's edge; the wall extends downstream (local -y).
    cx, cy = np.array([span.cx, span.cy]) - direction(angle + math.pi / 2) * (thick / 2 - 2 * s)
    chute_len = min(rng.uniform(0.08, 0.16) * span.length, 40 * s)
    layer = Layer(cx, cy, math.hypot(length / 2, thick / 2 + chute_len) + 4)
    wall = paint(rng, color)
    off = sun * 4 * s
    layer.shadow_poly(
        place(local_rect(-length / 2, -thick / 2, length / 2, thick / 2), cx + off[0], cy + off[1], angle)
    )
    layer.poly(place(local_rect(-length / 2, -thick / 2, length / 2, thick / 2), cx, cy, angle), wall)
    cw = rng.uniform(0.07, 0.14) * span.length
    chute = local_rect(-cw / 2, -thick / 2 - chute_len, cw / 2, -thick / 2)
    layer.poly(place(chute, cx, cy, angle), wall.shade(0.9))
    gates = int(rng.integers(3, 7))
    gate = detail(_DARK)
    for x in np.linspace(-cw / 2, cw / 2, gates + 2)[1:-1]:
        p = place([(x, -thick * 0.3), (x, thick * 0.3)], cx, cy, angle)
        layer.line(p[0], p[1], gate, max(1.0, 1.5 * s))
    road = detail(np.asarray(wall.rgb) * 0.8)
    p = place([(-length / 2, thick * 0.25), (length / 2, thick * 0.25)], cx, cy, angle)
    layer.line(p[0], p[1], road, max(1.0, 1.0 * s))
    return layer.finish("dam", aspect_shape(length, thick + chute_len * 0.5))
