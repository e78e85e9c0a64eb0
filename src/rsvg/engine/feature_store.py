"""Frozen-backbone features kept on disk, so that runs with the same frozen encoder compute them once.

A benchmark trains many configs on one dataset, and several read the same frozen EfficientNet-Lite0 at the same
input size in the same way (FAOA's three rows, LBYL-Net's two, TransVG and VLTVG, MGVLF and its baseline).
``train.feature_cache_dir`` names a folder where :class:`~rsvg.engine.trainer.Trainer` keeps each set of maps under
a key (:func:`feature_key`): the method that reads the backbone, the input size and normalisation, the autocast
they are computed under, the frozen backbone's weights and the images (paths and sizes). A run whose key is there
loads the maps instead of computing them. The key does not see every option of how a family turns the backbone's
maps into its visual input, so a loaded set is also checked against one image computed afresh (:func:`matches`)
and recomputed when they differ.
Files are written whole (temporary file, then rename): an interrupted write never leaves a set that loads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from rsvg.data.records import GroundingSample
from rsvg.data.xmlio import atomic_write_with
from rsvg.models.interface import GroundingModel

__all__ = ["feature_key", "load_features", "matches", "save_features"]

#: the format of the files; a file of another version is not read
VERSION = 1


def feature_key(model: GroundingModel, samples: Iterable[GroundingSample], amp: str = "off") -> str:
    """A hash of what decides a frozen backbone's maps of ``samples``' images: the method that reads them
    (``encode_image``), input size, normalisation, visual channels, the autocast they are computed under
    (``amp``: ``off`` or ``bf16``), the backbone's weights and buffers, and each image's path and file size."""
    digest = hashlib.sha256()
    reader = type(model).encode_image  # families that share it (TransVG's and VLTVG's) share their maps
    digest.update(f"v{VERSION};{reader.__module__}.{reader.__qualname__};{model.image_size};{model.mean};"
                  f"{model.std};{model.feature_channels};".encode())  # fmt: skip
    if amp != "off":  # fp32 maps keep their keys: sets stored by earlier versions still load
        digest.update(f"amp={amp};".encode())
    for name, tensor in sorted(model.backbone.state_dict().items()):
        digest.update(name.encode() + str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    for path in sorted({str(s.image_path) for s in samples}):
        size = os.stat(path).st_size if os.path.exists(path) else -1
        digest.update(f"{path}:{size};".encode())
    return digest.hexdigest()[:24]


def _file(folder: Path, key: str) -> Path:
    return folder / f"features-{key}.pt"


def load_features(folder: Path, key: str) -> dict[str, Tensor] | None:
    """The maps stored under ``key`` in ``folder`` (``image_id → (C, h, w)`` float16), or ``None`` when there are
    none or the file cannot be read as such (it is then recomputed and replaced)."""
    path = _file(folder, key)
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("version") != VERSION:
            return None
        ids, maps = saved["ids"], saved["maps"]
        if not isinstance(ids, list) or not isinstance(maps, Tensor) or len(ids) != len(maps):
            return None
    except Exception:  # a damaged or foreign file: treated as absent
        return None
    return dict(zip(ids, maps.unbind(0), strict=True))


def save_features(folder: Path, key: str, features: dict[str, Tensor]) -> Path:
    """Store ``features`` (maps of one shape) under ``key`` in ``folder``, written whole; the file's path."""
    ids = list(features)
    maps = torch.stack([features[i] for i in ids]) if ids else torch.empty(0)
    path = _file(folder, key)
    atomic_write_with(path, lambda f: torch.save({"version": VERSION, "ids": ids, "maps": maps}, f))
    return path


def matches(stored: Tensor, fresh: Tensor, tolerance: float = 1e-2) -> bool:
    """Whether a stored map and one computed afresh are the same map: equal shapes and every value within
    ``tolerance`` of the larger magnitude (float16 storage and another machine's kernels differ by far less;
    another family's visual input, or other weights, by far more)."""
    if stored.shape != fresh.shape:
        return False
    a, b = stored.float(), fresh.float()
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-6)
    return float((a - b).abs().max()) <= tolerance * scale
