"""Write an expression spec as text with the paper's two templates.

* phrase: ``The/A <a3> <a4> <a2> a1 <in/on the a5>`` — adjectives in the usual English order (size, shape,
  colour; the template allows any order, this one reads best), the location after the noun;
* sentence: ``The/A (att0) (obj0) is a6/a7 the (att1) (obj1)``.

Every word written is one of DIOR-RSVG's (:mod:`rsvg.construct.dior_rsvg_words`). DIOR-RSVG never writes "an",
so a phrase that starts with a vowel always takes "The" ("The airplane", not "An airplane"; nor "A airplane").
Some canonical words have several surface forms (``small`` / ``little``, see
:data:`rsvg.construct.vocabulary.SURFACE_FORMS`): each is written in proportion to its count in DIOR-RSVG.
"""

from __future__ import annotations

import numpy as np

from rsvg.construct.dior_rsvg_words import DIOR_RSVG_WORDS
from rsvg.construct.matching import ExpressionSpec, PhraseSpec
from rsvg.construct.vocabulary import (
    LOCATION_PHRASES,
    RELATIVE_LOCATION_PHRASES,
    RELATIVE_SIZE_PHRASES,
    surface_forms,
)
from rsvg.data.categories import natural_name

DEFINITE_ARTICLE_P = 0.7


def _word(word: str, rng: np.random.Generator) -> str:
    """One surface form of a canonical word, drawn with DIOR-RSVG's counts as weights (one draw, only when there
    is a choice)."""
    forms = surface_forms(word)
    if len(forms) == 1:
        return forms[0]
    weights = np.array([DIOR_RSVG_WORDS[f] for f in forms], float)
    pick = int(np.searchsorted(np.cumsum(weights) / weights.sum(), rng.random(), side="right"))
    return forms[min(pick, len(forms) - 1)]


def noun_phrase(phrase: PhraseSpec, rng: np.random.Generator) -> str:
    """The phrase without its article: "small red vehicle on the left"."""
    words = [_word(w, rng) for a, w in phrase.attributes if a != "location"]
    words.append(natural_name(phrase.category))
    where = phrase.get("location")
    if where is not None:
        words.append(LOCATION_PHRASES[where])
    return " ".join(words)


def article(next_word: str, rng: np.random.Generator) -> str:
    """ "The" (70 %) or "A"; always "The" before a vowel, since DIOR-RSVG never writes "an" (one draw either way,
    so the words that follow do not depend on the first letter)."""
    definite = rng.random() < DEFINITE_ARTICLE_P
    return "The" if definite or next_word[:1].lower() in "aeiou" else "A"


def relation_phrase(kind: str, word: str) -> str:
    """ "on the left of", "smaller than", ..."""
    table = RELATIVE_LOCATION_PHRASES if kind == "relative_location" else RELATIVE_SIZE_PHRASES
    return table[word]


def render(spec: ExpressionSpec, rng: np.random.Generator) -> str:
    """The expression text of a spec."""
    target = noun_phrase(spec.target, rng)
    text = f"{article(target, rng)} {target}"
    if spec.relation is not None and spec.anchor is not None:
        text += f" is {relation_phrase(*spec.relation)} the {noun_phrase(spec.anchor, rng)}"
    return text
