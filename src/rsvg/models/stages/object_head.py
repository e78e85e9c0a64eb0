"""The object head (``model.stages.object_head``, not in the paper): categories per cell as a prior on the cell scores.

Per visual token of the fusion output, logits over the 20 DIOR categories of the objects centred in its cell,
trained on every object of the image the training split annotates (not only the referred one: dense supervision
of what the cells head must recognise, from the same annotation files), and logits of the referred object's
category read from the query's sentence feature. Their agreement, ``log Σ_c P(c | query)·P(cell holds a c)``,
scaled by a learned factor, is added to the cells head's scores before the best cell is chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from rsvg.boxes import stack_objects
from rsvg.data.categories import DIOR_CLASSES
from rsvg.models.loss import LossConfig, centre_cells
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stage_inputs import CoreFacts
from rsvg.models.stages.base import Stage, StageContext, StageOptions
from rsvg.models.stages.objects import ImageObjects, example_objects, normalised_objects


@dataclass
class ObjectRecord:
    object_logits: Tensor  # (B, h*w, 20) per visual token
    query_category_logits: Tensor  # (B, 20) the referred object's category, from the query


def object_targets(objects: list[Tensor], height: int, width: int, classes: int) -> Tensor:
    """``(B, height*width, classes)``: 1 where a cell holds the centre of an object of that class.

    ``objects`` holds one ``(K, 5)`` tensor per sample: rows ``(class index, x1, y1, x2, y2)`` with the box
    normalised to the network input."""
    rows, sample = stack_objects(objects)
    target = torch.zeros(len(objects), height * width, classes, device=rows.device)
    target[sample, centre_cells(rows[:, 1:].float(), height, width), rows[:, 0].long()] = 1.0
    return target


def object_loss(logits: Tensor, objects: list[Tensor]) -> Tensor:
    """Sigmoid focal loss (α 0.25, γ 2, as in RetinaNet) of the per-cell category logits ``(B, h*w, C)``
    against :func:`object_targets`, summed and divided by the number of objects (at least 1)."""
    side = math.isqrt(logits.shape[1])
    target = object_targets(objects, side, side, logits.shape[2])
    positives = max(float(target.sum()), 1.0)
    return sigmoid_focal_loss(logits.float(), target, reduction="sum") / positives


class ObjectHead(Stage):
    name = "object_head"
    loss_terms = ("object", "category")
    legacy_weight = "object_weight"

    def __init__(self, options: StageOptions, core: CoreFacts) -> None:
        super().__init__(options, core)
        self.image_size = core.image_size
        self.object_head = nn.Linear(core.dim, len(DIOR_CLASSES))
        self.query_category = nn.Linear(core.text_dim, len(DIOR_CLASSES))
        self.prior_scale = nn.Parameter(torch.ones(()))

    def reset_parameters(self) -> None:
        # RetinaNet's prior (Lin et al. 2017, Sec. 4.1): every cell starts at P(holds a c) = 0.01, so the focal
        # loss over the h*w*20 mostly empty cells starts near its final size, not ~180 (at 0.5), which for the
        # first hundred steps took most of the clipped gradient away from the grounding heads
        nn.init.constant_(self.object_head.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, out: GroundingOutput, ctx: StageContext) -> None:
        object_logits = self.object_head(ctx.tokens)
        query_logits = self.query_category(ctx.normalised_sentence)
        out.stages[self.name] = ObjectRecord(object_logits, query_logits)
        if out.cell_scores is not None:
            agreement = query_logits.float().log_softmax(-1).unsqueeze(1) + F.logsigmoid(object_logits.float())
            out.choose_cell(out.cell_scores + self.prior_scale * agreement.logsumexp(-1), ctx.grid, ctx.need_attention)

    def sample_extras(self, training: bool) -> tuple[Any, ...]:
        return (ImageObjects(),) if training else ()

    def example_extras(self, sample: dict[str, Any], index: int, generator: torch.Generator) -> None:
        example_objects(sample, index, self.image_size)

    def terms(
        self, out: GroundingOutput, target: Tensor, batch: Mapping[str, Any], cfg: LossConfig
    ) -> dict[str, Tensor]:
        """The focal loss of the cells' categories and the cross-entropy of the query's."""
        record: ObjectRecord = out.stages[self.name]
        if "category_index" not in batch:
            raise ValueError("the object head trains on the image's objects: the batch has no 'category_index'")
        obj = object_loss(record.object_logits, normalised_objects(batch, self.image_size))
        cat = F.cross_entropy(record.query_category_logits.float(), batch["category_index"])
        return {"object": obj, "category": cat}
