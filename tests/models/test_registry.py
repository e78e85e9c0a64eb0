"""The registry of model families (``model.arch``) and the stages' config section (``model.stages``): what a config
file, a ``--set`` override and an older checkpoint's config become."""

from __future__ import annotations

import pytest
import torch

from rsvg.config import config_from_dict, load_config
from rsvg.errors import ConfigError
from rsvg.models.mgvlf_config import MGVLFConfig
from rsvg.models.registry import model_config_from_dict
from rsvg.models.stages.rank import RankOptions
from rsvg.models.stages.staged import upgrade_state
from rsvg.models.stages.zoom import ZoomOptions

LITE = "configs/mgvlf_lite.yaml"


def test_a_config_without_arch_is_mgvlf():
    cfg = config_from_dict({})
    assert isinstance(cfg.model, MGVLFConfig) and cfg.model.arch == "mgvlf" and cfg.model.stages == {}
    assert model_config_from_dict({"hidden_dim": 64, "heads": 4}).hidden_dim == 64
    with pytest.raises(ConfigError, match=r"model\.arch 'vgnet' is not a model family rsvg knows; known: \["):
        config_from_dict({"model": {"arch": "vgnet"}})


def test_the_lite_config_names_its_stages_in_their_section():
    stages = load_config(LITE).model.stages
    assert list(stages) == ["object_head", "rank", "zoom", "refine"]
    assert stages["rank"] == RankOptions(candidates=16, layers=2, weights={"rank": 1.0})
    zoom = ZoomOptions(scale=2, window=96, max_side=46.0, jitter=32.0, layers=2, weights={"zoom": 1.0})
    assert stages["zoom"] == zoom
    assert stages["object_head"].weights == {"object": 1.0, "category": 1.0}


def test_an_older_config_with_flat_stage_options_reads_as_the_new_section():
    old = {
        "model": {
            "head": "cells",
            "stride16_detail": True,
            "freeze_backbone": True,
            "image_size": 384,
            "object_head": True,
            "rank": True,
            "rank_candidates": 8,
            "zoom": False,  # off: its options did nothing and are dropped
            "zoom_window": 64,
            "refine": True,
            "refine_bins": 5,
        },
        "loss": {"cell_weight": 2.0, "rank_weight": 0.5, "zoom_weight": 3.0, "object_weight": 0.25},
    }
    cfg = config_from_dict(old)
    assert list(cfg.model.stages) == ["object_head", "rank", "refine"]
    assert cfg.model.stages["rank"] == RankOptions(candidates=8, layers=2, weights={"rank": 0.5})
    assert cfg.model.stages["object_head"].weights == {"object": 0.25, "category": 0.25}
    assert cfg.model.stages["refine"].bins == 5 and cfg.loss.cell_weight == 2.0
    # what a checkpoint written today holds reads back the same
    assert config_from_dict(cfg.to_dict()) == cfg


def test_overrides_turn_stages_on_and_off_and_set_their_options():
    cfg = load_config(
        LITE,
        [
            "model.stages.zoom.window=64",
            "model.stages.zoom.jitter=16",
            "model.stages.rank=false",
            "model.stages.refine.weights.refine=2",
        ],
    )
    assert list(cfg.model.stages) == ["object_head", "zoom", "refine"]
    assert (cfg.model.stages["zoom"].window, cfg.model.stages["zoom"].jitter) == (64, 16.0)
    assert cfg.model.stages["refine"].weights == {"refine": 2.0}
    on = load_config(None, ["model.head=cells", "model.stages.rank={}", "model.stages.rank.layers=3"])
    assert on.model.stages["rank"] == RankOptions(layers=3)
    # the older flat keys still work as overrides, on the stages that are on
    assert load_config(LITE, ["model.zoom_window=64", "model.zoom_jitter=8"]).model.stages["zoom"].window == 64
    assert "zoom" not in load_config(LITE, ["model.zoom=false"]).model.stages


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.stages.zoom.window=64"], r"model\.stages\.zoom is not on in this config; turn it on first"),
        (["model.stages.blur={}"], r"unknown stage 'blur'"),
        (["model.head=cells", "model.stages.rank={}", "model.stages.rank.depth=3"], r"unknown option 'depth'"),
        (["model.head=cells", "model.stages.rank={weights: {ranking: 2}}"], r"unknown loss term\(s\) \['ranking'\]"),
        (["model.head=cells", "model.stages.rank={weights: {rank: -1}}"], r"weights\.rank must be a number >= 0"),
        (["model.stages.rank={}"], r"model\.stages\.rank ranks the cells head's best cells"),
        (["model.head=cells", "model.stages.rank={layers: two}"], r"model\.stages\.rank\.layers must be int"),
        (["model.head=cells", "model.stages.rank={layers: .nan}"], r"must be a finite number"),
    ],
)
def test_bad_stage_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_a_checkpoint_of_a_staged_model_from_before_the_wrapper_loads_under_the_new_names():
    older = {
        "backbone.stem.weight": torch.zeros(1),  # the core's parameters were at the top
        "reg_token": torch.zeros(1),
        "stages.rank.first_weight": torch.zeros(1),
        "ranker.score.0.weight": torch.zeros(1),  # the oldest names of a stage's parameters
    }
    assert set(upgrade_state(older)) == {
        "core.backbone.stem.weight",
        "core.reg_token",
        "stages.rank.first_weight",
        "stages.rank.score.0.weight",
    }
    assert upgrade_state({"core.reg_token": torch.zeros(1)}).keys() == {"core.reg_token"}
