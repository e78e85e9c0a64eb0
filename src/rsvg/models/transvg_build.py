"""TransVG from its config (:func:`rsvg.models.detr_branch.build_detr_branch_model`): the backbone's stride-32 map,
BERT's last layer, the model and, given a DETR checkpoint, DETR's initialisation of its visual branch."""

from __future__ import annotations

from typing import Any

from rsvg.models.detr_branch import build_detr_branch_model
from rsvg.models.interface import GroundingModel
from rsvg.models.transvg import TransVG
from rsvg.models.transvg_config import TransVGConfig

__all__ = ["build_transvg"]


def build_transvg(cfg: TransVGConfig, **kwargs: Any) -> GroundingModel:
    """TransVG on ResNet's (or a lite backbone's) stride-32 map, its batch norms and first stage frozen as DETR's."""
    return build_detr_branch_model(TransVG, cfg, **kwargs)
