"""Step 1 of the paper: box sampling.

Rules, applied in this order to the objects of one image (each drop is counted by its reason):

* ``empty_box`` — annotation error, ``xmin >= xmax`` or ``ymin >= ymax``;
* ``too_small`` — box area under ``MIN_AREA_FRACTION`` (0.02 %) of the image area;
* ``too_large`` — box area over ``MAX_AREA_FRACTION`` (99 %) of the image area;
* ``category_cap`` — more than ``MAX_PER_CATEGORY`` (5) objects of one category: a seeded random choice of 5
  is kept (in document order).

Objects dropped as too small, too large or over the cap are still *in the image*: they get no expression of
their own but every expression must remain unambiguous with respect to them, so they stay in the scene
(:attr:`SamplingResult.scene`). Only annotation errors leave the scene.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rsvg.data.records import DetectionObject

MIN_AREA_FRACTION = 0.0002
MAX_AREA_FRACTION = 0.99
MAX_PER_CATEGORY = 5


@dataclass(frozen=True)
class SamplingResult:
    """Positions (into the input sequence) of the scene objects and of the sampled targets."""

    scene: tuple[int, ...]  # every object with a valid box, in input order
    targets: tuple[int, ...]  # the objects that get an expression, in input order (a subset of ``scene``)
    dropped: Counter = field(default_factory=Counter)  # reason -> number of objects


def sample_objects(
    objects: Sequence[DetectionObject],
    width: int,
    height: int,
    rng: np.random.Generator,
    *,
    min_area_fraction: float = MIN_AREA_FRACTION,
    max_area_fraction: float = MAX_AREA_FRACTION,
    max_per_category: int = MAX_PER_CATEGORY,
) -> SamplingResult:
    """Apply the sampling rules of the module docstring to one image's objects."""
    image_area = float(width) * float(height)
    dropped: Counter = Counter()
    scene: list[int] = []
    sized: list[int] = []
    for i, obj in enumerate(objects):
        x1, y1, x2, y2 = obj.box
        if x1 >= x2 or y1 >= y2:
            dropped["empty_box"] += 1
            continue
        scene.append(i)
        frac = (x2 - x1) * (y2 - y1) / image_area if image_area > 0 else 0.0
        if frac < min_area_fraction:
            dropped["too_small"] += 1
        elif frac > max_area_fraction:
            dropped["too_large"] += 1
        else:
            sized.append(i)
    by_category: dict[str, list[int]] = {}
    for i in sized:
        by_category.setdefault(objects[i].category, []).append(i)
    targets: list[int] = []
    for category in sorted(by_category):
        members = by_category[category]
        if len(members) > max_per_category:
            chosen = rng.choice(len(members), size=max_per_category, replace=False)
            dropped["category_cap"] += len(members) - max_per_category
            members = [members[k] for k in sorted(chosen.tolist())]
        targets.extend(members)
    return SamplingResult(scene=tuple(scene), targets=tuple(sorted(targets)), dropped=dropped)
