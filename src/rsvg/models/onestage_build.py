"""The one-stage families from their configs (FAOA, ReSC-base, LBYL-Net): the backbone at the levels the family
reads, its text model (BERT, or the BiLSTM of the LSTM rows) and the model.

As the references train DarkNet, the whole backbone and its batch norms train unless ``model.freeze_backbone``
freezes it. None of these families carries stages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from torch import nn

from rsvg.errors import ConfigError
from rsvg.models.encoders import build_text, build_visual
from rsvg.models.faoa import FAOA
from rsvg.models.interface import GroundingModel
from rsvg.models.lbyl import LBYLNet
from rsvg.models.lstm_text import LSTMTextEncoder
from rsvg.models.onestage_config import OneStageConfig
from rsvg.models.resc import STRIDE, ReSC

__all__ = ["build_faoa", "build_lbyl", "build_one_stage", "build_resc"]


def build_one_stage(
    model_class: type[GroundingModel],
    cfg: OneStageConfig,
    *,
    levels: Sequence[int],
    lstm_sentence: str,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """``model_class`` on a backbone returning ``levels`` and its text model; with ``text: lstm`` the BiLSTM gives
    ``lstm_sentence`` as its sentence feature (``last``: FAOA's output at the last word; ``final``: LBYL-Net's
    final hidden states)."""
    if tuple(extra_strides):
        raise ConfigError(f"model.stages: model.arch {cfg.arch} carries no stages")
    backbone = build_visual(
        cfg, return_levels=levels, load_pretrained=load_pretrained, frozen_bn=cfg.freeze_backbone, frozen_stages=0
    )
    if cfg.text == "lstm":
        text: nn.Module = LSTMTextEncoder(cfg.vocabulary, input_dropout=cfg.lstm_dropout, sentence=lstm_sentence)
    else:
        text = build_text(cfg, sentence=cfg.sentence_feature, load_pretrained=load_pretrained, text_folder=text_folder)
    model = model_class(cfg, backbone, text)  # type: ignore[call-arg]
    return around(model) if around is not None else model


def build_faoa(cfg: OneStageConfig, **kwargs: object) -> GroundingModel:
    """FAOA on DarkNet's three maps (:mod:`rsvg.models.faoa`)."""
    return build_one_stage(FAOA, cfg, levels=(8, 16, 32), lstm_sentence="last", **kwargs)  # type: ignore[arg-type]


def build_resc(cfg: OneStageConfig, **kwargs: object) -> GroundingModel:
    """ReSC-base on the stride-8 map only (DarkNet-53 builds its whole neck for it, a lite backbone stops at its
    stride-8 stage; :mod:`rsvg.models.resc`)."""
    return build_one_stage(ReSC, cfg, levels=(STRIDE,), lstm_sentence="last", **kwargs)  # type: ignore[arg-type]


def build_lbyl(cfg: OneStageConfig, **kwargs: object) -> GroundingModel:
    """LBYL-Net on DarkNet's three maps (:mod:`rsvg.models.lbyl`)."""
    return build_one_stage(LBYLNet, cfg, levels=(8, 16, 32), lstm_sentence="final", **kwargs)  # type: ignore[arg-type]
