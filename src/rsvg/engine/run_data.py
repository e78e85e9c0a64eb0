"""The training and validation sets of a run, read as the model reads its input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from rsvg.config import RunConfig
from rsvg.data.dataset import RSVGDataset, require_samples, verify_images
from rsvg.data.dior_rsvg import load_split
from rsvg.data.transforms import build_train_transforms
from rsvg.models.interface import GroundingModel
from rsvg.models.registry import family
from rsvg.models.stages import check_augmentation

__all__ = ["fit_to_training_split", "training_sets"]


def fit_to_training_split(cfg: RunConfig, console: Console) -> RunConfig:
    """``cfg`` with what its model family takes from the training split before the model is built (e.g. anchors
    by k-means: :attr:`rsvg.models.registry.Family.fit`), said on ``console``; unchanged for the other families.
    Deterministic, so a resumed run fits the same values again."""
    fit = family(cfg.model.arch).fit
    if fit is None:
        return cfg
    model, message = fit(cfg.model, load_split(Path(str(cfg.data.root)), cfg.data.train_split))
    console.print(message, highlight=False)
    return replace(cfg, model=model)


def training_sets(cfg: RunConfig, model: GroundingModel, console: Console) -> tuple[RSVGDataset, RSVGDataset]:
    """``(train, val)`` of ``cfg.data`` at the model's input size, tokenizer and normalisation, each sample
    carrying what the model asks for (:meth:`~rsvg.models.interface.GroundingModel.sample_extras`). Empty splits
    and unreadable images are refused here, before hours of work, not in the middle."""
    common = {
        "image_size": model.image_size,
        "tokenizer": model.tokenizer(),
        "max_tokens": model.max_tokens,
        "mean": model.mean,
        "std": model.std,
    }
    check_augmentation(model.stage_list(), cfg.data.augment)
    augment = build_train_transforms(cfg.data.augment) if cfg.data.augment is not None else None
    train_set = RSVGDataset(
        cfg.data.root,
        cfg.data.train_split,
        augment=augment,
        seed=cfg.train.seed,
        extras=model.sample_extras(training=True),
        **common,
    )
    val_set = RSVGDataset(cfg.data.root, cfg.data.val_split, extras=model.sample_extras(training=False), **common)
    require_samples(train_set, "training needs at least one (data.train_split names the split)")
    require_samples(
        val_set,
        "training keeps OUT/best by validation Pr@0.5 after every epoch, so it needs at least one "
        "(data.val_split names the split)",
    )
    if cfg.data.val_split == cfg.data.train_split:
        console.print(
            f"warning: data.val_split is data.train_split ({cfg.data.val_split}): validation scores the training "
            "samples, so OUT/best is picked on what the model was trained on",
            highlight=False,
        )
    verify_images([*train_set.samples, *val_set.samples])
    return train_set, val_set
