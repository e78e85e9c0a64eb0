"""Scene layout: the water body and the roads of the chosen modules, and the airport site kept clear of roads.

Runs before any object is placed; the roads are only planned here (see :mod:`rsvg.synth.roads`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from rsvg.synth.geometry import local_rect, place
from rsvg.synth.modules import MODULES
from rsvg.synth.roads import plan_road
from rsvg.synth.sites import aligned_angle
from rsvg.synth.water import add_lake, add_reservoir, add_river, add_sea, lookup
from rsvg.synth.world import AirportPlan, Road, World, inside_footprints


def add_water(world: World, modules: tuple[str, ...]) -> None:
    """The water body of the (single) water module; countryside scenes sometimes get a lake."""
    for name in modules:
        water = MODULES[name].water
        if water == "sea":
            add_sea(world)
        elif water == "river":
            add_river(world)
        elif water == "reservoir":
            add_reservoir(world)
    if "countryside" in modules and not world.water.any() and world.rng.random() < 0.3:
        add_lake(world)


def _tries(n: int, make: Callable[[], object]) -> None:
    for _ in range(n):
        if make() is not None:
            return


def _local_roads(world: World, count: int) -> None:
    rng, size = world.rng, world.size
    for i in range(count):
        base = world.grid + (math.pi / 2 if i % 2 else 0.0)

        def make(base: float = base) -> object:
            through = rng.uniform(0.15, 0.85, 2) * size
            return plan_road(world, "local", base + rng.normal(0, 0.02), through)

        _tries(6, make)


def plan_airport(world: World) -> None:
    """Choose a dry site for the airport and keep roads off it."""
    rng, size, s = world.rng, world.size, world.s
    runway = rng.uniform(0.5, 0.8) * size
    for _ in range(30):
        aligned = rng.random() < 0.6
        angle = aligned_angle(world, 1.0) if aligned else float(rng.choice([0.0, math.pi / 2]) + rng.normal(0, 0.1))
        cx, cy = rng.uniform(0.25, 0.75, 2) * size
        cross = None
        if rng.random() < 0.3:
            cross = (rng.uniform(-0.2, 0.2) * runway, rng.uniform(0.5, 1.0) * (1 if rng.random() < 0.5 else -1))
        plan = AirportPlan(cx, cy, angle, runway, 1 if rng.random() < 0.5 else -1, cross)
        parts = plan.footprints(s)
        corners = np.concatenate([place(local_rect(*p[3:]), p[0], p[1], p[2]) for p in parts])
        if corners.min() < 3 or corners.max() > size - 3:
            runway *= 0.95
            continue
        grid = np.stack(np.meshgrid(np.arange(0, size, 8.0), np.arange(0, size, 8.0)), axis=-1).reshape(-1, 2)
        under = grid[inside_footprints(grid, parts)]
        if lookup(world.water, under).any():
            continue
        world.airport = plan
        world.keepout.extend(parts)
        return


def add_roads(world: World, modules: tuple[str, ...]) -> None:
    """Plan each module's roads (drawn later, together); an airport site is chosen first and kept clear."""
    rng, size = world.rng, world.size
    if "airfield" in modules:
        plan_airport(world)
    if "highway" in modules:
        angle = world.grid if rng.random() < 0.6 else rng.uniform(0, math.pi)

        def highway() -> object:
            return plan_road(world, "highway", angle + rng.normal(0, 0.03), rng.uniform(0.3, 0.7, 2) * size)

        _tries(10, highway)
        for hw in world.roads_of("highway")[:1]:
            for _ in range(1 if rng.random() < 0.65 else 2):

                def crossing(hw: Road = hw) -> object:
                    t = rng.uniform(hw.tmin + 0.2 * (hw.tmax - hw.tmin), hw.tmax - 0.2 * (hw.tmax - hw.tmin))
                    turn = rng.uniform(math.radians(50), math.radians(90)) * (1 if rng.random() < 0.5 else -1)
                    return plan_road(world, "local", hw.angle + turn, hw.point(t))

                _tries(6, crossing)
    if "rail" in modules:

        def rail(aligned: bool) -> object:
            angle = world.grid + rng.normal(0, 0.05) if aligned else rng.uniform(0, math.pi)
            return plan_road(world, "rail", angle, rng.uniform(0.3, 0.7, 2) * size)

        _tries(6, lambda: rail(True))
        if not world.roads_of("rail"):
            _tries(10, lambda: rail(False))
    if world.river is not None and len(world.river) > 10:
        n = 1 if "reservoir" in modules else int(rng.integers(1, 3))
        for _ in range(n if ("river" in modules or rng.random() < 0.6) else 0):

            def bridge_road() -> object:
                line = world.river
                i = int(rng.integers(len(line) // 5, len(line) - len(line) // 5))
                a, b = line[max(0, i - 3)], line[min(len(line) - 1, i + 3)]
                along = math.atan2(b[1] - a[1], b[0] - a[0])
                return plan_road(world, "local", along + math.pi / 2 + rng.normal(0, 0.3), line[i])

            _tries(8, bridge_road)
    if world.coast is not None and rng.random() < 0.7:
        coast = world.coast

        def coastal() -> object:
            u = rng.uniform(0.3, 0.7) * size
            v = float(coast.depth.max()) + rng.uniform(40, 110) * world.s
            along = coast.inland_angle + math.pi / 2
            return plan_road(world, "local", along + rng.normal(0, 0.02), np.array(coast.to_image(u, v)))

        _tries(6, coastal)
    urban = sum(m in modules for m in ("sports", "arena", "industry", "rail"))
    if urban:
        _local_roads(world, int(rng.integers(1, 3)))
    elif "countryside" in modules and rng.random() < 0.5:
        _local_roads(world, 1)
