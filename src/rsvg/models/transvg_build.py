"""TransVG from its config: the backbone's stride-32 map, BERT's last layer, the model and, given a DETR
checkpoint, DETR's initialisation of its visual branch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rsvg.errors import ConfigError
from rsvg.models.detr_init import init_from_detr
from rsvg.models.encoders import build_text, build_visual
from rsvg.models.interface import GroundingModel
from rsvg.models.transvg import TransVG
from rsvg.models.transvg_config import TransVGConfig

__all__ = ["build_transvg"]


def build_transvg(
    cfg: TransVGConfig,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """TransVG. Its CNN has frozen batch norms and a frozen first stage (conv1 and layer1 of ResNet-50), as DETR's
    backbone in the reference. With ``load_pretrained`` and a DETR checkpoint as ``backbone_weights``, DETR's
    ``input_proj`` and encoder initialise the visual branch (the reference's ``--detr_model``); the
    vision-language encoder keeps its own initialisation."""
    if tuple(extra_strides):
        raise ConfigError("model.stages: model.arch transvg carries no stages")
    backbone = build_visual(cfg, return_levels=(32,), load_pretrained=load_pretrained)
    text = build_text(
        cfg, sentence="mean", load_pretrained=load_pretrained, text_folder=text_folder, word_layers=cfg.word_layers
    )
    model = TransVG(cfg, backbone, text)
    if load_pretrained and cfg.backbone_weights is not None:
        model.detr_init = init_from_detr(model, cfg.backbone_weights, fusion=None)
    return around(model) if around is not None else model
