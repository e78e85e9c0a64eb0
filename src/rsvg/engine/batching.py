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


def normalised_target(batch: dict[str, Any], image_size: int) -> Tensor:
    """Ground-truth boxes in the network frame, normalised to 0..1 (what the head predicts)."""
    return batch["box"].float() / image_size


def normalised_objects(batch: dict[str, Any], image_size: int) -> list[Tensor] | None:
    """The image objects of each sample, ``(K, 5)`` rows ``(class, x1, y1, x2, y2)`` with boxes normalised like
    :func:`normalised_target`; None when the batch has none."""
    if "objects" not in batch:
        return None
    scale = torch.tensor([1.0, *(4 * [1.0 / image_size])])
    return [o.float() * scale.to(o.device) for o in batch["objects"]]


def forward_batch(model: torch.nn.Module, batch: dict[str, Any], need_attention: bool = False) -> Any:
    """Run the model on a batch that carries either images or cached backbone features (and, for
    ``model.zoom``, zoom canvases or the training crops' maps; for ``model.refine`` in training, the image's
    objects)."""
    return model(
        batch.get("image"),
        batch["padding_mask"],
        batch["input_ids"],
        batch["attention_mask"],
        need_attention,
        image_features=batch.get("image_features"),
        zoom_image=batch.get("zoom_image"),
        zoom_features=batch.get("zoom_features"),
        zoom_origin=batch.get("zoom_origin"),
        zoom_valid=batch.get("zoom_valid"),
        objects=normalised_objects(batch, getattr(model, "module", model).cfg.image_size),
    )
