"""The image's annotated objects, a sample extra for the stages that train on them (object head, refinement).

:class:`ImageObjects` adds every object the split annotates in the sample's image (``objects``: ``(K, 5)`` rows
``(DIOR class index, x1, y1, x2, y2)`` in network pixels) and the referred object's class (``category_index``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from rsvg.data.categories import CLASS_INDEX
from rsvg.data.dior_rsvg import unknown_class_message
from rsvg.data.records import DatasetError, GroundingSample
from rsvg.data.transforms import LetterboxParams

__all__ = ["ImageObjects", "example_objects", "normalised_objects"]


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


def example_objects(sample: dict[str, Any], index: int, image_size: int) -> None:
    """What :class:`ImageObjects` adds, for a synthetic benchmark sample with a ``box``: the box's object (class
    ``index`` mod 20) and one more, and the box's class."""
    if "objects" in sample:
        return
    category = index % len(CLASS_INDEX)
    other = torch.tensor([0.7, 0.6, 0.8, 0.75]) * image_size
    box = sample["box"].float()
    sample["objects"] = torch.stack(
        [torch.cat([torch.tensor([float(category)]), box]), torch.cat([torch.tensor([0.0]), other])]
    )
    sample["category_index"] = torch.tensor(category)
