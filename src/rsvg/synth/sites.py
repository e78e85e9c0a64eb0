"""Where objects can go: dry-land and water points, free slots, road stretches clear of crossings, groups,
aligned angles, and per-scene colour habits."""

from __future__ import annotations

import math

import numpy as np

from rsvg.synth.geometry import direction
from rsvg.synth.layer import Slot
from rsvg.synth.palette import CATEGORY_COLORS, pick
from rsvg.synth.roads import intersection
from rsvg.synth.world import Road, World

TRIES = 25  # tries per object before a placing function gives up


def land_point(world: World, margin: float = 0.0, tries: int = 20) -> tuple[float, float] | None:
    """A random point on dry, unpaved ground at least ``margin`` pixels inside the image."""
    rng, size = world.rng, world.size
    lo, hi = margin, size - margin
    if hi <= lo:
        return None
    for _ in range(tries):
        x, y = rng.uniform(lo, hi, 2)
        xi, yi = int(x), int(y)
        if not world.water[yi, xi] and not world.road[yi, xi]:
            return float(x), float(y)
    return None


def water_point(world: World, tries: int = 20) -> tuple[float, float] | None:
    """A random water point (uniform over water pixels, tried from random positions)."""
    rng, size = world.rng, world.size
    for _ in range(tries):
        x, y = rng.uniform(0, size, 2)
        if world.water[int(y), int(x)]:
            return float(x), float(y)
    return None


def river_angle(world: World, x: float, y: float) -> float | None:
    """Direction of the river centre line nearest to (x, y), if there is a river."""
    line = world.river
    if line is None or len(line) < 3:
        return None
    i = int(np.argmin(np.sum((line - (x, y)) ** 2, axis=1)))
    a, b = line[max(0, i - 2)], line[min(len(line) - 1, i + 2)]
    return math.atan2(b[1] - a[1], b[0] - a[0])


def aligned_angle(world: World, p_aligned: float = 0.75) -> float:
    """Mostly the scene's street direction or its perpendicular (slightly jittered); otherwise random."""
    rng = world.rng
    if rng.random() < p_aligned:
        return world.grid + (math.pi / 2 if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.03)
    return rng.uniform(0, math.pi)


def choose_color(world: World, category: str, reuse: float = 0.45) -> str:
    """A colour for a new ``category`` object: often the scene's usual one for it, otherwise a fresh draw."""
    rng = world.rng
    usual = world.group_colors.get(category)
    if usual is not None and rng.random() < reuse:
        return usual
    name = pick(rng, CATEGORY_COLORS[category])
    world.group_colors.setdefault(category, name)
    return name


def take_slot(world: World, category: str) -> tuple[Slot, int] | None:
    """Remove and return a random free slot for ``category``."""
    idx = [i for i, (slot, _) in enumerate(world.slots) if slot.category == category]
    if not idx:
        return None
    return world.slots.pop(idx[int(world.rng.integers(len(idx)))])


def group_member(world: World, category: str, p_group: float) -> tuple[float, float, float, float, float] | None:
    group = world.groups.get(category)
    if group and world.rng.random() < p_group:
        return group[int(world.rng.integers(len(group)))]
    return None


def remember(world: World, category: str, cx: float, cy: float, angle: float, length: float, width: float) -> None:
    world.groups.setdefault(category, []).append((cx, cy, angle, length, width))


def road_point(world: World, kinds: tuple[str, ...], end_margin: float = 0.1) -> tuple[Road, float] | None:
    roads = world.roads_of(*kinds)
    if not roads:
        return None
    lengths = np.array([r.tmax - r.tmin for r in roads])
    road = roads[int(world.rng.choice(len(roads), p=lengths / lengths.sum()))]
    span = road.tmax - road.tmin
    return road, float(world.rng.uniform(road.tmin + end_margin * span, road.tmax - end_margin * span))


def busy_stretches(world: World, road: Road) -> list[tuple[float, float]]:
    """Stretches ``(t, half length)`` of ``road`` taken by crossings: other roads, bridges and overpasses."""
    taken = []
    for other in world.roads:
        if other is road:
            continue
        meet = intersection(road, other)
        if meet is not None:
            sin = max(0.2, abs(math.sin(road.angle - other.angle)))
            taken.append((meet[0], other.width / sin / 2))
    n = direction(road.angle + math.pi / 2)
    for span in world.spans:
        rel = np.array([span.cx, span.cy]) - road.p0
        if abs(float(rel @ n)) < road.width:
            taken.append((float(rel @ road.dir), span.length / 2))
    return taken


def clear_along(world: World, road: Road, t: float, half: float) -> bool:
    """Whether ``half`` pixels either side of ``t`` along ``road`` are free of crossings (with a margin)."""
    margin = 12 * world.s
    return all(abs(t - tc) > half + h + margin for tc, h in busy_stretches(world, road))
