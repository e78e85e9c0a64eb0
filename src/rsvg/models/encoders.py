"""The visual backbone and the text encoder of a model config, as every family builds them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rsvg.models.backbones import build_backbone
from rsvg.models.config import ModelConfig
from rsvg.models.text_encoder import TextEncoder

__all__ = ["build_encoders", "build_text", "build_visual"]


def build_visual(
    cfg: ModelConfig,
    *,
    return_levels: Iterable[int],
    load_pretrained: bool = True,
    frozen_bn: bool = True,
    frozen_stages: int = 1,
) -> Any:
    """The backbone (returning ``return_levels``, frozen with ``cfg.freeze_backbone``), with its pretrained weights
    under ``load_pretrained`` (random otherwise: the weights then come from an rsvg checkpoint). ``frozen_bn``: its
    batch norms keep their loaded statistics (the default) or train; ``frozen_stages``: how many of its first
    stages do not train (:func:`~rsvg.models.backbones.build_backbone`)."""
    backbone = build_backbone(
        cfg.backbone,
        weights=cfg.backbone_weights if load_pretrained else None,
        pretrained=load_pretrained and cfg.pretrained_backbone,
        frozen_bn=frozen_bn,
        frozen_stages=frozen_stages,
        return_levels=tuple(sorted(set(return_levels))),
    )
    if cfg.freeze_backbone:
        backbone.freeze()
    return backbone


def build_text(
    cfg: ModelConfig,
    *,
    sentence: str,
    load_pretrained: bool = True,
    text_folder: Path | None = None,
    word_layers: int = 4,
) -> TextEncoder:
    """The BERT-family text encoder (sentence feature ``sentence``: pooler, mean or auto; word features the mean
    of its last ``word_layers`` layers), with its pretrained weights under ``load_pretrained``; without them
    ``text_folder`` names the folder holding the text model's config and tokenizer (a checkpoint's ``text/``)."""
    spec, load = (str(text_folder), False) if text_folder is not None else (cfg.text_encoder, load_pretrained)
    return TextEncoder(spec, sentence, cfg.freeze_text_encoder, load_weights=load, word_layers=word_layers)


def build_encoders(
    cfg: ModelConfig,
    *,
    return_levels: Iterable[int],
    sentence: str,
    load_pretrained: bool = True,
    text_folder: Path | None = None,
    frozen_bn: bool = True,
    frozen_stages: int = 1,
) -> tuple[Any, TextEncoder]:
    """:func:`build_visual` and :func:`build_text` of ``cfg``."""
    backbone = build_visual(
        cfg,
        return_levels=return_levels,
        load_pretrained=load_pretrained,
        frozen_bn=frozen_bn,
        frozen_stages=frozen_stages,
    )
    return backbone, build_text(cfg, sentence=sentence, load_pretrained=load_pretrained, text_folder=text_folder)
