"""ReSC-base from its config: the backbone at stride 8 only, the text encoder and the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rsvg.errors import ConfigError
from rsvg.models.encoders import build_encoders
from rsvg.models.interface import GroundingModel
from rsvg.models.resc import STRIDE, ReSC
from rsvg.models.resc_config import ReSCConfig

__all__ = ["build_resc"]


def build_resc(
    cfg: ReSCConfig,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """ReSC with its backbone returning the stride-8 map (DarkNet-53 builds its whole neck for it, a lite backbone
    stops at its stride-8 stage; the whole backbone and its batch norms train unless it is frozen, as the reference
    trains DarkNet) and text encoder. It carries no stages."""
    if tuple(extra_strides):
        raise ConfigError("model.stages: ReSC carries no stages")
    backbone, text = build_encoders(
        cfg,
        return_levels=(STRIDE,),
        sentence=cfg.sentence_feature,
        load_pretrained=load_pretrained,
        text_folder=text_folder,
        frozen_bn=cfg.freeze_backbone,
        frozen_stages=0,
    )
    model = ReSC(cfg, backbone, text)
    return around(model) if around is not None else model
