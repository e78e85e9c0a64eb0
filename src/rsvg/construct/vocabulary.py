"""The words of the generated expressions: one table per attribute, shared by generation and parsing.

Every attribute value is stored under a *canonical word* (the word in provenance and statistics); a few
canonical words have several surface forms in the text ("small" is written "small" or "little").

Every word written is one of DIOR-RSVG's (:data:`rsvg.construct.dior_rsvg_words.DIOR_RSVG_WORDS`): its
comparison is "bigger than" (never "larger than"), its round and elliptic shapes are "oval" (never "round"), it
has no "square", and it names two colours as "gray and black" or "white and gray".

Attributes (paper Table I): a1 category, a2 ``color``, a3 ``size``, a4 ``geometry``, a5 ``location``
(absolute), a6 ``relative_location`` and a7 ``relative_size`` (relations to a second object).
"""

from __future__ import annotations

# a2: the colour palette (see rsvg.construct.color for the HSV boundaries of each word).
COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "brown", "white", "gray", "black")
# a2 with two colours: the pairs DIOR-RSVG names (405 and 270 times), each written in its order ("gray and black",
# never "black and gray"); the colour step says one when the object's pixels support both (rsvg.construct.color).
TWO_COLORS: tuple[tuple[str, str], ...] = (("gray", "black"), ("white", "gray"))

# a3: absolute size words, smallest to largest. "medium" is computed but never written (nobody says it).
SIZES: tuple[str, ...] = ("tiny", "small", "medium", "large", "huge")
DESCRIBABLE_SIZES: frozenset[str] = frozenset({"tiny", "small", "large", "huge"})

# a4: geometry words. "oval" covers round shapes too (DIOR-RSVG says "oval", never "round"); "square" is measured
# (it keeps other objects' expressions unambiguous) but never written: DIOR-RSVG has no such word.
GEOMETRIES: tuple[str, ...] = ("oval", "square", "rectangular", "slender")
DESCRIBABLE_GEOMETRIES: frozenset[str] = frozenset({"oval", "rectangular", "slender"})

# a5: the 3x3 grid of the image, row-major, and how each cell is written after the noun.
LOCATIONS: tuple[str, ...] = (
    "top left",
    "top",
    "top right",
    "left",
    "middle",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
# DIOR-RSVG's nine phrases (its expressions say "on the upper left", never "on the top left" or "at the top").
LOCATION_PHRASES: dict[str, str] = {
    "top left": "on the upper left",
    "top": "on the top",
    "top right": "on the upper right",
    "left": "on the left",
    "middle": "in the middle",
    "right": "on the right",
    "bottom left": "on the lower left",
    "bottom": "at the bottom",
    "bottom right": "on the lower right",
}

# a6: relative location of the target with respect to the anchor, as a direction (degrees, y pointing up).
DIRECTIONS: dict[str, float] = {
    "right": 0.0,
    "upper right": 45.0,
    "above": 90.0,
    "upper left": 135.0,
    "left": 180.0,
    "lower left": 225.0,
    "below": 270.0,
    "lower right": 315.0,
}
RELATIVE_LOCATION_PHRASES: dict[str, str] = {
    "right": "on the right of",
    "upper right": "on the upper right of",
    "above": "above",
    "upper left": "on the upper left of",
    "left": "on the left of",
    "lower left": "on the lower left of",
    "below": "below",
    "lower right": "on the lower right of",
}

# a7: relative size of the target with respect to the anchor.
RELATIVE_SIZES: tuple[str, ...] = ("smaller", "bigger")
RELATIVE_SIZE_PHRASES: dict[str, str] = {"smaller": "smaller than", "bigger": "bigger than"}

# Own attributes (a2-a5) in the order adjectives are written before the noun (English order: size, shape,
# colour); location is written after the noun.
OWN_ATTRIBUTES: tuple[str, ...] = ("size", "geometry", "color", "location")
RELATIONS: tuple[str, ...] = ("relative_location", "relative_size")
ATTRIBUTE_SYMBOLS: dict[str, str] = {
    "category": "a1",
    "color": "a2",
    "size": "a3",
    "geometry": "a4",
    "location": "a5",
    "relative_location": "a6",
    "relative_size": "a7",
}

# Surface forms written for a canonical word (itself first); the generator picks one in proportion to its count
# among DIOR-RSVG's words (small 2,272 : little 858; slender 1,192 : long 507; large 3,907 : big 7).
SURFACE_FORMS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little"),
    "slender": ("slender", "long"),
    "large": ("large", "big"),
}

# Extra spellings accepted when reading expressions written by people (e.g. the official DIOR-RSVG).
COLOR_SYNONYMS: dict[str, str] = {"grey": "gray", "silver": "gray", "cyan": "blue", "pink": "purple"}
SIZE_SYNONYMS: dict[str, str] = {
    "big": "large",
    "little": "small",
    "smaller": "small",
    "larger": "large",
    "bigger": "large",
    "giant": "huge",
    "medium": "medium",
}
GEOMETRY_SYNONYMS: dict[str, str] = {
    "round": "oval",
    "rounded": "oval",
    "circular": "oval",
    "circle": "oval",
    "long": "slender",
    "narrow": "slender",
    "elliptical": "oval",
    "rectangle": "rectangular",
}
LOCATION_SYNONYMS: dict[str, str] = {
    "upper left": "top left",
    "upper right": "top right",
    "lower left": "bottom left",
    "lower right": "bottom right",
    "upper": "top",
    "lower": "bottom",
    "center": "middle",
    "centre": "middle",
    "middle": "middle",
}
RELATION_SYNONYMS: dict[str, tuple[str, str]] = {
    # surface form -> (relation kind, canonical word)
    "on the left of": ("relative_location", "left"),
    "to the left of": ("relative_location", "left"),
    "left of": ("relative_location", "left"),
    "on the right of": ("relative_location", "right"),
    "to the right of": ("relative_location", "right"),
    "right of": ("relative_location", "right"),
    "on the upper left of": ("relative_location", "upper left"),
    "on the top left of": ("relative_location", "upper left"),
    "upper left of": ("relative_location", "upper left"),
    "on the upper right of": ("relative_location", "upper right"),
    "on the top right of": ("relative_location", "upper right"),
    "upper right of": ("relative_location", "upper right"),
    "on the lower left of": ("relative_location", "lower left"),
    "on the bottom left of": ("relative_location", "lower left"),
    "lower left of": ("relative_location", "lower left"),
    "on the lower right of": ("relative_location", "lower right"),
    "on the bottom right of": ("relative_location", "lower right"),
    "lower right of": ("relative_location", "lower right"),
    "above": ("relative_location", "above"),
    "on the top of": ("relative_location", "above"),
    "on top of": ("relative_location", "above"),
    "below": ("relative_location", "below"),
    "under": ("relative_location", "below"),
    "beneath": ("relative_location", "below"),
    "on the bottom of": ("relative_location", "below"),
    "smaller than": ("relative_size", "smaller"),
    "bigger than": ("relative_size", "bigger"),
    "larger than": ("relative_size", "bigger"),
}


def surface_forms(word: str) -> tuple[str, ...]:
    """The ways a canonical attribute word may be written (itself first)."""
    return SURFACE_FORMS.get(word, (word,))


def two_color_phrase(first: str, second: str) -> str | None:
    """DIOR-RSVG's phrase for an object of colours ``first`` and ``second`` (either order), e.g. "gray and black";
    ``None`` for a pair it does not name."""
    for pair in TWO_COLORS:
        if {first, second} == set(pair) and first != second:
            return " and ".join(pair)
    return None


def color_parts(word: str) -> tuple[str, ...]:
    """The palette words of a colour attribute value: ("gray", "black") for "gray and black", ("red",) for "red"."""
    return tuple(word.split(" and "))
