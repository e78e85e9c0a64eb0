"""Placing small objects: vehicles, airplanes, ships, storage tanks, chimneys and windmills.

Each ``place_*`` function makes up to :data:`~rsvg.synth.sites.TRIES` tries (choose a site, draw, test) and returns
whether an object was placed. Sizes are given for 800 x 800 images and scaled by ``world.s``.
"""

from __future__ import annotations

import math

import numpy as np

from rsvg.synth.draw_structures import draw_chimney, draw_storage_tank, draw_windmill
from rsvg.synth.draw_transport import draw_airplane, draw_ship, draw_vehicle
from rsvg.synth.geometry import direction
from rsvg.synth.placement import LAND, ON_ROAD, ON_WATER, Placer, Rule
from rsvg.synth.sites import (
    TRIES,
    choose_color,
    group_member,
    land_point,
    remember,
    river_angle,
    road_point,
    take_slot,
    water_point,
)
from rsvg.synth.world import World


def place_vehicle(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        color = choose_color(world, "vehicle", reuse=0.2)
        length = rng.uniform(9, 17) * s
        if rng.random() < 0.45 and (taken := take_slot(world, "vehicle")) is not None:
            slot, owner = taken
            angle = slot.angle + (math.pi if rng.random() < 0.5 else 0.0)
            sprite = draw_vehicle(rng, slot.x, slot.y, angle, min(length, slot.max_size), color, world.sun)
            if placer.try_add(sprite, Rule(max_water=0.0, max_road=1.0), owner):
                return True
            continue
        site = road_point(world, ("local", "highway"), 0.02)
        if site is None:
            return False
        road, t = site
        side = 1 if rng.random() < 0.5 else -1
        if road.kind == "highway":
            lane_w = road.width * 0.225
            offset = side * (road.width * 0.05 + lane_w * (0.5 if rng.random() < 0.5 else 1.5))
        else:
            offset = side * road.width / 4
        c = road.point(t) + offset * direction(road.angle + math.pi / 2)
        angle = road.angle + (0.0 if side > 0 else math.pi) + rng.normal(0, 0.02)
        if placer.try_add(draw_vehicle(rng, c[0], c[1], angle, length, color, world.sun), ON_ROAD):
            return True
    return False


def place_airplane(world: World, placer: Placer) -> bool:
    rng = world.rng
    while (taken := take_slot(world, "airplane")) is not None:
        slot, owner = taken
        span = slot.max_size * rng.uniform(0.6, 0.95)
        color = choose_color(world, "airplane")
        sprite = draw_airplane(rng, slot.x, slot.y, slot.angle + rng.normal(0, 0.05), span, color, world.sun)
        if placer.try_add(sprite, Rule(max_water=0.0, max_road=1.0), owner):
            return True
    return False


def place_ship(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        color = choose_color(world, "ship", reuse=0.3)
        if rng.random() < 0.6 and (taken := take_slot(world, "ship")) is not None:
            slot, owner = taken
            length = slot.max_size * rng.uniform(0.5, 0.95)
            sprite = draw_ship(rng, slot.x, slot.y, slot.angle, length, color, world.sun)
            if placer.try_add(sprite, ON_WATER, owner):
                return True
            continue
        p = water_point(world)
        if p is None:
            return False
        along = river_angle(world, *p) if world.coast is None else None
        if along is None:
            angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(24, 110) * s
        else:
            angle, length = along + (math.pi if rng.random() < 0.5 else 0.0), rng.uniform(16, 50) * s
        if placer.try_add(draw_ship(rng, p[0], p[1], angle, length, color, world.sun), ON_WATER):
            return True
    return False


def place_storagetank(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        near = group_member(world, "storagetank", 0.7)
        if near is not None:
            px, py, _, pr, _ = near
            r = pr * rng.uniform(0.8, 1.2) if rng.random() < 0.7 else rng.uniform(8, 34) * s
            ang = world.grid + int(rng.integers(4)) * math.pi / 2
            c = np.array([px, py]) + direction(ang) * (pr + r + rng.uniform(3, 12) * s)
            cx, cy = float(c[0]), float(c[1])
        else:
            r = rng.uniform(8, 34) * s if rng.random() < 0.9 else rng.uniform(34, 56) * s
            p = land_point(world, r)
            if p is None:
                continue
            cx, cy = p
        if not placer.box_free((cx - r, cy - r, cx + r, cy + r)):
            continue
        sprite = draw_storage_tank(rng, cx, cy, r, choose_color(world, "storagetank", 0.6), world.sun)
        if placer.try_add(sprite, LAND):
            remember(world, "storagetank", cx, cy, 0.0, r, r)
            return True
    return False


def place_chimney(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        height, width = rng.uniform(20, 70) * s, rng.uniform(6, 13) * s
        near = group_member(world, "chimney", 0.6)
        if near is not None:
            px, py, _, _, pw = near
            c = np.array([px, py]) + direction(world.grid + rng.choice([0, math.pi])) * pw * rng.uniform(4, 8)
            cx, cy = float(c[0]), float(c[1])
        else:
            p = land_point(world, height)
            if p is None:
                continue
            cx, cy = p
        color = choose_color(world, "chimney", 0.6)
        sprite = draw_chimney(rng, cx, cy, height, width, color, world.sun, world.lean)
        if placer.try_add(sprite, LAND):
            remember(world, "chimney", cx, cy, 0.0, height, width)
            return True
    return False


def place_windmill(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        blade = rng.uniform(16, 46) * s
        near = group_member(world, "windmill", 0.7)
        if near is not None:
            px, py, _, pb, _ = near
            blade = pb * rng.uniform(0.85, 1.15)
            ang = world.grid + rng.choice([0, math.pi]) + rng.normal(0, 0.15)
            c = np.array([px, py]) + direction(ang) * pb * rng.uniform(2.6, 4.0)
            cx, cy = float(c[0]), float(c[1])
        else:
            p = land_point(world, blade)
            if p is None:
                continue
            cx, cy = p
        sprite = draw_windmill(rng, cx, cy, blade, choose_color(world, "windmill", 0.8), world.sun)
        if placer.try_add(sprite, LAND):
            remember(world, "windmill", cx, cy, 0.0, blade, blade)
            return True
    return False
