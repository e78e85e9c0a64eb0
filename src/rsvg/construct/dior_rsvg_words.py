"""The words of DIOR-RSVG's referring expressions, with their counts.

Source: the words of DIOR-RSVG's 38,320 referring expressions (Zhan et al., "RSVG: Exploring Data and Models for
Visual Grounding on Remote Sensing Data", IEEE TGRS 2023, the dataset's release: train, val and test), lower-cased
and split on spaces, with their counts: 104 distinct words, most frequent first.

The builder writes only these words (:mod:`rsvg.construct.render`, checked by the tests), weighs a word's surface
forms by these counts, and ``rsvg stats`` reports the share of a dataset's words outside this list.
"""

from __future__ import annotations

from collections.abc import Iterable

#: expressions the counts were taken from
DIOR_RSVG_EXPRESSIONS = 38320

#: word -> how often it occurs in DIOR-RSVG's expressions
DIOR_RSVG_WORDS: dict[str, int] = {
    "the": 62626,
    "on": 23003,
    "a": 20122,
    "right": 10139,
    "vehicle": 9885,
    "left": 9855,
    "is": 9764,
    "field": 9252,
    "in": 8167,
    "middle": 7216,
    "of": 6048,
    "upper": 5515,
    "lower": 5513,
    "gray": 5192,
    "baseball": 4625,
    "large": 3907,
    "court": 3526,
    "ground": 3417,
    "track": 3417,
    "bridge": 3271,
    "bottom": 3266,
    "at": 3259,
    "expressway": 3130,
    "windmill": 3082,
    "top": 2966,
    "and": 2940,
    "overpass": 2908,
    "station": 2430,
    "ship": 2413,
    "small": 2272,
    "tiny": 2235,
    "airplane": 2025,
    "tennis": 1915,
    "service": 1696,
    "area": 1695,
    "basketball": 1617,
    "stadium": 1599,
    "storage": 1456,
    "tank": 1455,
    "chimney": 1438,
    "toll": 1434,
    "airport": 1383,
    "green": 1340,
    "golf": 1213,
    "than": 1202,
    "slender": 1192,
    "dam": 1149,
    "orange": 1123,
    "red": 1110,
    "train": 996,
    "blue": 883,
    "little": 858,
    "below": 856,
    "oval": 798,
    "harbor": 796,
    "above": 784,
    "huge": 783,
    "black": 776,
    "smaller": 642,
    "similar": 626,
    "size": 626,
    "to": 626,
    "bigger": 560,
    "white": 541,
    "long": 507,
    "yellow": 390,
    "cyan": 389,
    "rectangular": 357,
    "much": 344,
    "has": 258,
    "rounded": 151,
    "frustum": 143,
    "cone": 143,
    "driving": 84,
    "parked": 55,
    "purple": 55,
    "far": 52,
    "all": 18,
    "lying": 16,
    "brown": 13,
    "big": 7,
    "with": 7,
    "vehicles": 6,
    "courts": 6,
    "going": 6,
    "through": 6,
    "anchored": 6,
    "dark": 3,
    "fields": 3,
    "longest": 3,
    "light": 2,
    "as": 2,
    "center": 1,
    "areas": 1,
    "airplanes": 1,
    "leftmost": 1,
    "car": 1,
    "running": 1,
    "it": 1,
    "other": 1,
    "second": 1,
    "from": 1,
    "first": 1,
    "tanks": 1,
}


def outside_dior_rsvg(words: Iterable[str]) -> list[str]:
    """The words of ``words`` (lower-cased first) that DIOR-RSVG's expressions never use, in order, repeats kept."""
    return [w for w in words if w.lower() not in DIOR_RSVG_WORDS]
