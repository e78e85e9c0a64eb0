"""Placing courts and fields: tennis and basketball courts (often in rows), baseball fields, ground track
fields, stadiums and golf courses. Cheap box tests on the outline skip hopeless sites before drawing."""

from __future__ import annotations

import math

import numpy as np

from rsvg.synth.draw_sports import (
    draw_baseball_field,
    draw_basketball_court,
    draw_golf_field,
    draw_stadium,
    draw_tennis_court,
    draw_track_field,
)
from rsvg.synth.geometry import bbox, direction, ellipse, place, rect
from rsvg.synth.placement import LAND, Placer, Rule
from rsvg.synth.sites import (
    TRIES,
    aligned_angle,
    choose_color,
    group_member,
    land_point,
    remember,
)
from rsvg.synth.world import World


def _place_court(world: World, placer: Placer, category: str, lengths: tuple[float, float], ratio: float) -> bool:
    rng, s = world.rng, world.s
    draw = draw_tennis_court if category == "tenniscourt" else draw_basketball_court
    for _ in range(TRIES):
        near = group_member(world, category, 0.7)
        if near is not None:
            px, py, angle, length, width = near
            gap = rng.uniform(1, 5) * s
            sign = 1 if rng.random() < 0.5 else -1
            if rng.random() < 0.75:
                off = direction(angle + math.pi / 2) * (width + gap)
            else:
                off = direction(angle) * (length + gap)
            cx, cy = px + sign * off[0], py + sign * off[1]
        else:
            length = rng.uniform(*lengths) * s
            width = length * ratio * rng.uniform(0.95, 1.05)
            angle = aligned_angle(world)
            p = land_point(world, length / 2)
            if p is None:
                continue
            cx, cy = p
        if not placer.box_free(bbox(rect(cx, cy, length, width, angle))):
            continue
        sprite = draw(rng, cx, cy, angle, length, width, choose_color(world, category, 0.5))
        if placer.try_add(sprite, LAND):
            remember(world, category, cx, cy, angle, length, width)
            return True
    return False


def place_tenniscourt(world: World, placer: Placer) -> bool:
    return _place_court(world, placer, "tenniscourt", (42, 72), 0.53)


def place_basketballcourt(world: World, placer: Placer) -> bool:
    return _place_court(world, placer, "basketballcourt", (40, 70), 0.57)


def place_baseballfield(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        radius = rng.uniform(70, 190) * s
        p = land_point(world, radius * 0.4)
        if p is None:
            continue
        angle = rng.uniform(0, 2 * math.pi)
        home = np.array(p) - direction(angle) * radius * 0.5
        fan = [home, home + radius * direction(angle - math.pi / 4), home + radius * direction(angle + math.pi / 4)]
        if not placer.box_free(bbox(np.array(fan))):
            continue
        sprite = draw_baseball_field(rng, home[0], home[1], angle, radius, dry=rng.random() < 0.2)
        if placer.try_add(sprite, LAND):
            return True
    return False


def place_groundtrackfield(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        length = rng.uniform(110, 250) * s
        p = land_point(world, length * 0.3)
        if p is None:
            continue
        angle = aligned_angle(world)
        if not placer.box_free(bbox(rect(p[0], p[1], length, length * 0.5, angle))):
            continue
        color = choose_color(world, "groundtrackfield")
        sprite = draw_track_field(rng, p[0], p[1], angle, length, color)
        if placer.try_add(sprite, LAND):
            return True
    return False


def place_stadium(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        length = rng.uniform(150, 300) * s
        p = land_point(world, length * 0.4)
        if p is None:
            continue
        angle, width = aligned_angle(world), length * rng.uniform(0.65, 1.0)
        if not placer.box_free(bbox(place(ellipse(length / 2, width / 2, 16), p[0], p[1], angle))):
            continue
        color = choose_color(world, "stadium")
        sprite = draw_stadium(rng, p[0], p[1], angle, length, width, color, world.sun)
        if placer.try_add(sprite, LAND):
            return True
    return False


def place_golffield(world: World, placer: Placer) -> bool:
    rng, s = world.rng, world.s
    for _ in range(TRIES):
        extent = rng.uniform(110, 230) * s
        p = land_point(world, extent * 0.8)
        if p is None:
            continue
        core = 0.3 * extent
        if not placer.box_free((p[0] - core, p[1] - core, p[0] + core, p[1] + core)):
            continue
        if placer.try_add(draw_golf_field(rng, p[0], p[1], extent), Rule(max_water=0.03, max_road=0.03)):
            return True
    return False
