"""Scene themes ("modules"): which ground, water, roads and objects go together.

A scene combines two or three modules (at most one with water), e.g. *highway* + *countryside*: a highway with
overpasses and a toll station crossing farmland with windmills and a golf course. Each module lays out its water
and roads, then asks for objects: ``(category, probability, min count, max count)``; a count of ``-1`` means one
per site the layout offers (a bridge per road-over-water crossing, an overpass per road-over-highway crossing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rsvg.synth.geometry import direction
from rsvg.synth.registry import PRIORITY
from rsvg.synth.world import World


@dataclass(frozen=True)
class Module:
    name: str
    terrains: dict[str, float]
    water: str | None
    objects: tuple[tuple[str, float, int, int], ...]


MODULES: dict[str, Module] = {
    m.name: m
    for m in (
        Module(
            "airfield",
            {"grass": 3, "soil": 2},
            None,
            (("airport", 1.0, 1, 1), ("airplane", 1.0, 2, 5), ("vehicle", 0.4, 1, 3), ("storagetank", 0.25, 1, 3)),
        ),
        Module(
            "coast",
            {"sand": 3, "urban": 2, "soil": 1},
            "sea",
            (("harbor", 0.9, 1, 1), ("ship", 1.0, 2, 5), ("storagetank", 0.4, 2, 4), ("vehicle", 0.5, 1, 3)),
        ),
        Module(
            "river",
            {"grass": 3, "soil": 2, "urban": 1},
            "river",
            (("bridge", 1.0, -1, -1), ("ship", 0.6, 1, 3), ("vehicle", 0.7, 1, 4)),
        ),
        Module(
            "reservoir",
            {"grass": 3, "soil": 2},
            "reservoir",
            (("dam", 1.0, -1, -1), ("bridge", 1.0, -1, -1), ("windmill", 0.3, 2, 4), ("ship", 0.3, 1, 2)),
        ),
        Module(
            "highway",
            {"grass": 2, "soil": 2, "sand": 1},
            None,
            (
                ("overpass", 1.0, -1, -1),
                ("Expressway-toll-station", 0.7, 1, 1),
                ("Expressway-Service-area", 0.85, 1, 1),
                ("vehicle", 1.0, 2, 6),
            ),
        ),
        Module(
            "sports",
            {"urban": 3, "grass": 2},
            None,
            (
                ("groundtrackfield", 0.85, 1, 1),
                ("baseballfield", 0.7, 1, 2),
                ("tenniscourt", 0.6, 1, 4),
                ("basketballcourt", 0.6, 1, 3),
            ),
        ),
        Module(
            "arena",
            {"urban": 3, "grass": 1},
            None,
            (
                ("stadium", 0.9, 1, 1),
                ("tenniscourt", 0.5, 1, 3),
                ("basketballcourt", 0.5, 1, 3),
                ("vehicle", 0.6, 2, 5),
            ),
        ),
        Module(
            "industry",
            {"urban": 2, "soil": 2, "sand": 1},
            None,
            (("storagetank", 1.0, 2, 6), ("chimney", 0.9, 1, 4), ("vehicle", 0.5, 1, 3)),
        ),
        Module(
            "countryside",
            {"grass": 4, "soil": 1},
            None,
            (
                ("golffield", 0.8, 1, 1),
                ("windmill", 0.75, 2, 5),
                ("tenniscourt", 0.3, 1, 2),
                ("baseballfield", 0.2, 1, 1),
            ),
        ),
        Module(
            "rail",
            {"urban": 3, "soil": 1, "grass": 1},
            None,
            (("trainstation", 1.0, 1, 1), ("vehicle", 0.7, 1, 4), ("basketballcourt", 0.3, 1, 2)),
        ),
    )
}
MODULE_NAMES: tuple[str, ...] = tuple(MODULES)
_SPANS = ("dam", "bridge", "overpass")  # one object per site the layout made


# How often each module is drawn (relative): modules whose objects need rare sites come up more often.
MODULE_WEIGHTS: dict[str, float] = {
    "airfield": 1.0,
    "coast": 1.2,
    "river": 1.1,
    "reservoir": 1.0,
    "highway": 1.5,
    "sports": 1.0,
    "arena": 0.9,
    "industry": 0.9,
    "countryside": 1.1,
    "rail": 1.5,
}


def choose_modules(rng: np.random.Generator) -> tuple[str, ...]:
    """Two or three distinct modules (weighted by :data:`MODULE_WEIGHTS`), at most one of them with water."""
    k = 2 if rng.random() < 0.7 else 3
    chosen: list[str] = []
    names = list(MODULE_NAMES)
    while len(chosen) < k and names:
        w = np.array([MODULE_WEIGHTS[n] for n in names])
        name = names.pop(int(rng.choice(len(names), p=w / w.sum())))
        if MODULES[name].water is not None and any(MODULES[c].water is not None for c in chosen):
            continue
        chosen.append(name)
    return tuple(chosen)


def choose_terrain(rng: np.random.Generator, modules: tuple[str, ...]) -> str:
    """A ground kind, weighted by the preferences of the modules."""
    weights: dict[str, float] = {}
    for name in modules:
        for kind, w in MODULES[name].terrains.items():
            weights[kind] = weights.get(kind, 0.0) + w
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


def plan_objects(world: World, modules: tuple[str, ...], limit: int = 12) -> list[tuple[str, int]]:
    """Categories and counts asked for by the modules, in placing order, at most ``limit`` objects in all.

    Every bridge, overpass and dam site of the layout gets its object whatever the modules (a road never ends
    in water). Over the limit, the categories placed last (small objects) lose one object each in turn, down
    to one, then whole categories go, last placed first.
    """
    rng = world.rng
    counts: dict[str, int] = {}
    for name in modules:
        for category, p, lo, hi in MODULES[name].objects:
            if lo >= 0 and rng.random() < p:
                counts[category] = counts.get(category, 0) + int(rng.integers(lo, hi + 1))
    for kind in _SPANS:
        counts[kind] = sum(sp.kind == kind for sp in world.spans)
    order = sorted((c for c in counts if counts[c] > 0), key=PRIORITY.index)
    while sum(counts[c] for c in order) > limit:
        trimmable = [c for c in reversed(order) if counts[c] > 1 and c not in _SPANS]
        if not trimmable:
            order.pop()
            continue
        for c in trimmable:
            if sum(counts[k] for k in order) > limit:
                counts[c] -= 1
    return [(c, counts[c]) for c in order]


def sun_and_lean(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Direction shadows fall and the direction tall objects lean (an off-nadir view)."""
    return direction(rng.uniform(0, 2 * math.pi)), direction(rng.uniform(0, 2 * math.pi))
