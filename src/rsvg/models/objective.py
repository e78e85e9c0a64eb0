"""The loss of a whole model's output, for the trainer and the benchmark alike: :func:`model_loss`.

The head's terms (the paper's on the [REG] box; with ``model.head: cells`` the same on the box of the cell
holding the target's centre, plus a cross-entropy over the cells) and then whatever terms each enabled stage
returns (:meth:`rsvg.models.stages.base.Stage.loss`), each by its name. The terms themselves are in
:mod:`rsvg.models.loss`, which the stages import; this module reads the model, so it sits above both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from rsvg.models.loss import LossConfig, attention_loss, cell_losses, grounding_loss
from rsvg.models.mgvlf import MGVLF
from rsvg.models.outputs import GroundingOutput

__all__ = ["loss_terms", "model_loss", "needs_attention", "normalised_target"]


def needs_attention(model: MGVLF, cfg: LossConfig) -> bool:
    """Whether the loss reads the model's attention map (the forward must then return it)."""
    return model.cfg.head == "reg" and cfg.reg_attention_weight > 0


def loss_terms(model: MGVLF, cfg: LossConfig | None = None) -> tuple[str, ...]:
    """The names :func:`model_loss` returns for ``model`` (a stage's terms may be absent from a batch)."""
    head = ("loss", "l1", "giou", "cell") if model.cfg.head == "cells" else ("loss", "l1", "giou")
    if needs_attention(model, cfg or LossConfig()):
        head += ("attention",)
    return head + tuple(t for stage in model.stage_list() for t in stage.loss_terms)


def normalised_target(batch: Mapping[str, Any], image_size: int) -> Tensor:
    """Ground-truth boxes in the network frame, normalised to 0..1 (what the head predicts)."""
    return batch["box"].float() / image_size


def model_loss(
    model: MGVLF, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig | None = None
) -> dict[str, Tensor]:
    """The loss of ``model``'s output on ``batch`` (its ``box`` in network pixels is the target): the head's terms,
    then each stage's, summed into ``"loss"``."""
    cfg = cfg or LossConfig()
    target = normalised_target(batch, model.cfg.image_size)
    if out.cell_scores is not None and out.cell_boxes is not None:
        side = math.isqrt(model.num_visual)
        losses = cell_losses(out.cell_scores, out.cell_boxes, target, side, side, cfg)
    else:
        losses = grounding_loss(out.boxes, target, cfg)
    if needs_attention(model, cfg):
        if out.attention is None:
            raise ValueError(
                "loss.reg_attention_weight needs the [REG] attention map: run the model with need_attention"
            )
        attention = attention_loss(out.attention, target)
        losses["loss"] = losses["loss"] + cfg.reg_attention_weight * attention
        losses["attention"] = attention.detach()
    for stage in model.stage_list():
        weighted, terms = stage.loss(out, target, batch, cfg)
        if weighted is not None:
            losses["loss"] = losses["loss"] + weighted
        losses.update(terms)
    return losses
