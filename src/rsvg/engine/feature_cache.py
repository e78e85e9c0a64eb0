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
from dataclasses import dataclass

import torch
from torch import Tensor

from rsvg.data.dataset import read_sample_image
from rsvg.data.records import GroundingSample
from rsvg.data.transforms import letterbox, letterbox_geometry, normalize, padding_mask, zoom_letterbox
from rsvg.models.mgvlf import BACKBONE_STRIDE, MGVLF
from rsvg.models.zoom import crop_map, crop_windows, window_origins


def backbone_batch_size(device: torch.device, batch_size: int) -> int:
    """How many images the frozen backbone should take at once when only its maps are wanted: ``batch_size`` on
    accelerators, 1 on a CPU. Lite0's depthwise layers are memory-bound there, and one image's activations stay
    in the CPU caches while a batch's do not (``rsvg bench features`` measures both)."""
    return 1 if device.type == "cpu" else max(1, batch_size)


def encode_images(model: MGVLF, images: Tensor, batch_size: int) -> Tensor:
    """``model.encode_image`` over ``images`` in chunks of :func:`backbone_batch_size`."""
    step = backbone_batch_size(images.device, batch_size)
    if step >= len(images):
        return model.encode_image(images)
    return torch.cat([model.encode_image(images[i : i + step]) for i in range(0, len(images), step)])


def cache_bytes(num_images: int, channels: int, image_size: int) -> int:
    side = -(-image_size // BACKBONE_STRIDE)
    return num_images * channels * side * side * 2


@torch.inference_mode()
def compute_image_features(
    model: MGVLF,
    samples: Sequence[GroundingSample],
    device: torch.device,
    batch_size: int = 8,
    channels_last: bool = False,
) -> dict[str, torch.Tensor]:
    """``image_id → (C5, h, w)`` float16 backbone maps for every image the samples use, computed
    :func:`backbone_batch_size` images at a time."""
    cfg = model.cfg
    images: dict[str, GroundingSample] = {}
    for s in samples:
        images.setdefault(s.image_id, s)
    # A folded copy (BatchNorm merged into the convolutions): the same maps, fewer passes over memory.
    backbone = copy.deepcopy(model.backbone).eval()
    backbone.fold_frozen_batchnorm()
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
            canvas, pad, _ = letterbox(read_sample_image(s), cfg.image_size)
            batch.append(normalize(canvas, model.backbone.mean, model.backbone.std, pad))
        x = torch.stack(batch).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = model.feature_map(backbone(x), x).to("cpu", torch.float16)
        for image_id, f in zip(chunk, feats, strict=True):
            out[image_id] = f.contiguous()
    return out


@dataclass
class ZoomCrops:
    """The second look's training crops (``model.zoom``), encoded once: one row per sample whose target is
    small enough (``zoom_max_side``), a window around it moved by up to ``± zoom_jitter`` input pixels."""

    maps: Tensor  # (N, C16 + 4·C8, g, g) float16, rsvg.models.zoom.crop_map of each crop
    origins: Tensor  # (N, 2) int64: the windows' input-pixel corners (x0, y0)
    rows: dict[int, int]  # sample index -> row of maps / origins

    def for_sample(self, index: int) -> dict[str, Tensor]:
        """The dataset's zoom entries of sample ``index``: zero maps and ``zoom_valid`` False when it has none."""
        row = self.rows.get(index)
        if row is None:
            return {
                "zoom_features": torch.zeros(self.maps.shape[1:]),
                "zoom_origin": torch.zeros(2, dtype=torch.int64),
                "zoom_valid": torch.tensor(False),
            }
        return {
            "zoom_features": self.maps[row].float(),
            "zoom_origin": self.origins[row],
            "zoom_valid": torch.tensor(True),
        }


@torch.inference_mode()
def compute_zoom_crops(
    model: MGVLF, samples: Sequence[GroundingSample], device: torch.device, seed: int = 0
) -> ZoomCrops:
    """Encode the second look's training crops of ``samples`` (see :class:`ZoomCrops`), all crops of an image
    in one backbone call. The jitter comes from ``seed`` and the sample's index: the same crops every run (and
    after a resume). Rows are preallocated: millions of small tensors would fragment the heap."""
    cfg = model.cfg
    if model.second_look is None:
        raise ValueError("compute_zoom_crops needs a model built with model.zoom")
    size, window, scale = cfg.image_size, cfg.zoom_window, cfg.zoom_scale
    chosen: dict[str, list[tuple[GroundingSample, Tensor]]] = {}
    for s in samples:
        params = letterbox_geometry(s.width, s.height, size)
        box = torch.as_tensor(params.box_to_network(torch.tensor(s.box, dtype=torch.float64)), dtype=torch.float32)
        if float((box[2:] - box[:2]).max()) > cfg.zoom_max_side:
            continue
        gen = torch.Generator().manual_seed(seed * 1_000_003 + s.index)
        shift = (torch.rand(2, generator=gen) * 2 - 1) * cfg.zoom_jitter
        chosen.setdefault(s.image_id, []).append((s, (box / size + shift.repeat(2) / size)))
    count = sum(len(v) for v in chosen.values())
    channels = model.zoom_channels
    maps = torch.empty((count, channels, cfg.zoom_grid, cfg.zoom_grid), dtype=torch.float16)
    origins = torch.empty((count, 2), dtype=torch.int64)
    rows: dict[int, int] = {}
    backbone = copy.deepcopy(model.backbone).eval()
    backbone.fold_frozen_batchnorm()
    for items in chosen.values():
        first = items[0][0]
        params = letterbox_geometry(first.width, first.height, size)
        canvas = zoom_letterbox(read_sample_image(first), params, scale)
        corners = window_origins(torch.stack([centre for _, centre in items]), size, window)
        crops, _ = crop_windows(
            canvas.unsqueeze(0).expand(len(items), -1, -1, -1),
            padding_mask(params).unsqueeze(0).expand(len(items), -1, -1),
            corners,
            window,
            scale,
            model.backbone.mean,
            model.backbone.std,
        )
        encoded = crop_map(backbone, crops.to(device)).to("cpu", torch.float16)
        for (s, _), m, corner in zip(items, encoded, corners, strict=True):
            row = len(rows)
            maps[row], origins[row], rows[s.index] = m, corner, row
    return ZoomCrops(maps, origins, rows)
