"""The torch ``Dataset`` over a DIOR-RSVG split: one dict per image / expression / box triplet.

Each sample is what :class:`~rsvg.data.sample_builder.SampleBuilder` builds (image or cached features, padding,
tokens, letterbox, the box in network pixels, the extras the model asks for), plus the annotation::

    orig_box        float64 (4,)        the box in original image pixels (after augmentation, if any)
    query           str                 the expression (spatial words remapped by geometric augmentations)
    image_id        str
    index           int                 global object index (the split files' numbering)
    category        str
    image_features  float32             the cached visual feature map, when the dataset has one

Augmentation randomness comes from a generator seeded by ``(seed, epoch, index)``: the same epoch gives the
same samples whatever the worker count or the order, which makes resumed training repeat exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rsvg.data.check import image_problems
from rsvg.data.dior_rsvg import load_split
from rsvg.data.extras import SampleExtra
from rsvg.data.image_io import read_image_rgb
from rsvg.data.records import DatasetError, GroundingSample
from rsvg.data.sample_builder import SampleBuilder
from rsvg.data.tokenizer import QueryTokenizer
from rsvg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Augmentation


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


def require_samples(dataset: RSVGDataset, why: str) -> None:
    """A :class:`DatasetError` naming the split file and the dataset when ``dataset`` has no sample (an empty split
    would train on nothing, or score nothing and report NaN metrics); ``why`` says what needs the samples."""
    if len(dataset) == 0:
        split_file = dataset.root / f"{dataset.split}.txt"
        raise DatasetError(
            f"{split_file} lists no samples: the {dataset.split} split of the dataset {dataset.root} is empty; {why}"
        )


def box_to_original(box_network: torch.Tensor, letterbox_params: torch.Tensor) -> torch.Tensor:
    """Map (N, 4) network-frame boxes back to original pixels with (N, 4) ``letterbox`` rows of a batch."""
    lb = letterbox_params.to(torch.float64)
    b = box_network.to(torch.float64)
    sx, sy, px, py = lb[:, 0:1], lb[:, 1:2], lb[:, 2:3], lb[:, 3:4]
    return torch.cat([(b[:, 0:1] - px) / sx, (b[:, 1:2] - py) / sy, (b[:, 2:3] - px) / sx, (b[:, 3:4] - py) / sy], 1)


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
        extras: Sequence[SampleExtra] = (),
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.samples: list[GroundingSample] = (
            list(samples) if samples is not None else load_split(self.root, split, class_mapping)
        )
        self.builder = SampleBuilder(image_size, tokenizer, max_tokens, mean, std)
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.load_images = load_images
        self.image_features = image_features
        self._last_image: tuple[Path, torch.Tensor] | None = None  # see _decode
        if augment is not None and not load_images:
            raise ValueError("augmentation needs the images: load_images=False only works without augment")
        for extra in extras:
            self.add_extra(extra)

    @property
    def image_size(self) -> int:
        return self.builder.image_size

    @property
    def tokenizer(self) -> QueryTokenizer | None:
        return self.builder.tokenizer

    @property
    def max_tokens(self) -> int:
        return self.builder.max_tokens

    def add_extra(self, extra: SampleExtra) -> None:
        """Have every sample carry what ``extra`` adds (:meth:`SampleBuilder.add_extra`)."""
        if self.augment is not None and not extra.supports_augmentation:
            raise ValueError(
                f"{extra.key} does not follow augmentation (a model part that needs it is on): set data.augment null"
            )
        self.builder.add_extra(extra, self.samples)

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
        image = self._decode(s)
        box = torch.tensor(s.box, dtype=torch.float64)
        query = s.description
        if self.augment is not None:
            state = np.random.SeedSequence([self.seed, epoch, s.index]).generate_state(1, np.uint64)[0]
            gen = torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)
            image, box, query = self.augment(image, box, query, gen)
        out, _ = self.builder.from_image(image, query, box=box, sample=s)
        out.update(orig_box=box.to(torch.float64), query=query, image_id=s.image_id, index=s.index, category=s.category)
        return out

    def _decode(self, s: GroundingSample) -> torch.Tensor:
        """The sample's image as uint8 ``(3, H, W)``. Without augmentation the last image decoded is kept (one per
        process), so an image's expressions, which evaluation batches keep together, decode it once; nothing
        writes to it (letterboxing makes a new canvas)."""
        if self.augment is None and self._last_image is not None and self._last_image[0] == s.image_path:
            return self._last_image[1]
        rgb = read_image_rgb(s.image_path)
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()
        if self.augment is None:
            self._last_image = (s.image_path, image)
        return image

    def _without_image(self, s: GroundingSample) -> dict:
        """Everything but the pixels, with the geometry taken from the annotation's image size (for training
        on cached backbone features)."""
        out = self.builder.from_annotation(s, lambda: read_sample_image(s))
        out.update(
            orig_box=torch.tensor(s.box, dtype=torch.float64),
            query=s.description,
            image_id=s.image_id,
            index=s.index,
            category=s.category,
        )
        if self.image_features is not None:
            out["image_features"] = self.image_features[s.image_id].float()
        return out

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
