"""VLTVG from its config: the backbone's stride-32 map, the mean of BERT's last four layers, the model and, given a
DETR checkpoint, DETR's initialisation of its visual features."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rsvg.errors import ConfigError
from rsvg.models.detr_init import init_from_detr
from rsvg.models.encoders import build_text, build_visual
from rsvg.models.interface import GroundingModel
from rsvg.models.vltvg import VLTVG
from rsvg.models.vltvg_config import VLTVGConfig

__all__ = ["build_vltvg"]


def build_vltvg(
    cfg: VLTVGConfig,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """VLTVG. Its CNN has frozen batch norms and a frozen first stage (conv1 and layer1 of ResNet-50), as DETR's
    backbone in the reference. With ``load_pretrained`` and a DETR checkpoint as ``backbone_weights``, DETR's
    ``input_proj`` and encoder initialise the visual features (the reference's ``load_weights_path``)."""
    if tuple(extra_strides):
        raise ConfigError("model.stages: model.arch vltvg carries no stages")
    backbone = build_visual(cfg, return_levels=(32,), load_pretrained=load_pretrained)
    text = build_text(
        cfg, sentence="mean", load_pretrained=load_pretrained, text_folder=text_folder, word_layers=cfg.word_layers
    )
    model = VLTVG(cfg, backbone, text)
    if load_pretrained and cfg.backbone_weights is not None:
        model.detr_init = init_from_detr(model, cfg.backbone_weights, fusion=None)
    return around(model) if around is not None else model
