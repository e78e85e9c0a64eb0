"""Batch assembly and device transfer shared by training, evaluation and inference."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

TENSOR_KEYS = (
    "image",
    "image_features",
    "padding_mask",
    "box",
    "orig_box",
    "orig_size",
    "letterbox",
    "input_ids",
    "attention_mask",
    "category_index",
    "zoom_image",
    "zoom_features",
    "zoom_origin",
    "zoom_valid",
)


# per-sample tensors of varying length: kept as a list of tensors (moved to the device one by one)
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
    """Move the tensors of a batch (non-blocking from pinned memory); images optionally channels-last."""
    out = dict(batch)
    for key in TENSOR_KEYS:
        if key in out:
            out[key] = out[key].to(device, non_blocking=True)
    for key in LIST_KEYS:
        if key in out:
            out[key] = [t.to(device, non_blocking=True) for t in out[key]]
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
