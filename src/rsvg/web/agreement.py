"""Inter-annotator agreement over a review: where two or more annotators judged the same expression.

Each annotator's verdict on an expression is the fold of their own decisions in force on it (undone ones and
skips do not count; :func:`~rsvg.web.review_db.fold_decisions`): accepted, rejected or edited, with the box of
their latest edit. Every pair of annotators of an expression is compared: the share of pairs with the same
verdict, and over the pairs where both edited, the mean IoU of their two boxes (how well corrections agree).
Per annotator, the share of their pairs in which the other annotator gave the same verdict: an annotator far
below the others is the first to ask about the guidelines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

from rsvg.boxes import paired_iou
from rsvg.web.review_db import Decision, ItemState, annotator_verdicts


@dataclass
class PairStats:
    """Agreement of one pair of annotators."""

    annotators: tuple[str, str]
    expressions: int = 0
    same: int = 0
    edit_ious: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "annotators": list(self.annotators),
            "expressions": self.expressions,
            "same_verdict": self.same / self.expressions if self.expressions else 0.0,
            "both_edited": len(self.edit_ious),
            "mean_edit_iou": sum(self.edit_ious) / len(self.edit_ious) if self.edit_ious else None,
        }


@dataclass
class AnnotatorStats:
    """How often one annotator's verdicts match the other annotators' on the expressions they share."""

    annotator: str
    expressions: int = 0  # shared expressions this annotator judged
    pairs: int = 0
    same: int = 0

    def to_dict(self) -> dict:
        return {
            "annotator": self.annotator,
            "expressions": self.expressions,
            "pairs": self.pairs,
            "same_verdict": self.same / self.pairs if self.pairs else 0.0,
        }


@dataclass
class AgreementReport:
    """Agreement over the whole review (see the module docstring)."""

    expressions: int = 0
    pairs: int = 0
    same: int = 0
    edit_ious: list[float] = field(default_factory=list)
    by_pair: dict[tuple[str, str], PairStats] = field(default_factory=dict)
    by_annotator: dict[str, AnnotatorStats] = field(default_factory=dict)

    @property
    def same_verdict(self) -> float | None:
        return self.same / self.pairs if self.pairs else None

    @property
    def mean_edit_iou(self) -> float | None:
        return sum(self.edit_ious) / len(self.edit_ious) if self.edit_ious else None

    def to_dict(self) -> dict:
        return {
            "expressions": self.expressions,
            "pairs": self.pairs,
            "same_verdict": self.same_verdict,
            "edited_pairs": len(self.edit_ious),
            "mean_edit_iou": self.mean_edit_iou,
            "by_pair": [p.to_dict() for _, p in sorted(self.by_pair.items())],
            "by_annotator": [a.to_dict() for _, a in sorted(self.by_annotator.items())],
        }


def verdicts(decisions: Iterable[Decision]) -> dict[int, dict[str, ItemState]]:
    """Per expression, each annotator's own verdict (annotators whose decisions there all were undone or
    skips are left out)."""
    by_item: dict[int, list[Decision]] = defaultdict(list)
    for d in sorted(decisions, key=lambda d: d.id):
        by_item[d.index].append(d)
    out = {index: annotator_verdicts(own) for index, own in by_item.items()}
    return {i: v for i, v in out.items() if v}


def agreement(decisions: Iterable[Decision]) -> AgreementReport:
    """The agreement of a review's decisions (any order; they are taken by id)."""
    return agreement_of(verdicts(decisions))


def agreement_of(per_item: dict[int, dict[str, ItemState]]) -> AgreementReport:
    """The agreement of the verdicts :func:`verdicts` gives, for a caller that needs them too."""
    report = AgreementReport()
    for per_annotator in per_item.values():
        if len(per_annotator) < 2:
            continue
        report.expressions += 1
        for name in per_annotator:
            report.by_annotator.setdefault(name, AnnotatorStats(name)).expressions += 1
        for a, b in combinations(sorted(per_annotator), 2):
            sa, sb = per_annotator[a], per_annotator[b]
            pair = report.by_pair.setdefault((a, b), PairStats((a, b)))
            pair.expressions += 1
            report.pairs += 1
            same = sa.status == sb.status
            for name in (a, b):
                report.by_annotator[name].pairs += 1
                report.by_annotator[name].same += same
            if same:
                pair.same += 1
                report.same += 1
            if sa.status == sb.status == "edited" and sa.box is not None and sb.box is not None:
                iou = float(paired_iou([sa.box], [sb.box])[0])
                pair.edit_ious.append(iou)
                report.edit_ious.append(iou)
    return report
