"""LBYL-Net from its config: the backbone at strides 8, 16 and 32, the text encoder and the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from torch import nn

from rsvg.errors import ConfigError
from rsvg.models.encoders import build_text, build_visual
from rsvg.models.interface import GroundingModel
from rsvg.models.lbyl import LBYLNet
from rsvg.models.lbyl_config import LBYLConfig
from rsvg.models.lstm_text import LSTMTextEncoder

__all__ = ["build_lbyl"]


def build_lbyl(
    cfg: LBYLConfig,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """LBYL-Net with its backbone (three levels; the whole backbone and its batch norms train unless it is frozen,
    as the reference trains DarkNet) and text encoder (its pooler left out: never read). It carries no stages."""
    if tuple(extra_strides):
        raise ConfigError("model.stages: LBYL-Net carries no stages")
    backbone = build_visual(
        cfg, return_levels=(8, 16, 32), load_pretrained=load_pretrained, frozen_bn=cfg.freeze_backbone, frozen_stages=0
    )
    if cfg.text == "lstm":  # the two directions' final hidden states, as the reference's RNNEncoder gives them
        text: nn.Module = LSTMTextEncoder(cfg.vocabulary, input_dropout=cfg.lstm_dropout, sentence="final")
    else:
        text = build_text(cfg, sentence=cfg.sentence_feature, load_pretrained=load_pretrained, text_folder=text_folder)
    model = LBYLNet(cfg, backbone, text)
    return around(model) if around is not None else model
