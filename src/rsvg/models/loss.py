"""The training loss (paper eq. 15): smooth-L1 + λ·GIoU on normalised ``(x1, y1, x2, y2)`` boxes."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss


@dataclass
class LossConfig:
    """Weights of the two terms; λ = 1 in the paper. ``smooth_l1_beta`` is torch's β (1.0 = paper's default)."""

    l1_weight: float = 1.0
    giou_weight: float = 1.0
    smooth_l1_beta: float = 1.0


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
