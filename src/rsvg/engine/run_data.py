"""The training and validation sets of a run, read as the model reads its input."""

from __future__ import annotations

from rich.console import Console

from rsvg.config import RunConfig
from rsvg.data.dataset import RSVGDataset, require_samples, verify_images
from rsvg.data.transforms import build_train_transforms
from rsvg.models.interface import GroundingModel
from rsvg.models.stages import check_augmentation

__all__ = ["training_sets"]


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
