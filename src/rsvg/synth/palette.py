"""The named colour palette objects are painted with, and the paints drawn from it.

Every object part is painted either with a *named* paint (one of :data:`COLOR_NAMES`, jittered a little) or a
*detail* paint (court lines, windows, rails...) that belongs to no colour name. An object's colour is the name
that covers most of its body, so the names here are what an HSV colour extractor should recover.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# Base RGB of each colour name. Hues (OpenCV scale 0-180) are about: red 1, orange 14, yellow 26, green 61,
# blue 110, purple 137; brown has the hue of orange at about half its brightness.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (196, 40, 36),
    "orange": (228, 128, 34),
    "yellow": (226, 204, 56),
    "green": (62, 142, 62),
    "blue": (42, 90, 190),
    "purple": (120, 62, 158),
    "brown": (126, 84, 48),
    "white": (234, 234, 228),
    "gray": (128, 128, 126),
    "black": (32, 32, 34),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

# Brightness bands that keep the neutral names apart (HSV value: black < 60 <= gray < 190 <= white).
_NEUTRAL_BANDS: dict[str, tuple[float, float]] = {"black": (0, 48), "gray": (72, 178), "white": (204, 255)}

DETAIL = 254  # label of painted pixels that belong to no colour name
EMPTY = 255  # label of pixels an object does not cover

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Paint:
    """An RGB value and the label it leaves: a colour-name index, or :data:`DETAIL`."""

    rgb: RGB
    label: int

    @property
    def name(self) -> str | None:
        return COLOR_NAMES[self.label] if self.label < len(COLOR_NAMES) else None

    def shade(self, factor: float) -> Paint:
        """The same colour name, brighter (factor > 1) or darker; stays recognisably the same name.

        Scaling keeps hue and saturation; the neutral names are also kept inside their brightness band.
        """
        rgb = np.asarray(self.rgb) * factor
        band = _NEUTRAL_BANDS.get(self.name or "")
        if band is not None:
            rgb = np.clip(rgb, *band)
        return Paint(_clip(rgb), self.label)


def _clip(rgb: np.ndarray) -> RGB:
    r, g, b = (float(v) for v in np.clip(rgb, 0, 255))
    return (r, g, b)


def paint(rng: np.random.Generator, name: str, jitter: float = 10.0) -> Paint:
    """A slightly varied paint of colour ``name`` (brightness and per-channel jitter keep its hue class)."""
    base = np.asarray(COLORS[name], dtype=np.float64)
    lo, hi = (0.94, 1.04) if name in ("white", "black") else (0.9, 1.08)
    if name == "gray":
        base = base * rng.uniform(0.8, 1.25)
    rgb = base * rng.uniform(lo, hi) + rng.uniform(-jitter, jitter, 3) * (0.4 if name in ("gray", "white") else 1)
    return Paint(_clip(rgb), COLOR_NAMES.index(name))


def detail(rgb: RGB | tuple[int, int, int]) -> Paint:
    """A paint for markings and details that should not count towards the object's colour."""
    return Paint(_clip(np.asarray(rgb, dtype=np.float64)), DETAIL)


def pick(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    """Draw a key of ``weights`` with probability proportional to its weight."""
    names = list(weights)
    p = np.asarray([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


# Paint colour distributions per category (what such objects tend to look like from above).
CATEGORY_COLORS: dict[str, dict[str, float]] = {
    "storagetank": {"white": 5, "gray": 2, "green": 1, "blue": 1, "red": 0.6, "black": 0.5, "yellow": 0.4},
    "vehicle": {
        "white": 4,
        "black": 2,
        "gray": 2,
        "red": 1.5,
        "blue": 1.5,
        "yellow": 0.6,
        "green": 0.5,
        "orange": 0.4,
        "brown": 0.3,
    },
    "airplane": {"white": 6, "gray": 2.5, "blue": 0.4, "red": 0.3, "yellow": 0.3},
    "ship": {"white": 3, "gray": 2.5, "red": 1, "blue": 1, "black": 1, "orange": 0.5, "green": 0.4},
    "tenniscourt": {"green": 3, "blue": 2.5, "red": 2, "orange": 0.5, "purple": 0.4, "gray": 0.4},
    "basketballcourt": {"blue": 2, "red": 2, "green": 2, "orange": 1.2, "yellow": 0.6, "gray": 0.6, "purple": 0.4},
    "groundtrackfield": {"red": 6, "blue": 1.2, "orange": 1, "green": 0.6, "gray": 0.4},
    "stadium": {"white": 4, "gray": 2.5, "red": 1, "blue": 1, "orange": 0.5, "yellow": 0.4, "purple": 0.3},
    "chimney": {"white": 2.5, "gray": 2.5, "red": 2, "brown": 1, "black": 0.5, "yellow": 0.3},
    "windmill": {"white": 8, "gray": 2},
    "bridge": {"gray": 5, "white": 2, "red": 0.8, "brown": 0.8, "green": 0.4, "blue": 0.4, "orange": 0.3},
    "overpass": {"gray": 6, "white": 3, "brown": 0.5},
    "dam": {"gray": 5, "white": 3, "brown": 1.5},
    "harbor": {"gray": 5, "white": 2.5, "brown": 1.5},
    "trainstation": {"gray": 3, "white": 2, "red": 1.2, "blue": 1.2, "green": 0.8, "orange": 0.5, "brown": 0.6},
    "roof": {"white": 3, "red": 1.5, "blue": 1.5, "green": 1, "orange": 0.8, "gray": 1.5, "yellow": 0.5},
}
