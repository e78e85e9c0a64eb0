"""The builder writes only DIOR-RSVG's words (the list of its 38,320 expressions' words), names two colours as
DIOR-RSVG does, and ``rsvg stats`` reports the share of words outside that list."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rsvg.construct.dior_rsvg_words import DIOR_RSVG_EXPRESSIONS, DIOR_RSVG_WORDS, outside_dior_rsvg
from rsvg.construct.parsing import normalize
from rsvg.construct.stats import compute_stats
from rsvg.construct.vocabulary import (
    COLORS,
    DESCRIBABLE_GEOMETRIES,
    DESCRIBABLE_SIZES,
    LOCATION_PHRASES,
    RELATIVE_LOCATION_PHRASES,
    RELATIVE_SIZE_PHRASES,
    TWO_COLORS,
    surface_forms,
)
from rsvg.data.categories import DIOR_CLASSES, natural_name
from rsvg.data.dior_rsvg import read_grounding_annotations


@pytest.fixture(scope="module")
def synthetic_build(synthetic_dataset: Path) -> Path:
    return synthetic_dataset  # tests/construct/conftest.py: 300 synthetic scenes


def test_the_word_list_is_dior_rsvgs() -> None:
    assert len(DIOR_RSVG_WORDS) == 104 and DIOR_RSVG_EXPRESSIONS == 38320
    assert all(w == w.lower() and " " not in w and c > 0 for w, c in DIOR_RSVG_WORDS.items())
    assert DIOR_RSVG_WORDS["bigger"] == 560 and "larger" not in DIOR_RSVG_WORDS
    assert DIOR_RSVG_WORDS["oval"] == 798 and "round" not in DIOR_RSVG_WORDS and "an" not in DIOR_RSVG_WORDS
    assert outside_dior_rsvg(["The", "round", "tank", "An", "airplane"]) == ["round", "An"]


def test_every_word_the_tables_can_write_is_dior_rsvgs() -> None:
    phrases = [natural_name(c) for c in DIOR_CLASSES]
    phrases += [*COLORS, *(" and ".join(pair) for pair in TWO_COLORS)]
    phrases += [f for word in [*DESCRIBABLE_SIZES, *DESCRIBABLE_GEOMETRIES] for f in surface_forms(word)]
    phrases += [*LOCATION_PHRASES.values(), *RELATIVE_LOCATION_PHRASES.values(), *RELATIVE_SIZE_PHRASES.values()]
    phrases += ["the a is"]  # the templates' own words: "The/A ... is ... the ..."
    assert outside_dior_rsvg(w for p in phrases for w in p.split()) == []


def test_a_build_on_synthetic_scenes_writes_only_dior_rsvg_words(synthetic_build: Path) -> None:
    texts = [s.description for s in read_grounding_annotations(synthetic_build).samples]
    assert len(texts) > 1200
    words = Counter(w for t in texts for w in normalize(t).split())
    assert {w: c for w, c in words.items() if w not in DIOR_RSVG_WORDS} == {}
    assert words["bigger"] > 0 and words["little"] > 0 and words["long"] > 0
    # DIOR-RSVG's two-colour phrases, where the colour step found both colours
    assert sum("white and gray" in t for t in texts) > 0 and sum("gray and black" in t for t in texts) > 0
    assert all(t.count(" and ") <= 2 for t in texts)


def test_stats_report_no_word_outside_dior_rsvg_on_a_build(synthetic_build: Path) -> None:
    stats, _ = compute_stats(synthetic_build)
    outside = stats["outside_dior_rsvg_vocabulary"]
    assert outside["tokens"] > 0 and outside["distinct"] == stats["vocabulary"]
    assert outside["tokens_outside"] == outside["distinct_outside"] == 0
    assert outside["tokens_percent"] == outside["distinct_percent"] == 0.0 and outside["top_outside"] == {}
