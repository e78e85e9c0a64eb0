"""Read an expression's attributes back from its text, with the generator's vocabulary and common variants.

Used by the statistics on datasets that carry no provenance (the official DIOR-RSVG) and as an independent
check of generated expressions. Rules: the text is lower-cased and stripped of punctuation; the first relation
phrase ("on the left of", "smaller than", "above", ...) splits a sentence into target and anchor parts; in each
part the longest category name found is the category, colour / size / geometry words are own attributes (two
colours joined by "and", "gray and black", are one colour value) and "on/in/at the <cell>" (not followed by "of")
is the absolute location.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rsvg.construct.matching import ExpressionSpec, PhraseSpec
from rsvg.construct.vocabulary import (
    COLOR_SYNONYMS,
    COLORS,
    GEOMETRIES,
    GEOMETRY_SYNONYMS,
    LOCATION_SYNONYMS,
    LOCATIONS,
    RELATION_SYNONYMS,
    SIZE_SYNONYMS,
    SIZES,
    two_color_phrase,
)
from rsvg.data.categories import DIOR_CLASSES, natural_name

CATEGORY_SYNONYMS: dict[str, str] = {
    **{natural_name(c): c for c in DIOR_CLASSES},
    "plane": "airplane",
    "aircraft": "airplane",
    "car": "vehicle",
    "truck": "vehicle",
    "tank": "storagetank",
    "oil tank": "storagetank",
    "track field": "groundtrackfield",
    "running track": "groundtrackfield",
    "baseball diamond": "baseballfield",
    "golf course": "golffield",
    "service area": "Expressway-Service-area",
    "toll station": "Expressway-toll-station",
    "toll gate": "Expressway-toll-station",
    "railway station": "trainstation",
    "harbour": "harbor",
    "port": "harbor",
    "wind turbine": "windmill",
    "boat": "ship",
    "expressway-service-area": "Expressway-Service-area",
    "expressway-toll-station": "Expressway-toll-station",
}
_COLOR_WORDS = {**{c: c for c in COLORS}, **COLOR_SYNONYMS}
_SIZE_WORDS = {**{s: s for s in SIZES}, **SIZE_SYNONYMS}
_GEOMETRY_WORDS = {**{g: g for g in GEOMETRIES}, **GEOMETRY_SYNONYMS}
_LOCATION_WORDS = {**{loc: loc for loc in LOCATIONS}, **LOCATION_SYNONYMS}


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_RELATION_RE = re.compile(rf"\b({_alternation(list(RELATION_SYNONYMS))})\b")
_CATEGORY_RE = re.compile(rf"\b({_alternation(list(CATEGORY_SYNONYMS))})s?\b")
_LOCATION_RE = re.compile(
    rf"\b(?:on|in|at) the ({_alternation(list(_LOCATION_WORDS))})(?: (?:side|part|corner))?"
    rf"(?: of the (?:image|picture|scene))?\b(?! of\b)"
)
_TWO_COLOR_RE = re.compile(rf"\b({_alternation(list(_COLOR_WORDS))}) and ({_alternation(list(_COLOR_WORDS))})\b")
_IMAGE_RE = re.compile(r"\b(?:of|in) the (?:image|picture|scene)\b")
_WORD_RE = re.compile(r"[a-z]+(?:-[a-z]+)*")


@dataclass(frozen=True)
class ParsedExpression:
    """The attributes read from a text; ``spec`` categories are "" when no category word was found."""

    spec: ExpressionSpec
    words: tuple[str, ...]  # the text's words, lower-cased


def normalize(text: str) -> str:
    """Lower-case, punctuation turned into spaces (hyphens inside words kept), single spaces."""
    return " ".join(_WORD_RE.findall(text.lower()))


def parse_phrase(text: str) -> PhraseSpec:
    """Category and own attributes of a noun phrase such as "the large red vehicle on the left"."""
    text = normalize(text)
    attrs: dict[str, str] = {}
    loc_match = _LOCATION_RE.search(text)
    if loc_match:
        attrs["location"] = _LOCATION_WORDS[loc_match.group(1)]
        text = text[: loc_match.start()] + text[loc_match.end() :]
    pair = _TWO_COLOR_RE.search(text)
    if pair:
        first, second = _COLOR_WORDS[pair.group(1)], _COLOR_WORDS[pair.group(2)]
        if first != second:  # the pairs the builder writes in its order, others as read ("red and white")
            attrs["color"] = two_color_phrase(first, second) or f"{first} and {second}"
            text = text[: pair.start()] + text[pair.end() :]
    categories = _CATEGORY_RE.findall(text)
    category = CATEGORY_SYNONYMS[max(categories, key=len)] if categories else ""
    tokens = text.split()
    for token in tokens:
        if token in _COLOR_WORDS and "color" not in attrs:
            attrs["color"] = _COLOR_WORDS[token]
        elif token in _SIZE_WORDS and "size" not in attrs:
            attrs["size"] = _SIZE_WORDS[token]
        elif token in _GEOMETRY_WORDS and "geometry" not in attrs:
            attrs["geometry"] = _GEOMETRY_WORDS[token]
    return PhraseSpec(category, tuple(attrs.items()))


def parse_expression(text: str) -> ParsedExpression:
    """The spec a text expresses (phrase, or sentence with relation and anchor)."""
    norm = normalize(text)
    norm = " ".join(_IMAGE_RE.sub(" ", norm).split())
    match = _RELATION_RE.search(norm)
    if match is None:
        spec = ExpressionSpec(parse_phrase(norm))
    else:
        left = re.sub(r"\s+(?:is|are|which is|that is|located)$", "", norm[: match.start()].strip())
        spec = ExpressionSpec(parse_phrase(left), RELATION_SYNONYMS[match.group(1)], parse_phrase(norm[match.end() :]))
    return ParsedExpression(spec=spec, words=tuple(norm.split()))
