"""The training loss (paper eq. 15): smooth-L1 + λ·GIoU on normalised ``(x1, y1, x2, y2)`` boxes.

Not in the paper (off in its configs):

* **attention supervision** (``attention_weight`` > 0): a cross-entropy that asks the [REG] token's attention
  over the visual tokens (the map :class:`~rsvg.models.mgvlf.MGVLF` returns with ``need_attention``) to lie on
  the cells the target box covers;
* **the cells head's loss** (``model.head: cells``): cross-entropy of the cell scores against the cell that holds
  the target's centre, and the paper's smooth-L1 + GIoU on the box that cell predicts;
* **the second look's loss** (``model.zoom``): the same cells terms on its window's grid.

:func:`model_loss` picks the terms a model's output calls for; trainer and benchmark both use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from rsvg.boxes import stack_objects
from rsvg.models.zoom import to_window

if TYPE_CHECKING:
    from rsvg.models.mgvlf import GroundingOutput


@dataclass
class LossConfig:
    """Weights of the terms; λ = 1 in the paper. ``smooth_l1_beta`` is torch's β (1.0 = paper's default; 0 =
    plain L1). ``attention_weight`` > 0 adds the attention supervision term (not in the paper)."""

    l1_weight: float = 1.0
    giou_weight: float = 1.0
    smooth_l1_beta: float = 1.0
    attention_weight: float = 0.0
    cell_weight: float = 1.0  # model.head: cells only: weight of the cell-score cross-entropy
    object_weight: float = 1.0  # model.object_head only: weight of its per-cell focal and query-category terms
    zoom_weight: float = 1.0  # model.zoom only: weight of the second look's cells loss (its own L1, GIoU, cell)
    rank_weight: float = 1.0  # model.rank only: weight of the candidate ranking's cross-entropy
    refine_weight: float = 1.0  # model.refine only: weight of the refined objects' L1 + GIoU (l1/giou_weight)

    def __post_init__(self) -> None:
        for name in (
            "l1_weight",
            "giou_weight",
            "smooth_l1_beta",
            "attention_weight",
            "cell_weight",
            "object_weight",
            "zoom_weight",
            "rank_weight",
            "refine_weight",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


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


def grounding_loss(
    pred: Tensor, target: Tensor, cfg: LossConfig | None = None, attention: Tensor | None = None
) -> dict[str, Tensor]:
    """Per-batch loss terms. Both boxes are ``(B, 4)`` normalised to the network input (0..1).

    The smooth-L1 term is summed over the four coordinates and averaged over the batch; GIoU is averaged over
    the batch. Returns ``{"loss", "l1", "giou"}``, and ``"attention"`` when ``cfg.attention_weight`` > 0 (which
    needs the model's ``attention``).
    """
    cfg = cfg or LossConfig()
    pred, target = pred.float(), target.float()
    l1 = F.smooth_l1_loss(pred, target, beta=cfg.smooth_l1_beta, reduction="none").sum(-1).mean()
    giou = generalized_box_iou_loss(pred, target, reduction="mean")
    out = {"loss": cfg.l1_weight * l1 + cfg.giou_weight * giou, "l1": l1.detach(), "giou": giou.detach()}
    if cfg.attention_weight > 0:
        if attention is None:
            raise ValueError("loss.attention_weight > 0 needs the model's attention map (need_attention=True)")
        att = attention_loss(attention, target)
        out["loss"] = out["loss"] + cfg.attention_weight * att
        out["attention"] = att.detach()
    return out


def centre_cells(boxes: Tensor, height: int, width: int) -> Tensor:
    """``(B,)`` flat index ``i * width + j`` of the grid cell that holds each normalised box's centre."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    j = (cx * width).floor().long().clamp(0, width - 1)
    i = (cy * height).floor().long().clamp(0, height - 1)
    return i * width + j


def ranking_targets(boxes: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Which of the candidate ranking's candidates (``model.rank``) should win: among those whose box is centred in
    the target, the one with the highest IoU. ``boxes`` (B, K, 4) and ``target`` (B, 4) normalised → (index (B,),
    has_one (B,) bool: some candidate is centred in the target; a sample without one has no target).

    (Also letting the candidate from the cell holding the target's centre win when none is centred, for small
    objects the second look then finds, made no difference offline: docs/benchmarks.md "Candidate ranking".)"""
    boxes, t = boxes.float(), target.float()[:, None]
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    inside = ((centre >= t[..., :2]) & (centre <= t[..., 2:])).all(-1)
    low, high = torch.maximum(boxes[..., :2], t[..., :2]), torch.minimum(boxes[..., 2:], t[..., 2:])
    overlap = (high - low).clamp(min=0).prod(-1)
    union = (boxes[..., 2:] - boxes[..., :2]).prod(-1) + (t[..., 2:] - t[..., :2]).prod(-1) - overlap
    iou = overlap / union.clamp(min=1e-12)
    return (iou + 2.0 * inside.float()).argmax(1), inside.any(1)


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


def model_loss(
    out: GroundingOutput,
    target: Tensor,
    cfg: LossConfig | None = None,
    objects: list[Tensor] | None = None,
    categories: Tensor | None = None,
) -> dict[str, Tensor]:
    """The loss of a model's output against normalised target boxes ``(B, 4)``.

    ``head: reg`` (the paper): :func:`grounding_loss` on the predicted boxes (with the attention term when
    ``cfg.attention_weight`` > 0). ``head: cells``: smooth-L1 + GIoU on the box of the cell holding the
    target's centre, plus ``cell_weight`` × the cross-entropy of the cell scores against that cell (``"cell"``).
    With ``model.object_head``, ``object_weight`` × (:func:`object_loss` against ``objects``, every annotated
    object of each sample's image (``"object"``), + the cross-entropy of the query's category logits against the
    referred object's DIOR class index ``categories`` (``"category"``)) is added. With ``model.zoom``, when the batch
    carried training crops, ``zoom_weight`` × the second look's own cells loss on the target mapped into each crop's
    window (``"zoom"``; absent when no sample of the batch had a crop). With ``model.rank``,
    ``rank_weight`` × the cross-entropy of the ranking over the candidates against :func:`ranking_targets`, averaged
    over the samples that have a target candidate (``"rank"``). With ``model.refine``, ``refine_weight`` ×
    :func:`grounding_loss` of the refined jittered objects against their annotated boxes (``"refine"``).
    """
    cfg = cfg or LossConfig()
    losses = _box_losses(out, target, cfg)
    if out.object_logits is not None and out.query_category_logits is not None:
        if objects is None or categories is None:
            raise ValueError(
                "model.object_head needs the image's objects and the target's category: build the dataset with "
                "image_objects=True"
            )
        obj = object_loss(out.object_logits, objects)
        cat = F.cross_entropy(out.query_category_logits.float(), categories)
        losses["loss"] = losses["loss"] + cfg.object_weight * (obj + cat)
        losses["object"], losses["category"] = obj.detach(), cat.detach()
    if out.zoom_scores is not None and out.zoom_boxes is not None and out.zoom_rows is not None:
        size, window = out.zoom_geometry  # type: ignore[misc]
        in_window = to_window(target[out.zoom_rows].float(), out.zoom_origins, size, window)  # type: ignore[arg-type]
        side = math.isqrt(out.zoom_scores.shape[1])
        zoom = _cell_losses(out.zoom_scores, out.zoom_boxes, in_window, side, side, cfg)["loss"]
        losses["loss"] = losses["loss"] + cfg.zoom_weight * zoom
        losses["zoom"] = zoom.detach()
    if out.rank_scores is not None and out.rank_boxes is not None:
        best, has_one = ranking_targets(out.rank_boxes, target)
        per_sample = F.cross_entropy(out.rank_scores.float().clamp(min=-1e4), best, reduction="none")
        rank = (per_sample * has_one).sum() / has_one.sum().clamp(min=1)
        losses["loss"] = losses["loss"] + cfg.rank_weight * rank
        losses["rank"] = rank.detach()
    if out.refine_boxes is not None and out.refine_truth is not None and len(out.refine_truth):
        refine = grounding_loss(out.refine_boxes, out.refine_truth, cfg)["loss"]
        losses["loss"] = losses["loss"] + cfg.refine_weight * refine
        losses["refine"] = refine.detach()
    return losses


def _box_losses(out: GroundingOutput, target: Tensor, cfg: LossConfig) -> dict[str, Tensor]:
    if out.cell_scores is None or out.cell_boxes is None:
        return grounding_loss(out.boxes, target, cfg, out.attention)
    height, width = _grid_shape(out)
    return _cell_losses(out.cell_scores, out.cell_boxes, target, height, width, cfg, out.attention)


def _cell_losses(
    scores: Tensor,
    cell_boxes: Tensor,
    target: Tensor,
    height: int,
    width: int,
    cfg: LossConfig,
    attention: Tensor | None = None,
) -> dict[str, Tensor]:
    """The cells head's terms: :func:`grounding_loss` on the box of the cell holding the target's centre, plus
    ``cell_weight`` × the cross-entropy of the cell scores against that cell."""
    cells = centre_cells(target.float(), height, width)
    rows = torch.arange(len(cells), device=cells.device)
    losses = grounding_loss(cell_boxes[rows, cells], target, cfg, attention)
    cell = F.cross_entropy(scores.float().clamp(min=-1e4), cells)  # padding cells hold -inf
    losses["loss"] = losses["loss"] + cfg.cell_weight * cell
    losses["cell"] = cell.detach()
    return losses


def _grid_shape(out: GroundingOutput) -> tuple[int, int]:
    if out.attention is not None:
        return int(out.attention.shape[1]), int(out.attention.shape[2])
    side = math.isqrt(out.cell_scores.shape[1])  # type: ignore[union-attr]
    if side * side != out.cell_scores.shape[1]:  # type: ignore[union-attr]
        raise ValueError("cell scores do not form a square grid; pass the attention map for its shape")
    return side, side
