"""Tiny model configs and checkpoints: everything the model, training and serving tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.datasets import make_official_dataset
from rsvg.config import load_config
from rsvg.data.dataset import RSVGDataset
from rsvg.engine.trainer import train
from rsvg.models.registry import model_config_from_dict

# the model tests' tiny model (ModelConfig keywords): 64-px input, 2x2 visual tokens
TINY = {
    "backbone": "efficientnet_lite0",
    "pretrained_backbone": False,
    "image_size": 64,
    "max_tokens": 12,
    "hidden_dim": 32,
    "heads": 4,
    "ffn_dim": 64,
    "dropout": 0.0,
    "visual_encoder_layers": 1,
    "fusion_layers": 1,
    "extra_padding": 1,
}


def model_config(**options):
    """A model config from keywords, read as a config file's ``model:`` section is (the family by ``arch``, the
    stages' options from ``stages``)."""
    return model_config_from_dict(options)


def inputs(batch=2, size=64, nt=12, valid=(5, 9)):
    torch.manual_seed(1)
    image = torch.randn(batch, 3, size, size)
    pad = torch.zeros(batch, size, size, dtype=torch.bool)
    pad[0, 32:, :] = True  # a letterboxed image: the bottom half is padding (the second row of 2x2 tokens)
    ids = torch.randint(1000, 5000, (batch, nt))
    mask = torch.zeros(batch, nt, dtype=torch.long)
    for b, n in enumerate(valid):
        mask[b, :n] = 1
        ids[b, 0], ids[b, n - 1] = 101, 102
        ids[b, n:] = 0
    return image, pad, ids, mask


# the lite config's second look, scaled to a 64-px input (a 32-px window, 4x4 tokens at 2x)
TINY_ZOOM = ["model.zoom_window=32", "model.zoom_jitter=8", "model.zoom_max_side=24"]

TINY_MODEL = [
    "model.pretrained_backbone=false",
    "model.image_size=64",
    "model.max_tokens=16",
    "model.hidden_dim=32",
    "model.heads=4",
    "model.ffn_dim=64",
    "model.dropout=0.1",
    "model.visual_encoder_layers=1",
    "model.fusion_layers=1",
    "model.extra_padding=1",
    "data.workers=0",
    "train.log_every=50",
    "train.channels_last=false",
    *TINY_ZOOM,
]


def tiny_config(root: Path, *extra: str):
    return load_config(None, [*TINY_MODEL, f"data.root={root}", *extra])


def model_dataset(root: Path, split: str, model) -> RSVGDataset:
    """A split read as the tiny configs' model reads its input (64 px, 16 tokens, its backbone's normalisation)."""
    return RSVGDataset(
        root,
        split,
        image_size=64,
        tokenizer=model.text.tokenizer(),
        max_tokens=16,
        mean=model.backbone.mean,
        std=model.backbone.std,
    )


WEB_TINY = [*TINY_MODEL, "train.epochs=1", "train.batch_size=3"]


def tiny_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, config: str | None = None, name: str = "web_tiny_checkpoint"
) -> Path:
    """A tiny trained checkpoint (a few seconds) of ``config`` (None: the built-in defaults, the paper's model),
    made once per test run under ``name`` and shared by the tests that ask for it."""
    base = tmp_path_factory.getbasetemp() / name
    best = base / "run" / "best"
    if not (best / "config.json").is_file():
        root = make_official_dataset(base / "data")
        torch.manual_seed(0)
        train(load_config(config, [*WEB_TINY, f"data.root={root}"]), base / "run")
    return best


def lite_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny lite-config checkpoint (ranking, second look, refinement on), made once per test run."""
    return tiny_checkpoint(tmp_path_factory, "configs/mgvlf_lite.yaml", "lite_tiny_checkpoint")
