"""Backbone features computed once per image, for training with a frozen backbone and no augmentation.

A frozen backbone sees the same pixels every epoch, so its stride-32 map can be computed once and stored
(float16) instead of decoding, resizing and convolving every image every epoch. The maps come from a copy of
the backbone with its frozen BatchNorm folded into the convolutions. The result is the same model and the same
training up to float16 rounding of the stored maps; the speed-up is large where the backbone dominates (the lite
config on CPUs).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor

from rsvg.config import RunConfig
from rsvg.data.dataset import read_sample_image
from rsvg.data.records import GroundingSample
from rsvg.data.transforms import letterbox, normalize
from rsvg.engine.amp import autocast_context
from rsvg.models.backbones.base import BACKBONE_STRIDE
from rsvg.models.interface import GroundingModel


def backbone_batch_size(device: torch.device, batch_size: int) -> int:
    """How many images the frozen backbone should take at once when only its maps are wanted: ``batch_size`` on
    accelerators, 1 on a CPU. Lite0's depthwise layers are memory-bound there, and one image's activations stay
    in the CPU caches while a batch's do not (``rsvg bench features`` measures both)."""
    return 1 if device.type == "cpu" else max(1, batch_size)


def encode_images(model: GroundingModel, images: Tensor, batch_size: int) -> Tensor:
    """``model.encode_image`` over ``images`` in chunks of :func:`backbone_batch_size`."""
    step = backbone_batch_size(images.device, batch_size)
    if step >= len(images):
        return model.encode_image(images)
    return torch.cat([model.encode_image(images[i : i + step]) for i in range(0, len(images), step)])


def caches_backbone_maps(cfg: RunConfig) -> bool:
    """Whether training computes the backbone's maps once and steps over them: a frozen backbone, no augmentation
    and ``train.cache_backbone_features`` (the trainer may still skip a cache above ``feature_cache_max_gb``)."""
    return bool(cfg.model.freeze_backbone and cfg.data.augment is None and cfg.train.cache_backbone_features)


def folded_backbone(model: GroundingModel) -> torch.nn.Module:
    """A copy of the model's frozen backbone in eval mode with its BatchNorm merged into the convolutions: the same
    maps, fewer passes over memory."""
    backbone = copy.deepcopy(model.backbone).eval()
    backbone.fold_frozen_batchnorm()
    return backbone


def cache_bytes(num_images: int, channels: int, image_size: int) -> int:
    side = -(-image_size // BACKBONE_STRIDE)
    return num_images * channels * side * side * 2


@torch.inference_mode()
def compute_image_features(
    model: GroundingModel,
    samples: Sequence[GroundingSample],
    device: torch.device,
    batch_size: int = 8,
    channels_last: bool = False,
    amp: str = "off",
) -> dict[str, torch.Tensor]:
    """``image_id → (C5, h, w)`` float16 backbone maps for every image the samples use, computed
    :func:`backbone_batch_size` images at a time, under the autocast ``amp`` (``off``: fp32)."""

    images: dict[str, GroundingSample] = {}
    for s in samples:
        images.setdefault(s.image_id, s)
    backbone = folded_backbone(model)
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    out: dict[str, torch.Tensor] = {}
    ids = list(images)
    step = backbone_batch_size(device, batch_size)
    for start in range(0, len(ids), step):
        chunk = ids[start : start + step]
        batch = []
        for image_id in chunk:
            s = images[image_id]
            canvas, pad, _ = letterbox(read_sample_image(s), model.image_size)
            batch.append(normalize(canvas, model.mean, model.std, pad))
        x = torch.stack(batch).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            feats = model.encode_image(x, backbone)
        feats = feats.to("cpu", torch.float16)
        for image_id, f in zip(chunk, feats, strict=True):
            out[image_id] = f.contiguous()
    return out
