"""Drawers for large facilities: airports, harbors, expressway service areas and toll stations.

These objects offer :class:`~rsvg.synth.layer.Slot` s inside them (aircraft stands, berths, parking spaces)
where smaller objects are put afterwards.
"""

from __future__ import annotations

import math

import numpy as np

from rsvg.synth.geometry import aspect_shape, local_rect, place
from rsvg.synth.layer import Layer, Sprite
from rsvg.synth.palette import detail, paint, pick
from rsvg.synth.world import AirportPlan, Coast, Road

_WHITE = (230, 230, 224)


def draw_airport(rng: np.random.Generator, plan: AirportPlan, s: float, sun: np.ndarray) -> Sprite | None:
    """Runway(s), a parallel taxiway with links, an apron with aircraft stands, and a terminal building."""
    cx, cy, angle, runway, side = plan.cx, plan.cy, plan.angle, plan.runway, plan.side
    rw = rng.uniform(14, 22) * s
    gap, tw = rng.uniform(22, 36) * s, rw * 0.5
    apron_len, apron_depth = runway * rng.uniform(0.35, 0.55), rng.uniform(60, 100) * s
    apron_x = rng.uniform(-0.2, 0.2) * runway
    term_depth, term_len = rng.uniform(14, 26) * s, apron_len * rng.uniform(0.5, 0.8)
    y_taxi = rw / 2 + gap + tw / 2
    y_apron = y_taxi + tw / 2 + 2 * s
    y_term = y_apron + apron_depth + 2 * s
    far = y_term + term_depth
    layer = Layer(cx, cy, math.hypot(runway / 2, far) + 4)

    def at(pts: np.ndarray) -> np.ndarray:
        return place(pts * (1, side), cx, cy, angle)

    asphalt = paint(rng, "gray").shade(0.85)
    concrete = asphalt.shade(1.3)
    layer.poly(at(local_rect(-runway / 2, -rw / 2, runway / 2, rw / 2)), asphalt)
    if plan.cross is not None:
        c2 = place([(plan.cross[0], 0.0)], cx, cy, angle)[0]
        second = local_rect(-0.3 * runway, -rw * 0.4, 0.3 * runway, rw * 0.4)
        layer.poly(place(second, c2[0], c2[1], angle + plan.cross[1]), asphalt)
    layer.poly(at(local_rect(-0.45 * runway, y_taxi - tw / 2, 0.45 * runway, y_taxi + tw / 2)), asphalt)
    for x in np.linspace(-0.42 * runway, 0.42 * runway, int(rng.integers(3, 6))):
        layer.poly(at(local_rect(x - tw / 2, 0, x + tw / 2, y_taxi)), asphalt)
    layer.poly(
        at(local_rect(apron_x - apron_len / 2, y_apron, apron_x + apron_len / 2, y_apron + apron_depth)), concrete
    )
    roof = paint(rng, pick(rng, {"white": 3, "gray": 1, "blue": 1}))
    terminal = local_rect(apron_x - term_len / 2, y_term, apron_x + term_len / 2, y_term + term_depth)
    off = sun * 5 * s
    layer.shadow_poly(at(terminal) + off)
    layer.poly(at(terminal), detail(roof.rgb))
    mark, t = detail(_WHITE), max(1.0, 1.2 * s)
    for x in np.arange(-0.42 * runway, 0.42 * runway, 30 * s):
        p = at(np.array([(x, 0.0), (x + 14 * s, 0.0)]))
        layer.line(p[0], p[1], mark, t)
    for end in (-1, 1):
        x = end * (runway / 2 - 6 * s)
        for y in np.linspace(-rw * 0.38, rw * 0.38, 6):
            p = at(np.array([(x - 5 * s, y), (x + 5 * s, y)]))
            layer.line(p[0], p[1], mark, t)
    stand = min(apron_depth * 0.85, 110 * s)
    n = max(1, int(apron_len // (stand * 1.1)))
    nose = angle + side * math.pi / 2
    for x in np.linspace(-apron_len / 2 + stand * 0.55, apron_len / 2 - stand * 0.55, n) if n > 1 else [0.0]:
        p = at(np.array([(apron_x + x, y_apron + apron_depth / 2)]))[0]
        layer.add_slot("airplane", p[0], p[1], nose, stand)
    return layer.finish("airport", "irregular")


def draw_harbor(
    rng: np.random.Generator, coast: Coast, u0: float, length: float, color: str, s: float
) -> Sprite | None:
    """A quay along the coast around ``u0`` with piers reaching into the sea and berths beside them."""
    lo, hi = round(u0 - length / 2), round(u0 + length / 2)
    if lo < 4 or hi > coast.size - 4:
        return None
    d = coast.depth[lo:hi]
    sea_edge = float(d.min()) - rng.uniform(6, 14) * s
    land_edge = float(d.max()) + rng.uniform(10, 22) * s
    pier_len = min(rng.uniform(45, 130) * s, sea_edge - 6)
    if pier_len < 15 * s:
        return None

    def img(pts: list[tuple[float, float]] | np.ndarray) -> np.ndarray:
        return np.array([coast.to_image(u, v) for u, v in pts])

    def box(u0_: float, v0: float, u1: float, v1: float) -> np.ndarray:
        return img([(u0_, v0), (u1, v0), (u1, v1), (u0_, v1)])

    cx, cy = coast.to_image(u0, (sea_edge - pier_len + land_edge) / 2)
    layer = Layer(cx, cy, math.hypot(length / 2, (land_edge - sea_edge + pier_len) / 2) + 4)
    quay = paint(rng, color)
    layer.poly(box(lo, sea_edge, hi, land_edge), quay)
    k = int(rng.integers(2, 6))
    pw = rng.uniform(8, 16) * s
    seaward = np.subtract(coast.to_image(u0, 0.0), coast.to_image(u0, 1.0))
    angle = math.atan2(seaward[1], seaward[0])
    for u in np.linspace(lo + 0.12 * length, hi - 0.12 * length, k):
        plen = pier_len * rng.uniform(0.7, 1.0)
        layer.poly(box(u - pw / 2, sea_edge - plen, u + pw / 2, sea_edge + 1), quay.shade(0.95))
        berth = plen * 0.9
        for sign in (-1, 1):
            bu = u + sign * (pw / 2 + 0.13 * berth + 3 * s)
            x, y = coast.to_image(bu, sea_edge - plen / 2)
            layer.add_slot("ship", x, y, angle, berth)
    sheds = detail(paint(rng, pick(rng, {"gray": 2, "white": 2, "blue": 1})).rgb)
    depth = land_edge - sea_edge
    for u in np.arange(lo + 8 * s, hi - 30 * s, rng.uniform(36, 60) * s):
        layer.poly(box(u, land_edge - depth * 0.45, u + 24 * s, land_edge - 4 * s), sheds)
    crane = detail((180, 60, 40))
    for u in np.linspace(lo + 10 * s, hi - 10 * s, int(rng.integers(2, 5))):
        p = box(u - 1.5 * s, sea_edge + 2 * s, u + 1.5 * s, sea_edge + min(16 * s, depth * 0.4))
        layer.poly(p, crane)
    return layer.finish("harbor", "irregular")


def draw_service_area(
    rng: np.random.Generator,
    road: Road,
    t: float,
    side: int,
    lot: tuple[float, float, float],
    color: str,
    s: float,
    sun: np.ndarray,
) -> Sprite | None:
    """A parking lot beside the highway with ramps, a service building (``color``), a fuel canopy and parking.

    ``lot`` is (length along the road, depth, distance of the lot from the road's centre line); ``side`` (+1 or
    -1) says on which side of the road it lies.
    """
    cx, cy = road.point(t)
    angle = road.angle
    lot_len, lot_depth, y0 = lot
    y1 = y0 + lot_depth
    layer = Layer(cx, cy, math.hypot(lot_len / 2 + 40 * s, y1) + 4)

    def at(pts: np.ndarray) -> np.ndarray:
        return place(pts * (1, side), cx, cy, angle)

    lot = paint(rng, "gray").shade(0.8)
    layer.poly(at(local_rect(-lot_len / 2, y0, lot_len / 2, y1)), lot)
    ramp_w = 9 * s
    for sign in (-1, 1):
        xa, xb = sign * (lot_len / 2 + 35 * s), sign * (lot_len / 2 - ramp_w)
        ramp = np.array(
            [
                (xa, road.width / 2),
                (xa - sign * ramp_w * 1.6, road.width / 2),
                (xb, y0 + 1),
                (xb + sign * ramp_w, y0 + 1),
            ]
        )
        layer.poly(at(ramp), lot)
    bl, bd = lot_len * rng.uniform(0.3, 0.45), lot_depth * rng.uniform(0.3, 0.42)
    bx = rng.uniform(-0.15, 0.15) * lot_len
    building = local_rect(bx - bl / 2, y1 - bd - 4 * s, bx + bl / 2, y1 - 4 * s)
    canopy_x = (lot_len / 2 - 26 * s) * (1 if rng.random() < 0.5 else -1)
    layer.poly(at(local_rect(canopy_x - 14 * s, y0 + 8 * s, canopy_x + 14 * s, y0 + 24 * s)), detail(_WHITE))
    stall_w, stall_d = 9 * s, 18 * s
    stripe = detail((210, 210, 204))
    row_y = y0 + 30 * s
    row_clear = row_y + stall_d < y1 - bd - 6 * s
    for x in np.arange(-lot_len / 2 + 8 * s, lot_len / 2 - 40 * s, stall_w):
        if not row_clear and bx - bl / 2 - 6 * s < x + stall_w / 2 < bx + bl / 2 + 6 * s:
            continue
        p = at(np.array([(x, row_y), (x, row_y + stall_d)]))
        layer.line(p[0], p[1], stripe, max(1.0, 0.8 * s))
        c = at(np.array([(x + stall_w / 2, row_y + stall_d / 2)]))[0]
        layer.add_slot("vehicle", c[0], c[1], angle + math.pi / 2, stall_d * 0.85)
    layer.shadow_poly(at(building) + sun * 4 * s)
    layer.poly(at(building), paint(rng, color))
    return layer.finish("Expressway-Service-area", aspect_shape(lot_len, lot_depth))


def draw_toll_station(
    rng: np.random.Generator, road: Road, t: float, color: str, s: float, sun: np.ndarray
) -> Sprite | None:
    """A toll plaza widening the highway, with a canopy (``color``) and booth islands across it."""
    cx, cy = road.point(t)
    angle = road.angle
    rw = road.width
    cd = rng.uniform(18, 30) * s
    pw = rw * rng.uniform(1.5, 2.0)
    pl = cd * rng.uniform(1.3, 1.8)
    taper = rng.uniform(14, 30) * s
    layer = Layer(cx, cy, math.hypot(pl / 2 + taper, pw / 2) + 4)
    plaza = [
        (-pl / 2 - taper, -rw / 2),
        (-pl / 2, -pw / 2),
        (pl / 2, -pw / 2),
        (pl / 2 + taper, -rw / 2),
        (pl / 2 + taper, rw / 2),
        (pl / 2, pw / 2),
        (-pl / 2, pw / 2),
        (-pl / 2 - taper, rw / 2),
    ]
    layer.poly(place(plaza, cx, cy, angle), paint(rng, "gray").shade(0.75))
    lanes = max(2, int(pw / (10 * s)))
    island = detail((226, 214, 120))
    for y in np.linspace(-pw / 2, pw / 2, lanes + 1)[1:-1]:
        p = place([(-pl / 2, y), (pl / 2, y)], cx, cy, angle)
        layer.line(p[0], p[1], island, max(1.0, 1.5 * s))
    canopy = local_rect(-cd / 2, -pw * 0.48, cd / 2, pw * 0.48)
    layer.shadow_poly(place(canopy, cx, cy, angle) + sun * 5 * s)
    layer.poly(place(canopy, cx, cy, angle), paint(rng, color))
    seam = detail(np.asarray(paint(rng, color).rgb) * 0.8)
    p = place([(0, -pw * 0.48), (0, pw * 0.48)], cx, cy, angle)
    layer.line(p[0], p[1], seam, 1)
    return layer.finish("Expressway-toll-station", aspect_shape(pw, pl + taper))
