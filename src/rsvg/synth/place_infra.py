"""Placing infrastructure: bridges, overpasses and dams on the sites the layout recorded, the airport on its
reserved site, harbors on the coast, train stations on the railway, service areas and toll stations on the
highway (away from crossings)."""

from __future__ import annotations

import math

from rsvg.synth.draw_facilities import draw_airport, draw_harbor, draw_service_area, draw_toll_station
from rsvg.synth.draw_structures import draw_dam, draw_deck
from rsvg.synth.draw_transport import draw_train_station
from rsvg.synth.geometry import bbox, direction, local_rect, place, rect
from rsvg.synth.placement import ANYWHERE, Placer, Rule
from rsvg.synth.sites import (
    TRIES,
    choose_color,
    clear_along,
    road_point,
)
from rsvg.synth.world import World


def _place_span(world: World, placer: Placer, category: str, kind: str) -> bool:
    """Put a ``category`` object on the next unused ``kind`` site (sites stay listed: they mark crossings)."""
    rng = world.rng
    todo = [i for i, sp in enumerate(world.spans) if sp.kind == kind and i not in world.spans_used]
    rng.shuffle(todo)
    for i in todo:
        span = world.spans[i]
        world.spans_used.add(i)
        color = choose_color(world, category, 0.5)
        if kind == "dam":
            sprite = draw_dam(rng, span, color, world.s, world.sun)
        else:
            sprite = draw_deck(rng, category, span, color, world.s, world.sun)
        if placer.try_add(sprite, ANYWHERE):
            return True
    return False


def place_bridge(world: World, placer: Placer) -> bool:
    return _place_span(world, placer, "bridge", "bridge")


def place_overpass(world: World, placer: Placer) -> bool:
    return _place_span(world, placer, "overpass", "overpass")


def place_dam(world: World, placer: Placer) -> bool:
    return _place_span(world, placer, "dam", "dam")


def place_airport(world: World, placer: Placer) -> bool:
    """At the site kept free of roads while the layout was made (see :func:`rsvg.synth.layout.plan_airport`)."""
    plan = world.airport
    if plan is None:
        return False
    world.airport = None
    sprite = draw_airport(world.rng, plan, world.s, world.sun)
    return placer.try_add(sprite, Rule(max_water=0.01, max_road=0.002))


def place_harbor(world: World, placer: Placer) -> bool:
    rng, s, coast = world.rng, world.s, world.coast
    if coast is None:
        return False
    for _ in range(TRIES):
        length = rng.uniform(110, 260) * s
        u0 = rng.uniform(length / 2 + 4, world.size - length / 2 - 4)
        sprite = draw_harbor(rng, coast, u0, length, choose_color(world, "harbor"), s)
        if placer.try_add(sprite, Rule(max_water=1.0, max_road=0.12)):
            return True
    return False


def place_trainstation(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        site = road_point(world, ("rail",), 0.15)
        if site is None:
            return False
        rail, t = site
        c = rail.point(t)
        length = rng.uniform(120, 280) * s
        if not clear_along(world, rail, t, length / 2):
            continue
        if not placer.box_free(bbox(rect(c[0], c[1], length, 40 * s, rail.angle))):
            continue
        color = choose_color(world, "trainstation")
        sprite = draw_train_station(rng, c[0], c[1], rail.angle, length, color, s, world.sun)
        if placer.try_add(sprite, Rule(max_water=0.01, max_road=0.04, max_rail=1.0)):
            return True
    return False


def place_service_area(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        site = road_point(world, ("highway",), 0.05)
        if site is None:
            return False
        road, t = site
        side = 1 if rng.random() < 0.5 else -1
        lot_len, lot_depth = rng.uniform(110, 220) * s, rng.uniform(60, 100) * s
        gap = road.width / 2 + rng.uniform(12, 24) * s
        middle = road.point(t) + direction(road.angle + math.pi / 2) * side * (gap + lot_depth / 2)
        if not clear_along(world, road, t, lot_len / 2 + 40 * s) or not world.inside(*middle, 2):
            continue
        if world.water[int(middle[1]), int(middle[0])]:
            continue
        lot = place(local_rect(-lot_len / 2, gap, lot_len / 2, gap + lot_depth) * (1, side), *road.point(t), road.angle)
        if not placer.box_free(bbox(lot)):
            continue
        color = choose_color(world, "roof")
        sprite = draw_service_area(rng, road, t, side, (lot_len, lot_depth, gap), color, s, world.sun)
        if placer.try_add(sprite, Rule(max_water=0.01, max_road=0.03)):
            return True
    return False


def place_toll_station(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        site = road_point(world, ("highway",), 0.05)
        if site is None:
            return False
        road, t = site
        if not clear_along(world, road, t, 60 * s):
            continue
        sprite = draw_toll_station(rng, road, t, choose_color(world, "roof"), s, world.sun)
        if placer.try_add(sprite, Rule(max_water=0.0, max_road=1.0)):
            return True
    return False
