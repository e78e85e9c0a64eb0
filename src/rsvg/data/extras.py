"""What a dataset sample carries beyond image, box and query, for the model parts that ask for it.

A model's stages (:mod:`rsvg.models.stages`) name what they need; the dataset adds it to each sample through one
interface, :class:`SampleExtra`, whatever the stage:

* :class:`ImageObjects` — every object the split annotates in the sample's image (``objects``: ``(K, 5)`` rows
  ``(DIOR class index, x1, y1, x2, y2)`` in network pixels) and the referred object's class (``category_index``);
* :class:`ZoomCanvas` — the image letterboxed ``scale`` times finer (``zoom_image``, uint8);
* precomputed per-sample tensors (e.g. encoded training crops) — any object with the same ``add`` method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch

from rsvg.data.categories import CLASS_INDEX
from rsvg.data.dior_rsvg import unknown_class_message
from rsvg.data.records import DatasetError, GroundingSample
from rsvg.data.transforms import LetterboxParams, zoom_letterbox


class SampleExtra(Protocol):
    """Adds entries to a sample dict. ``sample`` is the annotation the sample comes from (None for a user's image
    at inference); ``image()`` gives its decoded uint8 ``(3, H, W)`` image (decoded on first use)."""

    #: a short name (two providers with the same key are the same provider)
    key: str
    #: False when what it adds would not follow a geometric augmentation
    supports_augmentation: bool

    def bind(self, samples: Sequence[GroundingSample]) -> None: ...

    def add(
        self, out: dict, sample: GroundingSample | None, params: LetterboxParams, image: Callable[[], torch.Tensor]
    ) -> None: ...


class ImageObjects:
    """Every distinct (class, box) the split annotates in the sample's image, and the referred object's class."""

    key = "image_objects"
    supports_augmentation = False  # the transforms move the referred box, not the image's other objects

    def __init__(self) -> None:
        self.by_image: dict[str, torch.Tensor] = {}

    def bind(self, samples: Sequence[GroundingSample]) -> None:
        rows: dict[str, dict[tuple, None]] = {}
        for s in samples:
            unknown = unknown_class_message(s.category)
            if unknown is not None:  # the words rsvg check-data uses for it
                raise DatasetError(f"{s.annotation_path} [object {s.object_in_file}] (index {s.index}): {unknown}")
            rows.setdefault(s.image_id, {})[(CLASS_INDEX[s.category], *s.box)] = None
        self.by_image = {image_id: torch.tensor(list(r), dtype=torch.float64) for image_id, r in rows.items()}

    def add(
        self, out: dict, sample: GroundingSample | None, params: LetterboxParams, image: Callable[[], torch.Tensor]
    ) -> None:
        if sample is None:
            raise ValueError("the image's objects come from its annotation: there is none for this image")
        objects = self.by_image[sample.image_id]
        boxes = torch.as_tensor(params.box_to_network(objects[:, 1:]), dtype=torch.float32)
        out["objects"] = torch.cat([objects[:, :1].float(), boxes.reshape(-1, 4)], 1)
        out["category_index"] = torch.tensor(CLASS_INDEX[sample.category], dtype=torch.int64)


def normalised_objects(batch: Mapping[str, Any], image_size: int) -> list[torch.Tensor]:
    """The image objects of each sample of a batch (:class:`ImageObjects`), ``(K, 5)`` rows ``(class, x1,
    y1, x2, y2)`` with boxes normalised to the network input."""
    if "objects" not in batch:
        raise ValueError("this model trains on the image's annotated objects: the batch has no 'objects'")
    objects = batch["objects"]
    scale = torch.tensor([1.0, *(4 * [1.0 / image_size])])
    return [o.float() * scale.to(o.device) for o in objects]


class ZoomCanvas:
    """The sample's image letterboxed ``scale`` times finer than the network input (same layout)."""

    key = "zoom_canvas"
    supports_augmentation = False  # one canvas per image, reused for its expressions

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self._memo: tuple[str, torch.Tensor] | None = None  # the last image's canvas

    def bind(self, samples: Sequence[GroundingSample]) -> None:
        self._memo = None

    def add(
        self, out: dict, sample: GroundingSample | None, params: LetterboxParams, image: Callable[[], torch.Tensor]
    ) -> None:
        if sample is None:  # a user's image
            out["zoom_image"] = zoom_letterbox(image(), params, self.scale)
            return
        # a split lists an image's expressions one after another: decode and resize once for all of them
        if self._memo is None or self._memo[0] != sample.image_id:
            self._memo = (sample.image_id, zoom_letterbox(image(), params, self.scale))
        out["zoom_image"] = self._memo[1]


def unique_extras(extras: Sequence[SampleExtra]) -> list[SampleExtra]:
    """``extras`` without repeated keys (the first of each kept), in order."""
    seen: dict[str, SampleExtra] = {}
    for e in extras:
        seen.setdefault(e.key, e)
    return list(seen.values())
