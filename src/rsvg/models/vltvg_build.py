"""VLTVG from its config (:func:`rsvg.models.detr_branch.build_detr_branch_model`): the backbone's stride-32 map,
the mean of BERT's last four layers, the model and, given a DETR checkpoint, DETR's initialisation of its visual
features."""

from __future__ import annotations

from typing import Any

from rsvg.models.detr_branch import build_detr_branch_model
from rsvg.models.interface import GroundingModel
from rsvg.models.vltvg import VLTVG
from rsvg.models.vltvg_config import VLTVGConfig

__all__ = ["build_vltvg"]


def build_vltvg(cfg: VLTVGConfig, **kwargs: Any) -> GroundingModel:
    """VLTVG on ResNet's (or a lite backbone's) stride-32 map, its batch norms and first stage frozen as DETR's."""
    return build_detr_branch_model(VLTVG, cfg, **kwargs)
