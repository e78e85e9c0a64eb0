"""MGVLF from its config: the encoders, the model and, given a DETR checkpoint, DETR's initialisation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rsvg.models.detr_init import init_from_detr
from rsvg.models.encoders import build_encoders
from rsvg.models.interface import GroundingModel
from rsvg.models.mgvlf import MGVLF
from rsvg.models.mgvlf_config import MGVLFConfig

__all__ = ["build_mgvlf"]


def build_mgvlf(
    cfg: MGVLFConfig,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """MGVLF (its backbone also returning ``extra_strides``), wrapped by ``around`` (the stages) before the new
    parameters are initialised, so that a seed gives the same model however it is wrapped.

    With ``load_pretrained`` and a DETR checkpoint as ``backbone_weights``, DETR's input projection and encoder
    initialise the visual encoder, and its encoder the fusion encoder too, as the reference does
    (:mod:`rsvg.models.detr_init`)."""
    levels = {32, *extra_strides} | ({16} if cfg.stride16_detail else set())
    # Without a sentence token in the MLCM memory the pooler would get no gradient (DDP rejects that): drop it.
    sentence = cfg.sentence_feature if cfg.mlcm and "sentence" in cfg.memory else "mean"
    backbone, text = build_encoders(
        cfg, return_levels=levels, sentence=sentence, load_pretrained=load_pretrained, text_folder=text_folder
    )
    model = MGVLF(cfg, backbone, text)
    net = around(model) if around is not None else model
    model.init_new_parameters(net)
    if load_pretrained and cfg.backbone_weights is not None and cfg.detr_encoder:
        model.detr_init = init_from_detr(model, cfg.backbone_weights, fusion=cfg.detr_fusion)
    return net
