"""Generate one synthetic aerial scene: ground, water, roads, labelled objects and background clutter."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rsvg.synth.clutter import add_clutter
from rsvg.synth.layout import add_roads, add_water
from rsvg.synth.modules import choose_modules, choose_terrain, plan_objects, sun_and_lean
from rsvg.synth.placement import Placer
from rsvg.synth.registry import PLACERS
from rsvg.synth.roads import draw_roads
from rsvg.synth.terrain import TERRAIN_KINDS, base_terrain, finish_image
from rsvg.synth.water import paint_beach, paint_water
from rsvg.synth.world import World

MIN_OBJECTS, MAX_OBJECTS = 3, 12
SHAPES: tuple[str, ...] = ("round", "oval", "square", "rectangular", "slender", "cross", "irregular")
_FILLERS = ("vehicle", "storagetank", "tenniscourt", "basketballcourt", "windmill", "chimney")


@dataclass(frozen=True)
class SceneObject:
    """One labelled object: DIOR class, tight box ``(xmin, ymin, xmax, ymax)`` and its true look."""

    category: str
    box: tuple[float, float, float, float]
    color: str  # palette colour name covering most of the object
    shape: str  # one of SHAPES


@dataclass
class Scene:
    """A generated image (H x W x 3 uint8 RGB) and its objects."""

    image: np.ndarray
    objects: list[SceneObject]
    seed: int = 0
    modules: tuple[str, ...] = field(default=())
    terrain: str = ""


def build_world(rng: np.random.Generator, size: int, modules: tuple[str, ...]) -> World:
    """Ground, water and roads for ``modules``, drawn on a fresh canvas."""
    terrain = choose_terrain(rng, modules)
    second = TERRAIN_KINDS[int(rng.integers(len(TERRAIN_KINDS)))] if rng.random() < 0.4 else None
    canvas = base_terrain(rng, size, terrain, second)
    sun, lean = sun_and_lean(rng)
    empty = np.zeros((size, size), dtype=bool)
    world = World(
        size=size,
        rng=rng,
        canvas=canvas,
        terrain=terrain,
        sun=sun,
        lean=lean,
        water=empty.copy(),
        road=empty.copy(),
        highway=empty.copy(),
        rail=empty.copy(),
        grid=float(rng.uniform(0, np.pi / 2)) if rng.random() < 0.6 else float(rng.normal(0, 0.05)),
    )
    add_water(world, modules)
    add_roads(world, modules)
    paint_beach(world)
    draw_roads(world)
    paint_water(world)
    return world


def populate(world: World, modules: tuple[str, ...]) -> Placer:
    """Place the objects the modules ask for (at most :data:`MAX_OBJECTS`), topped up to :data:`MIN_OBJECTS`."""
    placer = Placer(world)
    for category, count in plan_objects(world, modules, MAX_OBJECTS):
        for _ in range(count):
            if len(placer) >= MAX_OBJECTS or not PLACERS[category](world, placer):
                break
    for _ in range(12):
        if len(placer) >= MIN_OBJECTS:
            break
        PLACERS[_FILLERS[int(world.rng.integers(len(_FILLERS)))]](world, placer)
    return placer


def generate_scene(seed: int, size: int = 800) -> Scene:
    """A deterministic synthetic aerial scene for ``seed``: a ``size`` x ``size`` RGB image and its objects.

    The scene mixes two or three themes (airfield, coast, river, reservoir, highway, sports, arena, industry,
    countryside, rail) and holds typically 3-12 objects of the 20 DIOR categories, often several of one
    category differing in colour, size and position. Boxes are tight around the drawn objects.
    """
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    rng = np.random.default_rng(seed)
    modules = choose_modules(rng)
    world = build_world(rng, size, modules)
    placer = populate(world, modules)
    add_clutter(world, placer, modules)
    image = finish_image(rng, world.canvas)
    objects = [SceneObject(sp.category, sp.box, sp.color, sp.shape) for sp in placer.sprites]
    return Scene(image=image, objects=objects, seed=seed, modules=modules, terrain=world.terrain)
