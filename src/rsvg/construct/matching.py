"""What an expression says (its *spec*) and which objects of a scene it fits (the matcher).

A :class:`PhraseSpec` is a category with own-attribute words (the phrase template); an
:class:`ExpressionSpec` is a phrase, optionally related (a6 / a7) to an anchor phrase (the sentence
template). :func:`matches` is the reference semantics, written for clarity rather than speed: an object fits a
phrase when its category is the phrase's and every word is plausible for it; it fits a sentence when it fits
the target phrase and *some other* object fits the anchor phrase with the relation plausible between the two
(every candidate pair is tried). An expression is unambiguous when exactly one object of its image fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rsvg.construct.attributes import ObjectAttributes, SceneAttributes
from rsvg.construct.vocabulary import OWN_ATTRIBUTES


@dataclass(frozen=True)
class PhraseSpec:
    """A category and own-attribute words, e.g. ``PhraseSpec("vehicle", (("color", "red"),))``."""

    category: str
    attributes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        order = {a: i for i, a in enumerate(OWN_ATTRIBUTES)}
        for attr, _ in self.attributes:
            if attr not in order:
                raise ValueError(f"unknown own attribute {attr!r}; expected one of {OWN_ATTRIBUTES}")
        object.__setattr__(self, "attributes", tuple(sorted(self.attributes, key=lambda kv: order[kv[0]])))

    def get(self, attribute: str) -> str | None:
        """The word given for ``attribute``, if any."""
        return dict(self.attributes).get(attribute)

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "attributes": dict(self.attributes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhraseSpec:
        return cls(data["category"], tuple(data.get("attributes", {}).items()))


@dataclass(frozen=True)
class ExpressionSpec:
    """A phrase (``relation is None``) or a sentence relating the target phrase to an anchor phrase."""

    target: PhraseSpec
    relation: tuple[str, str] | None = None  # (kind, word): ("relative_location", "left"), ("relative_size", ...)
    anchor: PhraseSpec | None = None

    def __post_init__(self) -> None:
        if (self.relation is None) != (self.anchor is None):
            raise ValueError("a relation needs an anchor and an anchor needs a relation")

    @property
    def template(self) -> str:
        """ "phrase" or "sentence"."""
        return "phrase" if self.relation is None else "sentence"

    @property
    def num_attributes(self) -> int:
        """Attribute values it holds: the category and own attributes of the target, and for a sentence the
        relation and the anchor's category and own attributes."""
        n = 1 + len(self.target.attributes)
        if self.anchor is not None:
            n += 2 + len(self.anchor.attributes)
        return n

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target": self.target.to_dict()}
        if self.relation is not None and self.anchor is not None:
            out["relation"] = {"kind": self.relation[0], "word": self.relation[1]}
            out["anchor"] = self.anchor.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpressionSpec:
        rel = data.get("relation")
        return cls(
            PhraseSpec.from_dict(data["target"]),
            (rel["kind"], rel["word"]) if rel else None,
            PhraseSpec.from_dict(data["anchor"]) if data.get("anchor") else None,
        )


def phrase_matches(phrase: PhraseSpec, obj: ObjectAttributes) -> bool:
    """Whether ``obj`` fits the phrase: same category and every word plausible for it."""
    return obj.category == phrase.category and all(obj.may_be(a, w) for a, w in phrase.attributes)


def matches(spec: ExpressionSpec | PhraseSpec, obj: ObjectAttributes, scene: SceneAttributes) -> bool:
    """Whether ``obj`` (an object of ``scene``) fits the expression spec."""
    if isinstance(spec, PhraseSpec):
        return phrase_matches(spec, obj)
    if not phrase_matches(spec.target, obj):
        return False
    if spec.relation is None or spec.anchor is None:
        return True
    kind, word = spec.relation
    return any(
        other.index != obj.index
        and phrase_matches(spec.anchor, other)
        and scene.may_relate(obj.index, other.index, kind, word)
        for other in scene.objects
    )


def matching_objects(spec: ExpressionSpec | PhraseSpec, scene: SceneAttributes) -> list[int]:
    """Scene indices of every object the spec fits."""
    return [o.index for o in scene.objects if matches(spec, o, scene)]


def is_unambiguous(spec: ExpressionSpec | PhraseSpec, scene: SceneAttributes, target: int) -> bool:
    """Whether ``target`` is the one and only object of the scene that fits the spec."""
    return matching_objects(spec, scene) == [target]
