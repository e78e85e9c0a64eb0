"""The model families rsvg can build, by ``model.arch``; a config without it means ``mgvlf``.

A family is its config class (a :class:`~rsvg.models.config.ModelConfig` subclass), its builder and whether
the stages (:mod:`rsvg.models.stages`) can wrap it. Adding a family is one module (or folder) of its own and one
line in :data:`FAMILIES`; ``docs/models.md`` ("Adding a model family") says what it must implement and pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from rsvg.errors import ConfigError
from rsvg.models.anchor_fit import fit_one_stage, fit_vocabulary
from rsvg.models.config import ModelConfig
from rsvg.models.faoa_config import FAOAConfig
from rsvg.models.interface import GroundingModel
from rsvg.models.lbyl_config import LBYLConfig
from rsvg.models.mgvlf_build import build_mgvlf
from rsvg.models.mgvlf_config import MGVLFConfig
from rsvg.models.onestage_build import build_faoa, build_lbyl, build_resc
from rsvg.models.resc_config import ReSCConfig
from rsvg.models.stages import parse_stages, upgrade_legacy_config
from rsvg.models.transvg_build import build_transvg
from rsvg.models.transvg_config import TransVGConfig
from rsvg.models.vltvg_build import build_vltvg
from rsvg.models.vltvg_config import VLTVGConfig
from rsvg.models.zsgnet_build import build_zsgnet
from rsvg.models.zsgnet_config import ZSGNetConfig

__all__ = ["DEFAULT_ARCH", "FAMILIES", "Family", "config_class", "family", "model_config_from_dict"]

DEFAULT_ARCH = "mgvlf"


@dataclass(frozen=True)
class Family:
    """One model family."""

    config: type[ModelConfig]
    #: (config, load_pretrained=, text_folder=, extra_strides=, around=) -> the model: the core with its backbone
    #: also returning extra_strides, wrapped by around(core) (the stages) before its new parameters are initialised
    build: Callable[..., GroundingModel]
    title: str  # what the family is, for listings
    carries_stages: bool = False  # whether its core implements forward_core / core_facts
    #: (config, training samples) -> (the config fitted to the training split, a line saying what was fitted):
    #: settings a family takes from the data before it is built (e.g. anchors by k-means), or None
    fit: Callable[..., tuple[ModelConfig, str]] | None = None


FAMILIES: dict[str, Family] = {
    "mgvlf": Family(MGVLFConfig, build_mgvlf, "MGVLF (Zhan et al., 2023), its baseline and ablations", True),
    "faoa": Family(FAOAConfig, build_faoa, "FAOA (Yang et al., ICCV 2019), one-stage, YOLOv3 head", fit=fit_one_stage),
    "resc": Family(ReSCConfig, build_resc, "ReSC-base (Yang et al., ECCV 2020), sub-query rounds", fit=fit_one_stage),
    "lbyl": Family(LBYLConfig, build_lbyl, "LBYL-Net (Huang et al., CVPR 2021), landmark features", fit=fit_one_stage),
    "transvg": Family(TransVGConfig, build_transvg, "TransVG (Deng et al., ICCV 2021), vision-language transformer"),
    "vltvg": Family(VLTVGConfig, build_vltvg, "VLTVG (Yang et al., CVPR 2022), verification and multi-stage decoder"),
    "zsgnet": Family(ZSGNetConfig, build_zsgnet, "ZSGNet (Sadhu et al., ICCV 2019), FPN anchors", fit=fit_vocabulary),
}


def family(arch: str) -> Family:
    """The family ``model.arch`` names; a :class:`ConfigError` listing the known ones otherwise."""
    if arch not in FAMILIES:
        raise ConfigError(f"model.arch {arch!r} is not a model family rsvg knows; known: {sorted(FAMILIES)}")
    return FAMILIES[arch]


def config_class(arch: Any) -> type[ModelConfig]:
    """The config class of the family ``model.arch`` names (its value as read, checked here)."""
    if not isinstance(arch, str):
        raise ConfigError(f"model.arch must be the name of a model family, got {arch!r}")
    return family(arch).config


def model_config_from_dict(data: Mapping[str, Any], loss: dict[str, Any] | None = None) -> ModelConfig:
    """A ``model`` section (a config file's or a checkpoint's ``config.json``) → its family's config, with the
    stages' options read and checked. Older sections load unchanged: no ``arch`` means ``mgvlf``, and flat stage
    options move into ``stages`` (their ``loss.*_weight`` popped from ``loss``)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"the model section must be a mapping of options, got {data!r}")
    data = upgrade_legacy_config(dict(data), loss)
    cfg = config_class(data.setdefault("arch", DEFAULT_ARCH)).from_dict(data)
    return with_stages(cfg)


def with_stages(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with its ``stages`` read into each stage's options and checked against it."""
    if cfg.stages and not family(cfg.arch).carries_stages:
        raise ConfigError(f"model.stages: the {cfg.arch} family cannot carry stages")
    return replace(cfg, stages=parse_stages(cfg.stages, cfg))
