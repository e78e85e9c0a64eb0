"""What a dataset sample carries beyond image, box and query, for the model parts that ask for it.

A model (:meth:`rsvg.models.interface.GroundingModel.sample_extras`) names what its samples need; the dataset adds
it to each sample through one interface, :class:`SampleExtra`, whatever the model part that reads it. The extras
themselves live with the part that needs them (e.g. the stages' in :mod:`rsvg.models.stages`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from rsvg.data.records import GroundingSample
from rsvg.data.transforms import LetterboxParams


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


def unique_extras(extras: Sequence[SampleExtra]) -> list[SampleExtra]:
    """``extras`` without repeated keys (the first of each kept), in order."""
    seen: dict[str, SampleExtra] = {}
    for e in extras:
        seen.setdefault(e.key, e)
    return list(seen.values())
