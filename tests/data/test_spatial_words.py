"""Tests for the remapping of spatial words under flips and quarter turns."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from rsvg.data.spatial_words import OPS, remap_query, transform_direction

# (query, op, expected)
TABLE = [
    # DIOR-RSVG style expressions
    ("The gray vehicle on the lower right", "hflip", "The gray vehicle on the lower left"),
    ("The gray vehicle on the lower right", "vflip", "The gray vehicle on the upper right"),
    ("The gray vehicle on the lower right", "rot90", "The gray vehicle on the upper right"),
    ("The gray vehicle on the lower right", "rot180", "The gray vehicle on the upper left"),
    ("The gray vehicle on the lower right", "rot270", "The gray vehicle on the lower left"),
    (
        "The large storage tank is on the upper left of the small storage tank",
        "hflip",
        "The large storage tank is on the upper right of the small storage tank",
    ),
    (
        "The large storage tank is on the upper left of the small storage tank",
        "vflip",
        "The large storage tank is on the lower left of the small storage tank",
    ),
    (
        "The large storage tank is on the upper left of the small storage tank",
        "rot90",
        "The large storage tank is on the lower left of the small storage tank",
    ),
    (
        "The large storage tank is on the upper left of the small storage tank",
        "rot270",
        "The large storage tank is on the upper right of the small storage tank",
    ),
    ("A ship in the middle of the image", "rot90", "A ship in the middle of the image"),
    ("A ship in the center of the image", "hflip", "A ship in the center of the image"),
    ("The baseball field above the tennis court", "hflip", "The baseball field above the tennis court"),
    ("The baseball field above the tennis court", "vflip", "The baseball field below the tennis court"),
    ("The baseball field above the tennis court", "rot90", "The baseball field on the left of the tennis court"),
    ("The baseball field above the tennis court", "rot270", "The baseball field on the right of the tennis court"),
    ("The baseball field above the tennis court", "rot180", "The baseball field below the tennis court"),
    ("A vehicle is below the ground track field", "rot90", "A vehicle is on the right of the ground track field"),
    # horizontal relations
    (
        "A harbor is on the right of the bridge in the middle",
        "hflip",
        "A harbor is on the left of the bridge in the middle",
    ),
    (
        "A harbor is on the right of the bridge in the middle",
        "vflip",
        "A harbor is on the right of the bridge in the middle",
    ),
    ("A harbor is on the right of the bridge in the middle", "rot90", "A harbor is above the bridge in the middle"),
    ("A harbor is on the right of the bridge in the middle", "rot270", "A harbor is below the bridge in the middle"),
    ("The car is to the left of the tree", "hflip", "The car is to the right of the tree"),
    ("The car is to the left of the tree", "rot90", "The car is below the tree"),
    ("the vehicle left of the tree", "hflip", "the vehicle right of the tree"),
    ("the vehicle left of the tree", "rot270", "the vehicle above the tree"),
    ("On the left of the bridge is a ship", "rot90", "Below the bridge is a ship"),
    ("The ship on the far left of the dam", "rot90", "The ship below the dam"),
    (
        "The bridge is on the lower right of tiny white vehicle",
        "hflip",
        "The bridge is on the lower left of tiny white vehicle",
    ),
    ("The vehicle on top of the bridge", "rot90", "The vehicle on top of the bridge"),
    ("The vehicle on top of the bridge", "vflip", "The vehicle on top of the bridge"),
    ("The vehicle on bottom of the bridge", "vflip", "The vehicle on bottom of the bridge"),
    ("The ship on the top of the dam", "rot90", "The ship on the left of the dam"),
    ("The ship on the top of the dam", "vflip", "The ship on the bottom of the dam"),
    # absolute locations
    ("A overpass on the right", "hflip", "A overpass on the left"),
    ("A overpass on the right", "rot90", "A overpass on the top"),
    ("A overpass on the right", "rot270", "A overpass on the bottom"),
    ("the dam on the top", "rot90", "the dam on the left"),
    ("the dam on the top", "vflip", "the dam on the bottom"),
    ("The ship on the far right", "rot90", "The ship on the very top"),
    ("The ship on the far right", "hflip", "The ship on the far left"),
    ("The ship on the very top", "rot270", "The ship on the far right"),
    ("a plane at the top of the image", "rot90", "a plane at the left of the image"),
    ("a plane on the left of the image", "rot90", "a plane on the bottom of the image"),
    ("a plane on the left of this picture", "rot270", "a plane on the top of this picture"),
    ("a plane in the top left of the image", "hflip", "a plane in the top right of the image"),
    ("a plane in the top left of the image", "vflip", "a plane in the bottom left of the image"),
    ("a plane in the top left of the image", "rot90", "a plane in the bottom left of the image"),
    ("the top-left corner", "rot270", "the top-right corner"),
    ("the upper-left corner", "vflip", "the lower-left corner"),
    ("the ship on the left side of the harbor", "hflip", "the ship on the right side of the harbor"),
    ("the ship on the left side of the harbor", "rot90", "the ship on the lower side of the harbor"),
    ("the upper part of the image", "rot90", "the left part of the image"),
    ("the left part of the image", "rot270", "the upper part of the image"),
    ("the ship on the left, the plane on the right", "rot90", "the ship on the bottom, the plane on the top"),
    ("on the left and right of the road", "vflip", "on the left and right of the road"),
    # modifiers and canonical corner order
    ("the left vehicle", "rot90", "the lower vehicle"),
    ("the upper vehicle", "rot90", "the left vehicle"),
    ("the upper vehicle", "hflip", "the upper vehicle"),
    ("the top vehicle", "vflip", "the bottom vehicle"),
    ("the vehicle on the left upper", "hflip", "the vehicle on the upper right"),
    ("the vehicle on the right bottom", "rot180", "the vehicle on the top left"),
    ("the left top building", "rot90", "the bottom left building"),
    # superlatives
    ("The leftmost ship", "hflip", "The rightmost ship"),
    ("The leftmost ship", "rot90", "The bottommost ship"),
    ("The topmost ship", "rot90", "The leftmost ship"),
    ("The uppermost ship", "vflip", "The lowermost ship"),
    ("The rightmost ship", "rot270", "The bottommost ship"),
    ("the left-most ship", "rot90", "the bottom-most ship"),
    # compass
    ("a northwestern airport north of the dam", "hflip", "a northeastern airport north of the dam"),
    ("a northwestern airport north of the dam", "rot90", "a southwestern airport west of the dam"),
    ("the north-west corner", "vflip", "the south-west corner"),
    ("the north west corner", "rot270", "the north east corner"),
    ("the west-north corner", "hflip", "the north-east corner"),
    ("the southern harbor east of the bridge", "rot90", "the eastern harbor north of the bridge"),
    ("the western harbor", "rot270", "the northern harbor"),
    ("the north-western harbor", "rot180", "the south-eastern harbor"),
    # axis words
    ("the vertical bridge", "rot90", "the horizontal bridge"),
    ("the vertical bridge", "hflip", "the vertical bridge"),
    ("a road running horizontally", "rot270", "a road running vertically"),
    ("a diagonal runway", "rot90", "a diagonal runway"),
    # capitalisation and untouched bytes
    ("Upper Left", "hflip", "Upper Right"),
    ("ABOVE THE BRIDGE", "rot90", "ON THE LEFT OF THE BRIDGE"),
    ("Left of the dam: a ship!", "hflip", "Right of the dam: a ship!"),
    ("Above the dam,  a ship.", "rot270", "On the right of the dam,  a ship."),
    ("the ship above", "rot90", "the ship on the left"),
    ("the ship above and the plane", "rot90", "the ship on the left and the plane"),
    ("\tthe   Left   vehicle \n", "hflip", "\tthe   Right   vehicle \n"),
    ("the gray car (left) near 2 tanks", "hflip", "the gray car (right) near 2 tanks"),
    ("l'avion à gauche, left", "hflip", "l'avion à gauche, right"),
    # not directions
    ("The vehicle right next to the bridge", "hflip", "The vehicle right next to the bridge"),
    ("the tank right above the ship", "hflip", "the tank right above the ship"),
    ("the tank right above the ship", "vflip", "the tank right below the ship"),
    ("the right angle corner", "hflip", "the right angle corner"),
    ("the car left next to the road", "hflip", "the car left next to the road"),
    ("the car on the left next to the road", "hflip", "the car on the right next to the road"),
    ("THE TOP LEFT SHIP", "hflip", "THE TOP RIGHT SHIP"),
    ("the TOP left ship", "hflip", "the TOP right ship"),
    ("the left-hand side", "hflip", "the left-hand side"),
    ("a top-down view", "vflip", "a top-down view"),
    ("", "rot90", ""),
]

NON_DIRECTIONS = [
    "lefty topaz bottomland leftover",
    "a copyright righteous uppercase lowercased toppled",
    "northerner westerly eastward southpaw aboveground belowdecks",
    "left2 top_view xleft rightx",
    "A ship in the middle of the image",
    "the central harbor near the centre",
]


@pytest.mark.parametrize(("query", "op", "expected"), TABLE)
def test_table(query: str, op: str, expected: str) -> None:
    assert remap_query(query, op) == expected


@pytest.mark.parametrize("query", NON_DIRECTIONS)
@pytest.mark.parametrize("op", OPS)
def test_words_that_are_not_directions_are_untouched(query: str, op: str) -> None:
    assert remap_query(query, op) == query


def test_unknown_op() -> None:
    with pytest.raises(ValueError, match="unknown op"):
        remap_query("the left ship", "rot45")
    with pytest.raises(ValueError, match="unknown op"):
        transform_direction((1, 0), "flip")


def _apply_image_op(image: torch.Tensor, op: str) -> torch.Tensor:
    """The image operation each op names (see the spatial_words docstring)."""
    if op == "hflip":
        return image.flip(-1)
    if op == "vflip":
        return image.flip(-2)
    return torch.rot90(image, {"rot90": 1, "rot180": 2, "rot270": 3}[op], dims=(-2, -1))


@pytest.mark.parametrize("op", OPS)
def test_direction_vectors_follow_the_image(op: str) -> None:
    """A marker at centre + (dx, dy) of a 3x3 image ends up at centre + transform_direction((dx, dy))."""
    for dx, dy in itertools.product((-1, 0, 1), repeat=2):
        image = torch.zeros(3, 3)
        image[1 + dy, 1 + dx] = 1
        row, col = (_apply_image_op(image, op) == 1).nonzero()[0].tolist()
        assert transform_direction((dx, dy), op) == (col - 1, row - 1)


# Canonical wordings: those that round-trip through every op.
SUBJECTS = ["The gray vehicle", "A ship", "The large storage tank is", "Vehicles"]
RELATIONS = [
    "on the left of",
    "on the right of",
    "above",
    "below",
    "on the upper left of",
    "on the lower right of",
    "on the upper right of",
    "on the lower left of",
    "north of",
    "to the southeast of",
]
OBJECTS = ["the bridge", "the small storage tank", "the dam in the middle"]
LOCATIONS = [
    "on the left",
    "on the right",
    "on the top",
    "on the bottom",
    "on the upper left",
    "in the lower right",
    "at the top left of the image",
    "on the far left",
    "on the very bottom",
    "in the northwest",
    "on the left side of the image",
    "in the upper part of the image",
    "in the middle",
]
ADJECTIVES = ["left", "right", "upper", "lower", "leftmost", "bottommost", "vertical", "horizontal", "western"]


def _generated_queries() -> list[str]:
    queries = [f"{s} {r} {o}" for s, r, o in itertools.product(SUBJECTS, RELATIONS, OBJECTS)]
    queries += [f"{s} {loc}" for s, loc in itertools.product(SUBJECTS, LOCATIONS)]
    queries += [f"the {a} ship {r} {o}" for a, r, o in itertools.product(ADJECTIVES, RELATIONS, OBJECTS)]
    queries += [f"The {a} harbor {loc}" for a, loc in itertools.product(ADJECTIVES, LOCATIONS)]
    return queries


QUERIES = _generated_queries()


def _compose(query: str, *ops: str) -> str:
    for op in ops:
        query = remap_query(query, op)
    return query


def test_generated_queries_change_under_some_op() -> None:
    # Guards the properties below against a remap_query that does nothing.
    changed = [q for q in QUERIES if any(remap_query(q, op) != q for op in OPS)]
    assert len(changed) >= 0.9 * len(QUERIES)


@pytest.mark.parametrize(
    ("ops", "equivalent"),
    [
        (("hflip", "hflip"), ()),
        (("vflip", "vflip"), ()),
        (("rot180", "rot180"), ()),
        (("rot90", "rot90", "rot90", "rot90"), ()),
        (("rot90", "rot270"), ()),
        (("rot270", "rot90"), ()),
        (("vflip", "hflip"), ("rot180",)),
        (("hflip", "vflip"), ("rot180",)),
        (("rot90", "rot90"), ("rot180",)),
        (("rot90", "rot180"), ("rot270",)),
        (("hflip", "rot90"), ("rot90", "vflip")),
    ],
)
def test_group_properties(ops: tuple[str, ...], equivalent: tuple[str, ...]) -> None:
    for query in QUERIES:
        assert _compose(query, *ops) == _compose(query, *equivalent), query


@pytest.mark.parametrize(
    "query",
    ["the ship to the left of the dam", "the top vehicle", "the ship above", "the vehicle on the top of the dam"],
)
def test_flips_and_half_turns_round_trip_every_wording(query: str) -> None:
    for op in ("hflip", "vflip", "rot180"):
        assert _compose(query, op, op) == query
    assert _compose(query, "hflip", "vflip") == remap_query(query, "rot180")


def test_non_canonical_wordings_come_back_canonical() -> None:
    assert _compose("the ship to the left of the dam", "rot90", "rot270") == "the ship on the left of the dam"
    assert _compose("the top vehicle", "rot90", "rot270") == "the upper vehicle"


def test_corners_render_vertical_word_first() -> None:
    corners = ("upper left", "upper right", "lower left", "lower right")
    for query in QUERIES:
        for op in OPS:
            remapped = remap_query(query, op).lower()
            for bad in ("left upper", "right upper", "left lower", "right lower", "left top", "right bottom"):
                assert bad not in remapped
    for corner, op in itertools.product(corners, OPS):
        assert remap_query(f"on the {corner}", op).removeprefix("on the ") in corners


def test_flips_invert_themselves_on_arbitrary_text() -> None:
    """On random word salad, hflip/vflip/rot180 are involutions and vflip(hflip(q)) == rot180(q).

    Corner and compass pairs written horizontal-first ("left top", "west north") are left out: they are
    rewritten in canonical order, which is deliberately not the identity.
    """
    vocab = [
        "left",
        "right",
        "top",
        "bottom",
        "upper",
        "lower",
        "above",
        "below",
        "of",
        "the",
        "on",
        "to",
        "in",
        "at",
        "far",
        "very",
        "image",
        "this",
        "leftmost",
        "topmost",
        "upper-most",
        "north",
        "west",
        "northwestern",
        "vertical",
        "horizontal",
        "ship",
        "and",
        ",",
        ".",
        "-",
        "most",
        "hand",
        "next",
        "angle",
        "Left",
        "TOP",
        "Above",
    ]
    horizontal = {"left", "right", "west", "east"}
    vertical = {"top", "bottom", "upper", "lower", "north", "south"}
    rng = random.Random(0)
    checked = 0
    while checked < 3000:
        words = rng.choices(vocab, k=rng.randint(0, 10))
        low = [w.lower() for w in words if w != "-"]
        if any(a in horizontal and b in vertical for a, b in itertools.pairwise(low)):
            continue
        query = "".join(w if w in ",.-" else " " + w for w in words)
        for op in ("hflip", "vflip", "rot180"):
            assert _compose(query, op, op) == query, (op, query)
        assert _compose(query, "hflip", "vflip") == remap_query(query, "rot180"), query
        for op in ("rot90", "rot270"):  # must not fail, and must keep the non-spatial words
            remapped = remap_query(query, op)
            assert remapped.count("ship") == query.count("ship")
        checked += 1
