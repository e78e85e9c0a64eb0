"""What a grounding model's forward returns: :class:`GroundingOutput`, the answer's boxes and what led to it.

It lives below the model and its stages in the import graph: :mod:`rsvg.models.mgvlf` builds it, every stage
(:mod:`rsvg.models.stages`) reads and amends it, and the loss, inference and the benchmarks read it, so none of
them has to import the model to name its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["GroundingOutput"]


@dataclass
class GroundingOutput:
    """The answer: boxes normalised ``(x1, y1, x2, y2)`` in the network input, and what led to it."""

    boxes: Tensor  # (B, 4)
    # (B, h, w) with need_attention: the [REG] token's attention over the visual tokens, or the cells' softmax
    attention: Tensor | None = None
    # (B, h, w) with need_attention: the MLCM attention map (paper Fig. 6), see
    # :func:`rsvg.models.mgvlf.mlcm_attention_map`
    mlcm_attention: Tensor | None = None
    # (B, N) logits of the candidates the answer was chosen from: MGVLF's cells head (padding cells hold -inf),
    # a one-stage family's anchor-cells
    cell_scores: Tensor | None = None
    cell_boxes: Tensor | None = None  # (B, h*w, 4), head: cells only
    # each enabled stage's record, by stage name, in the order they ran (rsvg.models.stages)
    stages: dict[str, Any] = field(default_factory=dict)
    # what the family's own loss reads besides, by name (e.g. a one-stage head's raw box regressions)
    extra: dict[str, Any] = field(default_factory=dict)

    def choose_cell(self, scores: Tensor, grid: tuple[int, int], need_attention: bool) -> None:
        """Set the cell scores and answer with the best cell's box (head: cells)."""
        assert self.cell_boxes is not None
        self.cell_scores = scores
        best = scores.argmax(1)
        self.boxes = self.cell_boxes[torch.arange(len(best), device=best.device), best]
        if need_attention:
            self.attention = scores.softmax(1).reshape(-1, *grid)

    def score(self) -> Tensor | None:
        """``(B,)`` the model's own confidence in its answer, the peak of the map the head shows: the chosen
        cell's softmax probability over the cells (cells head), or the peak of the [REG] token's attention over
        the visual tokens ([REG] head; ``None`` unless the forward ran with ``need_attention``). Comparable
        between inputs of the same model (the same number of cells), e.g. the tiles of one scene."""
        if self.cell_scores is not None:
            return self.cell_scores.float().softmax(1).amax(1)
        if self.attention is not None:
            return self.attention.float().flatten(1).amax(1)
        return None
