"""The torch ``Dataset`` over a DIOR-RSVG split: one dict per image / expression / box triplet.

Each sample::

    image           float32 (3, S, S)   letterboxed, normalised with the backbone's mean/std, padding = 0
    padding_mask    bool    (S, S)      True on letterbox padding
    box             float32 (4,)        (x1, y1, x2, y2) in network (canvas) pixels
    orig_box        float64 (4,)        the box in original image pixels (after augmentation, if any)
    orig_size       int64   (2,)        original (height, width)
    letterbox       float64 (4,)        (scale_x, scale_y, pad_x, pad_y): network = original * scale + pad
    query           str                 the expression (spatial words remapped by geometric augmentations)
    input_ids       int64   (Nt,)       token ids (only with a tokenizer)
    attention_mask  int64   (Nt,)       1 = real token, 0 = padding (only with a tokenizer)
    image_id        str
    index           int                 global object index (the split files' numbering)
    category        str
    zoom_image      uint8   (3, S·k, S·k) the image letterboxed k = zoom_scale times finer (with ``zoom_scale``:
                                        what the second look of ``model.zoom`` reads at inference)
    zoom_features, zoom_origin, zoom_valid  a training crop's maps, window corner and presence (with
                                        ``zoom_crops``: :class:`~rsvg.engine.feature_cache.ZoomCrops`)

Augmentation randomness comes from a generator seeded by ``(seed, epoch, index)``: the same epoch gives the
same samples whatever the worker count or the order, which makes resumed training repeat exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from rsvg.data.categories import CLASS_INDEX
from rsvg.data.check import image_problems
from rsvg.data.dior_rsvg import load_split
from rsvg.data.image_io import read_image_rgb
from rsvg.data.records import DatasetError, GroundingSample
from rsvg.data.tokenizer import QueryTokenizer
from rsvg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Augmentation,
    LetterboxParams,
    letterbox,
    letterbox_geometry,
    normalize,
    padding_mask,
    zoom_letterbox,
)

ZOOM_WITH_AUGMENT = (
    "model.zoom does not work with augmentation (its training crops are encoded once): set data.augment null or "
    "model.zoom false"
)


class ZoomCropSource(Protocol):
    """What the dataset needs of the second look's training crops (:class:`rsvg.engine.feature_cache.ZoomCrops`)."""

    def for_sample(self, index: int) -> dict[str, torch.Tensor]: ...


def read_sample_image(s: GroundingSample) -> torch.Tensor:
    """The sample's image as a uint8 ``(3, H, W)`` tensor; a :class:`DatasetError` naming both files when its size
    is not the one the annotation's ``<size>`` gives (the boxes would not fit it)."""
    rgb = read_image_rgb(s.image_path)
    if rgb.shape[:2] != (s.height, s.width):
        raise DatasetError(
            f"{s.annotation_path}: <size> says {s.width}x{s.height} but {s.image_path} is {rgb.shape[1]}x{rgb.shape[0]}"
        )
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)


def verify_images(samples: Sequence[GroundingSample]) -> None:
    """Open every distinct image of ``samples`` before any work starts (:func:`~rsvg.data.check.image_problems`:
    header and end only, no decoding): a :class:`DatasetError` names the first missing, empty, truncated or
    unreadable image, or one whose size is not the one its annotation's ``<size>`` gives (its boxes would be scored
    against the wrong frame), and says how many there are."""
    problems = image_problems(samples)
    if problems:
        first = f"{problems[0].file}: {problems[0].message}"
        more = f" (and {len(problems) - 1} more image(s): `rsvg check-data` lists them all)" if problems[1:] else ""
        raise DatasetError(first + more)


def box_to_original(box_network: torch.Tensor, letterbox_params: torch.Tensor) -> torch.Tensor:
    """Map (N, 4) network-frame boxes back to original pixels with (N, 4) ``letterbox`` rows of a batch."""
    lb = letterbox_params.to(torch.float64)
    b = box_network.to(torch.float64)
    sx, sy, px, py = lb[:, 0:1], lb[:, 1:2], lb[:, 2:3], lb[:, 3:4]
    return torch.cat([(b[:, 0:1] - px) / sx, (b[:, 1:2] - py) / sy, (b[:, 2:3] - px) / sx, (b[:, 3:4] - py) / sy], 1)


def _objects_by_image(samples: Sequence[GroundingSample]) -> dict[str, torch.Tensor]:
    """``image_id → (K, 5)`` float64 rows ``(class index, x1, y1, x2, y2)``, one per distinct (class, box)."""
    rows: dict[str, dict[tuple, None]] = {}
    for s in samples:
        if s.category not in CLASS_INDEX:
            raise DatasetError(f"{s.annotation_path}: category {s.category!r} is not a DIOR class (model.object_head)")
        rows.setdefault(s.image_id, {})[(CLASS_INDEX[s.category], *s.box)] = None
    return {image_id: torch.tensor(list(r), dtype=torch.float64) for image_id, r in rows.items()}


class RSVGDataset(Dataset):
    """Samples of one split of a DIOR-RSVG-layout folder (``root``) in split-file order."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        image_size: int = 640,
        tokenizer: QueryTokenizer | None = None,
        max_tokens: int = 40,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        augment: Augmentation | None = None,
        seed: int = 0,
        class_mapping: Mapping[str, str] | None = None,
        samples: Sequence[GroundingSample] | None = None,
        load_images: bool = True,
        image_features: Mapping[str, torch.Tensor] | None = None,
        image_objects: bool = False,
        zoom_scale: int | None = None,
        zoom_crops: ZoomCropSource | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.samples: list[GroundingSample] = (
            list(samples) if samples is not None else load_split(self.root, split, class_mapping)
        )
        self.image_size = image_size
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.load_images = load_images
        self.image_features = image_features
        if augment is not None and not load_images:
            raise ValueError("augmentation needs the images: load_images=False only works without augment")
        if augment is not None and image_objects:
            raise ValueError(
                "image_objects (model.object_head) does not work with augmentation yet (the transforms move the "
                "referred box, not the image's other objects): set data.augment null or model.object_head false"
            )
        if augment is not None and (zoom_scale is not None or zoom_crops is not None):
            raise ValueError(ZOOM_WITH_AUGMENT)
        self.zoom_scale = zoom_scale
        self.zoom_crops = zoom_crops
        self._zoom_memo: tuple[str, torch.Tensor] | None = None  # the last image's zoom canvas
        # image_id -> (K, 5) rows (DIOR class index, x1, y1, x2, y2 in original pixels): every distinct object
        # this split annotates in the image, for the object head's loss ("objects" in each sample)
        self.image_objects = _objects_by_image(self.samples) if image_objects else None

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation stream (call once per epoch, like ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Sample ``i``; a key ``(epoch, i)`` selects the augmentation stream of that epoch explicitly (what the
        training sampler yields, so persistent loader workers need no epoch update)."""
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        s = self.samples[i]
        if not self.load_images:
            return self._without_image(s)
        rgb = read_image_rgb(s.image_path)
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()
        box = torch.tensor(s.box, dtype=torch.float64)
        query = s.description
        if self.augment is not None:
            state = np.random.SeedSequence([self.seed, epoch, s.index]).generate_state(1, np.uint64)[0]
            gen = torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)
            image, box, query = self.augment(image, box, query, gen)
        height, width = int(image.shape[1]), int(image.shape[2])
        canvas, pad_mask, params = letterbox(image, self.image_size)
        out = {
            "image": normalize(canvas, self.mean, self.std, pad_mask),
            "padding_mask": pad_mask,
            "box": torch.as_tensor(params.box_to_network(box), dtype=torch.float32),
            "orig_box": box.to(torch.float64),
            "orig_size": torch.tensor([height, width], dtype=torch.int64),
            "letterbox": torch.tensor(
                [params.scale_x, params.scale_y, params.pad_x, params.pad_y], dtype=torch.float64
            ),
            "query": query,
            "image_id": s.image_id,
            "index": s.index,
            "category": s.category,
        }
        self._add_objects(out, params)
        self._add_tokens(out)
        if self.zoom_scale is not None:
            out["zoom_image"] = zoom_letterbox(image, params, self.zoom_scale)
        self._add_zoom_crop(out)
        return out

    def _without_image(self, s: GroundingSample) -> dict:
        """Everything but the pixels, with the geometry taken from the annotation's image size (for training
        on cached backbone features)."""
        params = letterbox_geometry(s.width, s.height, self.image_size)
        box = torch.tensor(s.box, dtype=torch.float64)
        out = {
            "padding_mask": padding_mask(params),
            "box": torch.as_tensor(params.box_to_network(box), dtype=torch.float32),
            "orig_box": box,
            "orig_size": torch.tensor([s.height, s.width], dtype=torch.int64),
            "letterbox": torch.tensor(
                [params.scale_x, params.scale_y, params.pad_x, params.pad_y], dtype=torch.float64
            ),
            "query": s.description,
            "image_id": s.image_id,
            "index": s.index,
            "category": s.category,
        }
        if self.image_features is not None:
            out["image_features"] = self.image_features[s.image_id].float()
        self._add_objects(out, params)
        self._add_tokens(out)
        if self.zoom_scale is not None:
            out["zoom_image"] = self._zoom_canvas(s, params)
        self._add_zoom_crop(out)
        return out

    def _zoom_canvas(self, s: GroundingSample, params: LetterboxParams) -> torch.Tensor:
        """The zoom canvas of ``s``'s image, decoded once for consecutive samples of the same image (a split
        lists an image's expressions one after another)."""
        if self._zoom_memo is not None and self._zoom_memo[0] == s.image_id:
            return self._zoom_memo[1]
        canvas = zoom_letterbox(read_sample_image(s), params, self.zoom_scale or 1)
        self._zoom_memo = (s.image_id, canvas)
        return canvas

    def _add_zoom_crop(self, out: dict) -> None:
        if self.zoom_crops is not None:
            out.update(self.zoom_crops.for_sample(out["index"]))

    def _add_objects(self, out: dict, params: LetterboxParams) -> None:
        if self.image_objects is not None:
            objects = self.image_objects[out["image_id"]]
            boxes = torch.as_tensor(params.box_to_network(objects[:, 1:]), dtype=torch.float32)
            out["objects"] = torch.cat([objects[:, :1].float(), boxes.reshape(-1, 4)], 1)
            out["category_index"] = torch.tensor(CLASS_INDEX[out["category"]], dtype=torch.int64)

    def query_tokens(self) -> list[list[int]]:
        """Every sample's expression as unpadded token ids, before any augmentation (what the trainer encodes once
        with a frozen text encoder)."""
        if self.tokenizer is None:
            raise ValueError("query_tokens needs the dataset's tokenizer")
        rows = []
        for s in self.samples:
            ids, mask = self.tokenizer.encode(s.description, self.max_tokens)
            rows.append(ids[: sum(mask)])
        return rows

    def _add_tokens(self, out: dict) -> None:
        if self.tokenizer is not None:
            ids, mask = self.tokenizer.encode(out["query"], self.max_tokens)
            out["input_ids"] = torch.tensor(ids, dtype=torch.int64)
            out["attention_mask"] = torch.tensor(mask, dtype=torch.int64)
