"""FAOA from its config: the backbone at strides 8, 16 and 32, the text encoder and the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from torch import nn

from rsvg.errors import ConfigError
from rsvg.models.encoders import build_text, build_visual
from rsvg.models.faoa import FAOA
from rsvg.models.faoa_config import FAOAConfig
from rsvg.models.interface import GroundingModel
from rsvg.models.lstm_text import LSTMTextEncoder

__all__ = ["build_faoa"]


def build_faoa(
    cfg: FAOAConfig,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """FAOA with its backbone (three levels; the whole backbone and its batch norms train unless it is frozen, as
    the reference trains DarkNet) and text encoder. It carries no stages."""
    if tuple(extra_strides):
        raise ConfigError("model.stages: FAOA carries no stages")
    backbone = build_visual(
        cfg, return_levels=(8, 16, 32), load_pretrained=load_pretrained, frozen_bn=cfg.freeze_backbone, frozen_stages=0
    )
    if cfg.text == "lstm":
        text: nn.Module = LSTMTextEncoder(cfg.vocabulary, input_dropout=cfg.lstm_dropout, sentence="last")
    else:
        text = build_text(cfg, sentence=cfg.sentence_feature, load_pretrained=load_pretrained, text_folder=text_folder)
    model = FAOA(cfg, backbone, text)
    return around(model) if around is not None else model
