"""The training loss (paper eq. 15): smooth-L1 + λ·GIoU on normalised ``(x1, y1, x2, y2)`` boxes.

This module holds the terms and their weights (:class:`LossConfig`): the paper's box terms, the cells head's
(the same on the box of the cell holding the target's centre, plus a cross-entropy over the cells) and the
[REG] attention term. The model families (their ``loss``) and the stages (:mod:`rsvg.models.stages`) build
their own terms from these, so it imports nothing of a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss


@dataclass
class LossConfig:
    """Weights of the terms; λ = 1 in the paper. ``smooth_l1_beta`` is torch's β (1.0 = paper's default; 0 =
    plain L1). The other weights belong to options that are not in the paper; the stages weigh their own terms
    (``model.stages.<name>.weights``)."""

    l1_weight: float = 1.0
    giou_weight: float = 1.0
    smooth_l1_beta: float = 1.0
    cell_weight: float = 1.0  # model.head: cells only: weight of the cell-score cross-entropy
    # head: reg only: weight of a cross-entropy pulling the [REG] token's attention over the visual tokens (last
    # fusion layer) onto the cells the target covers (:func:`attention_loss`)
    reg_attention_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "l1_weight",
            "giou_weight",
            "smooth_l1_beta",
            "cell_weight",
            "reg_attention_weight",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


def grounding_loss(pred: Tensor, target: Tensor, cfg: LossConfig | None = None) -> dict[str, Tensor]:
    """Per-batch loss terms. Both boxes are ``(B, 4)`` normalised to the network input (0..1).

    The smooth-L1 term is summed over the four coordinates and averaged over the batch; GIoU is averaged over
    the batch. Returns ``{"loss", "l1", "giou"}``.
    """
    cfg = cfg or LossConfig()
    pred, target = pred.float(), target.float()
    l1 = F.smooth_l1_loss(pred, target, beta=cfg.smooth_l1_beta, reduction="none").sum(-1).mean()
    giou = generalized_box_iou_loss(pred, target, reduction="mean")
    return {"loss": cfg.l1_weight * l1 + cfg.giou_weight * giou, "l1": l1.detach(), "giou": giou.detach()}


def to_centre_size(boxes: Tensor) -> Tensor:
    """``(..., 4)`` ``(x1, y1, x2, y2)`` → ``(cx, cy, w, h)``."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), -1)


def centre_size_loss(pred: Tensor, target: Tensor, cfg: LossConfig) -> dict[str, Tensor]:
    """TransVG's and VLTVG's box terms: (smooth-)L1 on normalised ``(cx, cy, w, h)`` summed over the four and
    averaged over the batch (plain L1 with ``smooth_l1_beta: 0``, as both references), plus 1 − GIoU averaged over
    the batch, weighed by ``l1_weight`` and ``giou_weight``. Returns ``{"loss", "l1", "giou"}``."""
    pred, target = pred.float(), target.float()
    l1 = F.smooth_l1_loss(to_centre_size(pred), to_centre_size(target), beta=cfg.smooth_l1_beta, reduction="none")
    l1 = l1.sum(-1).mean()
    giou = generalized_box_iou_loss(pred, target, reduction="mean")
    return {"loss": cfg.l1_weight * l1 + cfg.giou_weight * giou, "l1": l1.detach(), "giou": giou.detach()}


def cell_targets(boxes: Tensor, height: int, width: int) -> Tensor:
    """``(B, height, width)``: the share of each box in each cell of a grid tiling the normalised input.

    A cell's weight is the area it shares with the box divided by the smaller of the cell's and the box's areas
    (so a cell inside the box, or a box inside the cell, gives 1), then normalised to sum to 1 per box. Every
    box, however small, gets its mass on the cells it touches.
    """
    x1, y1, x2, y2 = (c.float()[:, None, None] for c in boxes.unbind(-1))
    gy = torch.arange(height, device=boxes.device, dtype=torch.float32)[None, :, None]
    gx = torch.arange(width, device=boxes.device, dtype=torch.float32)[None, None, :]
    ix = ((gx + 1) / width).minimum(x2) - (gx / width).maximum(x1)
    iy = ((gy + 1) / height).minimum(y2) - (gy / height).maximum(y1)
    inter = ix.clamp(min=0) * iy.clamp(min=0)
    box_area = ((x2 - x1) * (y2 - y1)).clamp(min=1e-12)
    weight = inter / box_area.clamp(max=1.0 / (height * width))
    return weight / weight.flatten(1).sum(1).clamp(min=1e-12)[:, None, None]


def attention_loss(attention: Tensor, boxes: Tensor) -> Tensor:
    """Cross-entropy ``-Σ t·log a`` between the target's cell shares ``t`` (:func:`cell_targets`) and the
    attention ``a`` ``(B, h, w)`` over the visual tokens, averaged over the batch."""
    target = cell_targets(boxes, attention.shape[1], attention.shape[2])
    return -(target * attention.float().clamp(min=1e-8).log()).flatten(1).sum(1).mean()


def add_attention_terms(
    losses: dict[str, Tensor], maps: list[Tensor | None], target: Tensor, cfg: LossConfig
) -> dict[str, Tensor]:
    """``losses`` plus ``reg_attention_weight`` × the sum of :func:`attention_loss` over the attention ``maps``
    (one per box the model reads from where a query looks); ``"attention"`` reports the last map's, detached."""
    if not maps or any(m is None for m in maps):
        raise ValueError("loss.reg_attention_weight needs the attention map the box is read from: run with "
                         "need_attention")  # fmt: skip
    terms = [attention_loss(m, target) for m in maps if m is not None]
    losses["loss"] = losses["loss"] + cfg.reg_attention_weight * torch.stack(terms).sum()
    losses["attention"] = terms[-1].detach()
    return losses


def centre_cells(boxes: Tensor, height: int, width: int) -> Tensor:
    """``(B,)`` flat index ``i * width + j`` of the grid cell that holds each normalised box's centre."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    j = (cx * width).floor().long().clamp(0, width - 1)
    i = (cy * height).floor().long().clamp(0, height - 1)
    return i * width + j


def cell_losses(
    scores: Tensor, cell_boxes: Tensor, target: Tensor, height: int, width: int, cfg: LossConfig
) -> dict[str, Tensor]:
    """The cells head's terms: :func:`grounding_loss` on the box of the cell holding the target's centre, plus
    ``cell_weight`` × the cross-entropy of the cell scores against that cell (``"cell"``)."""
    cells = centre_cells(target.float(), height, width)
    rows = torch.arange(len(cells), device=cells.device)
    losses = grounding_loss(cell_boxes[rows, cells], target, cfg)
    cell = F.cross_entropy(scores.float().clamp(min=-1e4), cells)  # padding cells hold -inf
    losses["loss"] = losses["loss"] + cfg.cell_weight * cell
    losses["cell"] = cell.detach()
    return losses
