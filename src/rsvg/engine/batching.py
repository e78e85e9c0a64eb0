"""Batch assembly and device transfer shared by training, evaluation and inference."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

# per-sample tensors of varying length (an image's objects, rsvg.data.extras): kept as a list of tensors
LIST_KEYS = ("objects",)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors and keep strings/ints (and :data:`LIST_KEYS`) as lists. Text is trimmed to the longest query
    of the batch: positions that are padding in every sample change nothing (they are masked everywhere)."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], Tensor) and key not in LIST_KEYS else values
    if "attention_mask" in batch:
        longest = int(batch["attention_mask"].sum(1).max())
        batch["input_ids"] = batch["input_ids"][:, :longest]
        batch["attention_mask"] = batch["attention_mask"][:, :longest]
    return batch


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """Move every tensor of a batch, and every list of tensors, to ``device`` (non-blocking from pinned memory);
    images optionally channels-last."""
    out = dict(batch)
    for key, value in batch.items():
        if isinstance(value, Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list) and value and all(isinstance(v, Tensor) for v in value):
            out[key] = [v.to(device, non_blocking=True) for v in value]
    if channels_last and "image" in out:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


def forward_batch(model: torch.nn.Module, batch: dict[str, Any], need_attention: bool = False) -> Any:
    """Run the model on a batch that carries either images or cached backbone features, handing the model's
    stages the batch entries they read (``batch_keys``)."""
    keys = getattr(model, "module", model).batch_keys  # DistributedDataParallel wraps the model
    return model(
        batch.get("image"),
        batch["padding_mask"],
        batch["input_ids"],
        batch["attention_mask"],
        need_attention,
        image_features=batch.get("image_features"),
        extras={k: batch[k] for k in keys if k in batch},
    )
