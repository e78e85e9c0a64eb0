"""Rejection tests for candidate objects, and the record of what has been placed.

A candidate is accepted when its box lies inside the image, barely overlaps the boxes already placed (an object
inside another's slot may overlap that one), its body covers almost no other object, and it sits on the right
ground (water for ships, road for vehicles, dry land for courts...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsvg.synth.layer import Sprite, body_window, composite
from rsvg.synth.world import World


@dataclass(frozen=True)
class Rule:
    """Fractions of an object's body allowed (or required) on water, on roads and on railway beds."""

    min_water: float = 0.0
    max_water: float = 0.0
    min_road: float = 0.0
    max_road: float = 0.0
    max_rail: float = 0.0


LAND = Rule()
ON_WATER = Rule(min_water=0.96, max_water=1.0)
ON_ROAD = Rule(min_road=0.75, max_road=1.0)
ANYWHERE = Rule(max_water=1.0, max_road=1.0, max_rail=1.0)

MAX_BOX_OVERLAP = 0.1  # intersection over the smaller box
MAX_BODY_OVERLAP = 0.02  # fraction of a new body over bodies already drawn


def _intersection(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _area(b: tuple[float, ...]) -> float:
    return (b[2] - b[0]) * (b[3] - b[1])


class Placer:
    """Accepts or rejects candidates and composites accepted ones onto the world's canvas."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.paved = world.road & ~world.rail  # roads proper
        self.owner = np.zeros((world.size, world.size), dtype=np.int16)  # 1 + index of the object drawn there
        self.sprites: list[Sprite] = []

    def __len__(self) -> int:
        return len(self.sprites)

    def box_free(self, box: tuple[float, float, float, float], container: int | None = None) -> bool:
        """Whether ``box`` lies inside the image and barely overlaps the boxes placed so far.

        Also used before drawing, on a box estimated from an object's outline, to skip hopeless sites cheaply.
        """
        x0, y0, x1, y1 = box
        size = self.world.size
        if x0 < 1 or y0 < 1 or x1 > size - 1 or y1 > size - 1:
            return False
        area = _area(box)
        for i, other in enumerate(self.sprites):
            if i == container:
                continue
            if _intersection(box, other.box) > MAX_BOX_OVERLAP * min(area, _area(other.box)):
                return False
        return True

    def fits(self, sprite: Sprite, rule: Rule, container: int | None = None) -> bool:
        """Whether ``sprite`` may be placed (``container``: index of the object whose slot it uses)."""
        if not self.box_free(sprite.box, container):
            return False
        owner, body = body_window(sprite, self.owner)
        n = int(np.count_nonzero(body))
        if n == 0:
            return False
        under = owner[body]
        taken = np.count_nonzero((under != 0) & (under != (0 if container is None else container + 1)))
        if taken > MAX_BODY_OVERLAP * n:
            return False
        water, _ = body_window(sprite, self.world.water)
        wet = np.count_nonzero(water[body]) / n
        if not rule.min_water <= wet <= rule.max_water:
            return False
        road, _ = body_window(sprite, self.paved)
        paved = np.count_nonzero(road[body]) / n
        if not rule.min_road <= paved <= rule.max_road:
            return False
        if rule.max_rail >= 1.0:
            return True
        rail, _ = body_window(sprite, self.world.rail)
        return np.count_nonzero(rail[body]) <= rule.max_rail * n

    def add(self, sprite: Sprite) -> int:
        """Draw ``sprite``, record it and offer its slots; returns its index."""
        index = len(self.sprites)
        composite(self.world.canvas, sprite)
        owner, body = body_window(sprite, self.owner)
        owner[body] = index + 1
        self.sprites.append(sprite)
        self.world.slots.extend((slot, index) for slot in sprite.slots)
        return index

    def try_add(self, sprite: Sprite | None, rule: Rule, container: int | None = None) -> bool:
        if sprite is None or not self.fits(sprite, rule, container):
            return False
        self.add(sprite)
        return True

    def of(self, category: str) -> list[Sprite]:
        return [sp for sp in self.sprites if sp.category == category]
