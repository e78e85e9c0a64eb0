"""What grounding one query on one image gives a user: :class:`GroundingResult`, a box in image pixels.

:class:`rsvg.inference.Grounder` makes them and the scene grounder (:mod:`rsvg.geo.scene`), the pictures
(:mod:`rsvg.viz`) and the API read them. The type lives here, apart from the grounder, so that those readers
need not import the grounder to name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["GroundingResult"]


@dataclass
class GroundingResult:
    """A predicted box in original image pixels ``(x1, y1, x2, y2)``, clipped to the image
    (:func:`rsvg.inference.clip_box`), the image size, and optionally two maps resized to the image (``H × W``
    floats in 0..1): ``attention``, where the head looks (the cells head's scores or the [REG] token's attention),
    and ``mlcm_attention``, the MLCM attention map of the paper's Fig. 6 (``None`` for variants whose MLCM memory
    has no visual part, or no MLCM). ``score`` is the model's own confidence in the answer
    (:meth:`rsvg.models.outputs.GroundingOutput.score`: the chosen cell's softmax probability, or the peak of the
    [REG] attention), ``None`` for a [REG] model asked without its attention."""

    box: tuple[float, float, float, float]
    width: int
    height: int
    attention: np.ndarray | None = None
    mlcm_attention: np.ndarray | None = None
    # how the answer came about, for models with steps after the first look (lite config): the first look's box
    # (the best cell's, what the cell heatmap shows) and, per step the model has, whether it changed the answer
    first_look_box: tuple[float, float, float, float] | None = None
    steps: dict[str, bool] = field(default_factory=dict)
    score: float | None = None
    # each step's title, by its key in ``steps``, in the order the steps ran
    step_titles: dict[str, str] = field(default_factory=dict)

    @property
    def moved_by(self) -> list[str]:
        """The steps that changed the answer after the first look, in the order they ran."""
        order = [*self.step_titles, *(k for k in self.steps if k not in self.step_titles)]
        return [self.step_titles.get(k, k) for k in order if self.steps.get(k)]

    def provenance(self) -> str:
        """One sentence on where the box comes from (empty for a model whose first look is its answer)."""
        if not self.steps:
            return ""
        if not self.moved_by:
            return "The box is the first look's best cell (the heatmap's peak region)."
        first = ", ".join(f"{v:.0f}" for v in self.first_look_box or ())
        return (
            f"The box was moved by the {' and the '.join(self.moved_by)} from the first look's box ({first}); "
            "the cell heatmap shows the first look."
        )

    def to_dict(self) -> dict:
        out: dict = {"box": [round(v, 2) for v in self.box], "width": self.width, "height": self.height}
        if self.score is not None:
            out["score"] = round(self.score, 4)
        if self.steps:
            out["steps"] = dict(self.steps)
            out["first_look_box"] = [round(v, 2) for v in self.first_look_box] if self.first_look_box else None
            out["provenance"] = self.provenance()
        return out
