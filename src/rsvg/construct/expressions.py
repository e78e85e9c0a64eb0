"""Step 3 of the paper: one unambiguous expression per sampled object, written as DIOR-RSVG writes them.

The algorithm, for a target object of a scene:

1. ``cat+`` — its category is unique in the image: a phrase with the category and the definite own attributes
   the construction found (size, shape, colour, location), each written with probability ``ATTRIBUTE_KEEP_P``;
2. ``att+`` — otherwise the smallest sets of its definite own attributes that no other object of the image
   plausibly has; one is chosen at random, and each of its other definite attributes is added with probability
   ``ATTRIBUTE_KEEP_P``;
3. ``rel+`` — otherwise a sentence: a definite relation (a6 or a7) to an *anchor* object of any category
   that a phrase singles out by itself, with as few target attributes as possible (0 to 2). Anchors are tried
   nearest first (the ``MAX_ANCHORS`` (12) nearest describable ones); one valid option is chosen at random;
4. otherwise the object is discarded.

As in DIOR-RSVG, the anchor of a sentence is described with its own attributes and location ("The bridge is on
the lower right of the tiny stadium on the upper right"), and a target that a phrase already singles out is
described by a sentence to a near anchor with probability ``OPTIONAL_RELATION_P`` (its step stays ``cat+`` /
``att+`` when its phrase in the sentence is unique by itself, else ``rel+``). An expression is at least
``MIN_WORDS`` words when the scene allows: a shorter phrase ("The ship") becomes a sentence where it can.
Adding a definite attribute of an object to a phrase that singles it out keeps it singled out, so none of this can
make an expression ambiguous.

Every candidate is checked against the whole scene (all objects, including those sampled out) and the chosen
one is verified once more with the reference matcher :func:`rsvg.construct.matching.matches`: exactly one
object of the image fits the expression. The search uses the same semantics on boolean vectors for speed.
Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsvg.construct.attributes import SceneAttributes
from rsvg.construct.matching import ExpressionSpec, PhraseSpec, is_unambiguous
from rsvg.construct.render import render

ATTRIBUTE_KEEP_P = 0.55
OPTIONAL_RELATION_P = 0.06
OPTIONAL_RELATION_ANCHORS = 3  # the nearest describable objects an optional relation may name
MIN_WORDS = 3
MAX_RELATION_TARGET_ATTRIBUTES = 2
MAX_ANCHORS = 12


@dataclass(frozen=True)
class Expression:
    """A generated expression, its spec and how it singles out its target."""

    text: str
    spec: ExpressionSpec
    step: str  # "cat+", "att+" or "rel+"
    target: int  # scene index
    anchor: int | None = None  # scene index of the anchor of a sentence

    def provenance(self, scene: SceneAttributes | None = None) -> dict[str, Any]:
        """What to store with the expression: template, step, the attributes used, the anchor's box."""
        out: dict[str, Any] = {"template": self.spec.template, "step": self.step, **self.spec.to_dict()}
        if scene is not None and self.anchor is not None:
            out["anchor_box"] = [round(v, 2) for v in scene.objects[self.anchor].box]
        return out


class _Vectors:
    """Boolean match vectors over the scene's objects (the matcher's semantics, vectorised)."""

    def __init__(self, scene: SceneAttributes) -> None:
        self.scene = scene
        self._cache: dict[Any, np.ndarray] = {}
        self._unique: dict[int, list[PhraseSpec]] = {}

    def _word(self, attribute: str, word: str) -> np.ndarray:
        key = (attribute, word)
        if key not in self._cache:
            self._cache[key] = np.array([o.may_be(attribute, word) for o in self.scene.objects], bool)
        return self._cache[key]

    def phrase(self, phrase: PhraseSpec) -> np.ndarray:
        key = ("category", phrase.category)
        if key not in self._cache:
            self._cache[key] = np.array([o.category == phrase.category for o in self.scene.objects], bool)
        vec = self._cache[key].copy()
        for attribute, word in phrase.attributes:
            vec &= self._word(attribute, word)
        return vec

    def sentence(self, target_vec: np.ndarray, relation: tuple[str, str], anchor_vec: np.ndarray) -> np.ndarray:
        plausible = self.scene.relations[1][relation]
        return target_vec & plausible[:, anchor_vec].any(axis=1)

    def unique_phrases(self, index: int) -> list[PhraseSpec]:
        """The smallest phrases that fit object ``index`` and no other (empty if none)."""
        if index not in self._unique:
            obj = self.scene.objects[index]
            own = list(obj.definite.items())
            found: list[PhraseSpec] = []
            for size in range(len(own) + 1):
                for combo in itertools.combinations(own, size):
                    phrase = PhraseSpec(obj.category, combo)
                    vec = self.phrase(phrase)
                    if vec[index] and vec.sum() == 1:
                        found.append(phrase)
                if found:
                    break
            self._unique[index] = found
        return self._unique[index]


def _pick(rng: np.random.Generator, items: list) -> Any:
    return items[int(rng.integers(len(items)))]


class ExpressionGenerator:
    """Generates expressions for the objects of one scene (caches shared between targets)."""

    def __init__(self, scene: SceneAttributes) -> None:
        self.scene = scene
        self.vectors = _Vectors(scene)

    def _enrich(self, phrase: PhraseSpec, index: int, rng: np.random.Generator, *, location: bool = True) -> PhraseSpec:
        """``phrase`` with each other definite own attribute of object ``index`` added with probability
        ``ATTRIBUTE_KEEP_P`` (the location only with ``location``): the paper's template names the attributes
        the construction found. Still fits the object, and fits no object the phrase did not."""
        obj = self.scene.objects[index]
        extra = tuple(
            kv
            for kv in obj.definite.items()
            if kv not in phrase.attributes and (location or kv[0] != "location") and rng.random() < ATTRIBUTE_KEEP_P
        )
        return PhraseSpec(phrase.category, (*phrase.attributes, *extra)) if extra else phrase

    def _category_step(self, target: int, rng: np.random.Generator) -> ExpressionSpec:
        return ExpressionSpec(self._enrich(PhraseSpec(self.scene.objects[target].category), target, rng))

    def _attribute_step(self, target: int, rng: np.random.Generator) -> ExpressionSpec | None:
        options = self.vectors.unique_phrases(target)
        if not options:
            return None
        return ExpressionSpec(self._enrich(_pick(rng, options), target, rng))

    def _optional_relation(
        self, spec: ExpressionSpec, target: int, step: str, rng: np.random.Generator
    ) -> tuple[ExpressionSpec, int, str] | None:
        """The phrase ``spec`` (which singles the target out) as a sentence to one of the nearest anchors: the
        target's phrase without its location, a definite relation, the anchor's phrase with its own attributes.
        ``None`` when no such sentence singles the target out."""
        phrase = PhraseSpec(spec.target.category, tuple(kv for kv in spec.target.attributes if kv[0] != "location"))
        target_vec = self.vectors.phrase(phrase)
        options = []
        for anchor in self._anchors(target)[:OPTIONAL_RELATION_ANCHORS]:
            for relation in self.scene.definite_relations(target, anchor):
                for anchor_phrase in self.vectors.unique_phrases(anchor):
                    vec = self.vectors.sentence(target_vec, relation, self.vectors.phrase(anchor_phrase))
                    if vec[target] and vec.sum() == 1:
                        options.append((relation, anchor, anchor_phrase))
        if not options:
            return None
        relation, anchor, anchor_phrase = _pick(rng, options)
        sentence = ExpressionSpec(phrase, relation, self._enrich(anchor_phrase, anchor, rng))
        unique_alone = target_vec.sum() == 1
        return sentence, anchor, step if unique_alone else "rel+"

    def _anchors(self, target: int) -> list[int]:
        objects = self.scene.objects
        tx = (objects[target].box[0] + objects[target].box[2]) / 2
        ty = (objects[target].box[1] + objects[target].box[3]) / 2

        def distance(j: int) -> float:
            b = objects[j].box
            return float(np.hypot((b[0] + b[2]) / 2 - tx, (b[1] + b[3]) / 2 - ty))

        order = sorted((j for j in range(len(objects)) if j != target), key=lambda j: (distance(j), j))
        return [j for j in order if self.vectors.unique_phrases(j)][:MAX_ANCHORS]

    def _relation_step(self, target: int, rng: np.random.Generator) -> tuple[ExpressionSpec, int] | None:
        obj = self.scene.objects[target]
        own = list(obj.definite.items())
        anchors = self._anchors(target)
        for size in range(min(MAX_RELATION_TARGET_ATTRIBUTES, len(own)) + 1):
            options: list[tuple[ExpressionSpec, int]] = []
            for combo in itertools.combinations(own, size):
                phrase = PhraseSpec(obj.category, combo)
                target_vec = self.vectors.phrase(phrase)
                for anchor in anchors:
                    for relation in self.scene.definite_relations(target, anchor):
                        for anchor_phrase in self.vectors.unique_phrases(anchor):
                            vec = self.vectors.sentence(target_vec, relation, self.vectors.phrase(anchor_phrase))
                            if vec[target] and vec.sum() == 1:
                                options.append((ExpressionSpec(phrase, relation, anchor_phrase), anchor))
            if options:
                spec, anchor = _pick(rng, options)
                enriched = ExpressionSpec(
                    self._enrich(spec.target, target, rng, location=False),
                    spec.relation,
                    self._enrich(spec.anchor, anchor, rng),  # type: ignore[arg-type]
                )
                return enriched, anchor
        return None

    def generate(self, target: int, rng: np.random.Generator) -> Expression | None:
        """An unambiguous expression for scene object ``target``, or ``None`` (the object is discarded)."""
        category_vec = self.vectors.phrase(PhraseSpec(self.scene.objects[target].category))
        anchor: int | None = None
        spec: ExpressionSpec | None
        if category_vec.sum() == 1:
            spec, step = self._category_step(target, rng), "cat+"
        else:
            spec, step = self._attribute_step(target, rng), "att+"
            if spec is None:
                found = self._relation_step(target, rng)
                spec, anchor, step = (found[0], found[1], "rel+") if found else (None, None, "")
        if spec is None:
            return None
        if spec.relation is None and (
            rng.random() < OPTIONAL_RELATION_P or len(render(spec, np.random.default_rng(0)).split()) < MIN_WORDS
        ):
            found_optional = self._optional_relation(spec, target, step, rng)
            if found_optional is not None:
                spec, anchor, step = found_optional
        if not is_unambiguous(spec, self.scene, target):
            return None
        return Expression(text=render(spec, rng), spec=spec, step=step, target=target, anchor=anchor)


def generate_expression(scene: SceneAttributes, target: int, rng: np.random.Generator) -> Expression | None:
    """One expression for ``scene.objects[target]`` (see the module docstring); ``None`` if impossible."""
    return ExpressionGenerator(scene).generate(target, rng)
