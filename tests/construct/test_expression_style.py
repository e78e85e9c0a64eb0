"""Built expressions read like DIOR-RSVG's: length, share of relation sentences, the nine location phrases and
their shares (on synthetic scenes, whose objects are placed uniformly enough), and flips keep every template."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rsvg.construct.matching import ExpressionSpec, PhraseSpec
from rsvg.construct.render import render
from rsvg.construct.stats import DIOR_RSVG_TEXT, compute_stats
from rsvg.construct.vocabulary import LOCATION_PHRASES, RELATIVE_LOCATION_PHRASES, RELATIVE_SIZE_PHRASES
from rsvg.data.dior_rsvg import read_grounding_annotations
from rsvg.data.spatial_words import remap_query

# wordings DIOR-RSVG never uses for an image location
NEVER_IN_DIOR_RSVG = ("on the top left", "on the top right", "on the bottom left", "on the bottom right", "at the top")


@pytest.fixture(scope="module")
def synthetic_build(synthetic_dataset: Path) -> tuple[Path, dict]:
    stats, _ = compute_stats(synthetic_dataset)
    return synthetic_dataset, stats


def test_length_and_sentences_are_those_of_dior_rsvg(synthetic_build: tuple[Path, dict]) -> None:
    _, stats = synthetic_build
    assert stats["expressions"] > 1200
    assert 7.0 <= stats["length"]["mean"] <= 7.9  # DIOR-RSVG: 7.45
    assert 20.0 <= stats["content_percent"]["rel"] <= 30.0  # DIOR-RSVG: 25.5 % relation sentences
    assert stats["content_percent"]["rel+"] <= stats["content_percent"]["rel"]


def test_location_phrases_and_their_shares(synthetic_build: tuple[Path, dict]) -> None:
    root, stats = synthetic_build
    texts = [s.description.lower() for s in read_grounding_annotations(root).samples]
    for wording in NEVER_IN_DIOR_RSVG:
        assert not any(re.search(rf"\b{wording}\b", t) for t in texts), wording
    ours = stats["location_phrases_percent"]
    for word, share in DIOR_RSVG_TEXT["location_phrases_percent"].items():
        assert abs(ours[word] - share) <= 4.0, (word, ours[word], share)


def test_the_anchor_of_a_sentence_carries_its_own_attributes(synthetic_build: tuple[Path, dict]) -> None:
    root, _ = synthetic_build
    sentences = [s.description for s in read_grounding_annotations(root).samples if " is " in s.description]
    # "The bridge is on the lower right of the tiny stadium on the upper right": most anchors say more than a noun
    described = [t for t in sentences if not re.search(r"(of|than|above|below) the [a-z-]+$", t)]
    assert len(described) > 0.5 * len(sentences)


def _every_template() -> list[str]:
    """A phrase for each location and a sentence for each relation, with attributes on both objects."""
    rng = np.random.default_rng(0)
    texts = []
    for where in LOCATION_PHRASES:
        texts.append(render(ExpressionSpec(PhraseSpec("ship", (("size", "small"), ("location", where)))), rng))
    anchor = PhraseSpec("stadium", (("size", "tiny"), ("location", "top right")))
    for word in [*RELATIVE_LOCATION_PHRASES, *RELATIVE_SIZE_PHRASES]:
        kind = "relative_size" if word in RELATIVE_SIZE_PHRASES else "relative_location"
        target = PhraseSpec("bridge", (("color", "gray"),))
        texts.append(render(ExpressionSpec(target, (kind, word), anchor), rng))
    return texts


@pytest.mark.parametrize("op", ["hflip", "vflip", "rot180"])
def test_a_flip_applied_twice_gives_every_template_back(op: str) -> None:
    for text in _every_template():
        once = remap_query(text, op)
        assert remap_query(once, op) == text, (op, text, once)


def test_a_quarter_turn_and_its_inverse_give_every_template_back() -> None:
    for text in _every_template():
        assert remap_query(remap_query(text, "rot90"), "rot270") == text, text
        assert remap_query(remap_query(text, "rot270"), "rot90") == text, text


def test_flips_change_the_spatial_words_of_every_location() -> None:
    for text in _every_template():
        if "middle" in text or "than" in text:
            continue
        assert remap_query(text, "rot180") != text, text
