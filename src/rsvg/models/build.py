"""Factories: a model from a :class:`ModelConfig` (training) or from a checkpoint folder (inference)."""

from __future__ import annotations

from pathlib import Path

from rsvg.models.backbones import build_backbone
from rsvg.models.config import ModelConfig
from rsvg.models.detr_init import init_from_detr
from rsvg.models.mgvlf import MGVLF
from rsvg.models.stages import enabled_stages
from rsvg.models.text_encoder import TextEncoder


def backbone_levels(cfg: ModelConfig) -> tuple[int, ...]:
    """The backbone strides the model reads: 32; 16 with ``stride16_detail``; and those its stages ask for."""
    levels = {32}
    if cfg.stride16_detail:
        levels.add(16)
    for stage in enabled_stages(cfg):
        levels |= set(stage.backbone_strides)
    return tuple(sorted(levels))


def build_model(cfg: ModelConfig, *, load_pretrained: bool = True, text_folder: Path | None = None) -> MGVLF:
    """Build the grounding model.

    With ``load_pretrained`` the backbone and the text encoder load their pretrained weights (and, given a DETR
    checkpoint as ``backbone_weights``, DETR's input projection and encoder initialise the visual encoder, and its
    encoder the fusion encoder too, as the reference does: :mod:`rsvg.models.detr_init`).
    Without it everything starts random (the weights then come from an rsvg checkpoint); ``text_folder`` names
    the folder holding the text model's config and tokenizer in that case.
    """
    weights = cfg.backbone_weights if load_pretrained else None
    backbone = build_backbone(
        cfg.backbone,
        weights=weights,
        pretrained=load_pretrained and cfg.pretrained_backbone,
        return_levels=backbone_levels(cfg),
    )
    # Without a sentence token in the MLCM memory the pooler would get no gradient (DDP rejects that): drop it.
    sentence = cfg.sentence_feature if cfg.mlcm and "sentence" in cfg.memory else "mean"
    if text_folder is not None:
        text = TextEncoder(str(text_folder), sentence, cfg.freeze_text_encoder, load_weights=False)
    else:
        text = TextEncoder(cfg.text_encoder, sentence, cfg.freeze_text_encoder, load_weights=load_pretrained)
    if cfg.freeze_backbone:
        backbone.freeze()
    model = MGVLF(cfg, backbone, text)
    if load_pretrained and weights is not None and cfg.detr_encoder:
        model.detr_init = init_from_detr(model, weights, fusion=cfg.detr_fusion)
    return model
