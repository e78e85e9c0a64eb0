"""The stages after the paper's model (none of them in the paper; all off in its configs).

Each lives in its own module with the interface of :class:`~rsvg.models.stages.base.Stage`; :func:`build_stages`
creates the enabled ones in the order they run:

1. :mod:`~rsvg.models.stages.object_head` (``model.object_head``): categories per cell, a prior on the cells
   head's scores;
2. :mod:`~rsvg.models.stages.rank` (``model.rank``): the best cells ranked again as objects;
3. :mod:`~rsvg.models.stages.zoom` (``model.zoom``): a second look at small answers, at a finer resolution;
4. :mod:`~rsvg.models.stages.refine` (``model.refine``): the answer's box read again and corrected.

The visual feature map can carry extra maps for them (:data:`FEATURE_PARTS`): computed with the backbone's maps,
so feature caches hold them too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from rsvg.models.config import ModelConfig
from rsvg.models.stages.base import BACKBONE_STRIDE, Stage, StageContext, check_augmentation
from rsvg.models.stages.colours import colour_channels, colour_map
from rsvg.models.stages.object_head import ObjectHead
from rsvg.models.stages.rank import CandidateRanking
from rsvg.models.stages.refine import BoxRefiner
from rsvg.models.stages.zoom import SecondLook

__all__ = [
    "FEATURE_PARTS",
    "Stage",
    "StageContext",
    "StageReport",
    "build_stages",
    "check_augmentation",
    "enabled_stages",
    "stage_reports",
    "step_titles",
    "upgrade_legacy_names",
]


@dataclass(frozen=True)
class FeaturePart:
    """A map riding at the end of the visual feature map, folded into the stride-32 grid."""

    channels: int
    compute: Callable[[Tensor], Tensor]  # the normalised image (B, 3, S, S) -> (B, channels, S/32, S/32)


FEATURE_PARTS: dict[str, FeaturePart] = {
    "colours": FeaturePart(colour_channels(BACKBONE_STRIDE), lambda image: colour_map(image, BACKBONE_STRIDE)),
}


def enabled_stages(cfg: ModelConfig) -> list[type[Stage]]:
    """The stage classes ``cfg`` enables, in the order they run."""
    switches = (
        (cfg.object_head, ObjectHead),
        (cfg.rank, CandidateRanking),
        (cfg.zoom, SecondLook),
        (cfg.refine, BoxRefiner),
    )
    return [cls for on, cls in switches if on]


def build_stages(cfg: ModelConfig, dim: int, text_dim: int, level_channels: dict[int, int]) -> nn.ModuleDict:
    """The stages ``cfg`` enables, in the order they run (``dim``: the model's width, ``text_dim``: the text
    encoder's, ``level_channels``: the backbone's channels per stride)."""
    stages: dict[str, Stage] = {}
    if cfg.object_head:
        stages["object_head"] = ObjectHead(cfg, dim, text_dim)
    if cfg.rank:
        stages["rank"] = CandidateRanking(cfg, dim, text_dim)
    if cfg.zoom:
        # its input map: the crop's stride-16 map with the stride-8 map folded in
        stages["zoom"] = SecondLook(cfg, dim, text_dim, level_channels[16] + 4 * level_channels[8])
    if cfg.refine:
        stages["refine"] = BoxRefiner(cfg, level_channels[16])
    return nn.ModuleDict(stages)


def step_titles() -> dict[str, str]:
    """``step_key → title`` of every stage that can change the answer, in the order they run."""
    return {cls.step_key: cls.step_title for cls in (CandidateRanking, SecondLook, BoxRefiner) if cls.step_key}


@dataclass(frozen=True)
class StageReport:
    """What one stage that ran says about a batch's answers: which it changed (``(B,)`` bool, None when it has
    no say) and their boxes before it (``(B, 4)`` normalised, None when not kept)."""

    stage: Stage
    changed: Tensor | None
    boxes_before: Tensor | None


def stage_reports(stages: Sequence[Stage], stage_records: Mapping[str, Any]) -> list[StageReport]:
    """For each stage that left a record in an output's ``stages``, in the order they ran, what it says about the
    answers: the one reading of stage records that evaluation rows and :class:`rsvg.inference.Grounder` share."""
    reports = []
    for stage in stages:
        record = stage_records.get(stage.name)
        if record is not None:
            reports.append(StageReport(stage, stage.changed(record), stage.boxes_before(record)))
    return reports


#: checkpoints written before the stages had their own folder named their parameters differently
LEGACY_PREFIXES = {
    "object_head.": "stages.object_head.object_head.",
    "query_category.": "stages.object_head.query_category.",
    "prior_scale": "stages.object_head.prior_scale",
    "ranker.": "stages.rank.",
    "second_look.": "stages.zoom.",
    "refiner.": "stages.refine.",
}


def upgrade_legacy_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict with the stages' parameters under their current names (older checkpoints kept them at the
    top of the model); current names pass unchanged."""
    out = {}
    for key, value in state.items():
        for old, new in LEGACY_PREFIXES.items():
            if key == old or (old.endswith(".") and key.startswith(old)):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out
