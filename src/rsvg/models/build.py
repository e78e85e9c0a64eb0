"""A grounding model from its config: the family ``model.arch`` names (:mod:`rsvg.models.registry`), wrapped by
the stages ``model.stages`` names (:class:`~rsvg.models.stages.staged.StagedModel`)."""

from __future__ import annotations

from pathlib import Path

from rsvg.models.config import ModelConfig
from rsvg.models.interface import GroundingModel
from rsvg.models.registry import family, with_stages
from rsvg.models.stages import backbone_strides, build_stages
from rsvg.models.stages.staged import StagedModel

__all__ = ["build_model"]


def build_model(
    cfg: ModelConfig, *, load_pretrained: bool = True, text_folder: Path | None = None
) -> GroundingModel:
    """Build the grounding model ``cfg`` describes.

    With ``load_pretrained`` the backbone and the text encoder load their pretrained weights (the family may
    initialise more from them, e.g. MGVLF from a DETR checkpoint). Without it everything starts random (the
    weights then come from an rsvg checkpoint); ``text_folder`` names the folder holding the text model's config
    and tokenizer in that case.
    """
    cfg = with_stages(cfg)
    options = cfg.stages

    def around(core: GroundingModel) -> GroundingModel:
        return StagedModel(core, build_stages(options, core.core_facts())) if options else core

    return family(cfg.arch).build(
        cfg,
        load_pretrained=load_pretrained,
        text_folder=text_folder,
        extra_strides=backbone_strides(options),
        around=around,
    )
