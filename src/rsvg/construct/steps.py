"""The cat+ / att+ / rel+ steps and how a dataset's shares of them were obtained (:func:`steps_label`).

The statistics (:mod:`rsvg.construct.stats`), their figures (:mod:`rsvg.construct.figures`) and ``rsvg stats``
all label the shares the same way; the statistics draw the figures, so what they share sits here, below both.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STEPS", "TEXT_INFERRED_NOTE", "steps_label"]

STEPS = ("cat+", "att+", "rel+")

#: why cat+ / att+ / rel+ of a dataset without provenance are not the paper's figures
TEXT_INFERRED_NOTE = (
    "cat+ / att+ / rel+ are estimated from the text (a relation word gives rel+, a category that is unique among "
    "the image's referred objects cat+, anything else att+): the paper counts the construction step that made "
    "each expression unique when it was built, which the text alone does not tell, so the two are not comparable."
)


def steps_label(stats: dict[str, Any]) -> str:
    """How cat+ / att+ / rel+ were obtained: ``""`` from provenance (comparable with the paper),
    ``"estimated from the text"`` or ``"partly estimated from the text"``."""
    with_provenance, total = stats["with_provenance"], stats["expressions"]
    if total == 0 or with_provenance == total:
        return ""
    return "estimated from the text" if with_provenance == 0 else "partly estimated from the text"
