"""Step 2 of the paper: the 7-tuple of attributes of every object of an image (the *scene*).

Own attributes (a1 category, a2 colour, a3 size, a4 geometry, a5 absolute location) are stored per object as
a *definite* word (may be said about the object) and a set of *plausible* words (a reader might apply them).
Relations (a6 relative location, a7 relative size) are stored per ordered pair as boolean matrices, with the
same definite / plausible split. The rules and thresholds are in :mod:`~rsvg.construct.color`,
:mod:`~rsvg.construct.geometry` and :mod:`~rsvg.construct.location`.

The plausible sets make the uniqueness check conservative: an expression must not fit any other object under
any reasonable reading, while it is only built from words that are clearly true of its target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from rsvg.construct import location as loc
from rsvg.construct.color import object_color
from rsvg.construct.geometry import object_geometry
from rsvg.construct.mask import object_mask
from rsvg.construct.vocabulary import DESCRIBABLE_SIZES, OWN_ATTRIBUTES
from rsvg.data.categories import natural_name
from rsvg.data.records import BoxXYXY


@dataclass(frozen=True, eq=False)
class ObjectAttributes:
    """The own attributes of one object of a scene."""

    index: int  # position in the scene
    category: str  # canonical DIOR class (a1; written with :func:`rsvg.data.categories.natural_name`)
    box: BoxXYXY
    definite: Mapping[str, str] = field(default_factory=dict)  # attribute -> word (only clear ones)
    plausible: Mapping[str, frozenset[str]] = field(default_factory=dict)  # absent attribute: unknown (any)

    @property
    def name(self) -> str:
        """The category in natural words (a1)."""
        return natural_name(self.category)

    def may_be(self, attribute: str, word: str) -> bool:
        """Whether a reader might describe this object's ``attribute`` with ``word``."""
        words = self.plausible.get(attribute)
        return True if words is None else word in words


@dataclass(eq=False)
class SceneAttributes:
    """Every object of one image with its own attributes, and the pairwise relations."""

    width: int
    height: int
    objects: tuple[ObjectAttributes, ...]

    @cached_property
    def relations(self) -> tuple[dict[tuple[str, str], np.ndarray], dict[tuple[str, str], np.ndarray]]:
        """``(definite, plausible)`` boolean ``[target, anchor]`` matrices keyed by (kind, word)."""
        boxes = [o.box for o in self.objects]
        d_loc, p_loc = loc.relative_location_matrices(boxes)
        d_size, p_size = loc.relative_size_matrices(boxes)
        definite = {("relative_location", w): m for w, m in d_loc.items()}
        definite |= {("relative_size", w): m for w, m in d_size.items()}
        plausible = {("relative_location", w): m for w, m in p_loc.items()}
        plausible |= {("relative_size", w): m for w, m in p_size.items()}
        return definite, plausible

    def may_relate(self, target: int, anchor: int, kind: str, word: str) -> bool:
        """Whether a reader might say that object ``target`` is ``word`` (a6/a7) with respect to ``anchor``."""
        return bool(self.relations[1][(kind, word)][target, anchor])

    def definite_relations(self, target: int, anchor: int) -> list[tuple[str, str]]:
        """The (kind, word) relations clearly true of the pair, a6 first."""
        return [key for key, m in self.relations[0].items() if m[target, anchor]]


def box_attributes(category: str, box: BoxXYXY, width: int, height: int) -> tuple[dict, dict]:
    """Definite and plausible size (a3) and location (a5) of a box."""
    definite: dict[str, str] = {}
    size = loc.size_word(box, width, height)
    if size in DESCRIBABLE_SIZES:
        definite["size"] = size
    where = loc.absolute_location(box, width, height)
    if where is not None:
        definite["location"] = where
    plausible = {
        "size": loc.plausible_sizes(box, width, height),
        "location": loc.plausible_locations(box, width, height),
    }
    return definite, plausible


def object_attributes(
    index: int, category: str, box: BoxXYXY, rgb: np.ndarray, lab: np.ndarray | None = None
) -> ObjectAttributes:
    """All own attributes of one object of an RGB image (``lab``: the image in OpenCV Lab, if at hand)."""
    height, width = rgb.shape[:2]
    if lab is None:
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    mask = object_mask(lab, box)
    definite, plausible = box_attributes(category, box, width, height)
    color = object_color(rgb, box, mask)
    if color.color is not None:
        definite["color"] = color.color
    if color.plausible:
        plausible["color"] = color.plausible
    geometry = object_geometry(category, box, mask)
    if geometry.geometry is not None:
        definite["geometry"] = geometry.geometry
    plausible["geometry"] = geometry.plausible
    ordered = {k: definite[k] for k in OWN_ATTRIBUTES if k in definite}
    return ObjectAttributes(index=index, category=category, box=box, definite=ordered, plausible=plausible)


def extract_scene(rgb: np.ndarray, objects: Sequence[tuple[str, BoxXYXY]]) -> SceneAttributes:
    """Attributes of every ``(category, box)`` of an RGB ``uint8`` image (H x W x 3)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    attrs = tuple(object_attributes(i, c, tuple(map(float, b)), rgb, lab) for i, (c, b) in enumerate(objects))
    return SceneAttributes(width=rgb.shape[1], height=rgb.shape[0], objects=attrs)
