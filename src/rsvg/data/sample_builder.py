"""One sample as the model reads it, built the same way for training, evaluation and inference.

A sample dict holds::

    image           float32 (3, S, S)   letterboxed, normalised with the backbone's mean/std, padding = 0
    padding_mask    bool    (S, S)      True on letterbox padding
    letterbox       float64 (4,)        (scale_x, scale_y, pad_x, pad_y): network = original * scale + pad
    orig_size       int64   (2,)        original (height, width)
    input_ids       int64   (Nt,)       token ids (with a tokenizer)
    attention_mask  int64   (Nt,)       1 = real token, 0 = padding (with a tokenizer)
    box             float32 (4,)        (x1, y1, x2, y2) in network (canvas) pixels, when a box is known
    ...                                 what the extras add (:mod:`rsvg.data.extras`: the model's stages ask)

:class:`~rsvg.data.dataset.RSVGDataset` adds the annotation's fields; :class:`~rsvg.inference.Grounder` uses the
same builder for a user's image and query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from rsvg.data.extras import SampleExtra
from rsvg.data.records import GroundingSample
from rsvg.data.tokenizer import QueryTokenizer
from rsvg.data.transforms import LetterboxParams, letterbox, letterbox_geometry, normalize, padding_mask


def letterbox_row(params: LetterboxParams) -> torch.Tensor:
    return torch.tensor([params.scale_x, params.scale_y, params.pad_x, params.pad_y], dtype=torch.float64)


class SampleBuilder:
    """Letterbox, normalisation, tokens and extras of one sample, for a model's input size and text encoder."""

    def __init__(
        self,
        image_size: int,
        tokenizer: QueryTokenizer | None,
        max_tokens: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        self.image_size = image_size
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.extras: list[SampleExtra] = []

    def add_extra(self, extra: SampleExtra, samples: Sequence[GroundingSample] = ()) -> None:
        """Have every sample carry what ``extra`` adds, bound to ``samples`` (the set's annotations); a second
        extra with the same key is ignored."""
        if any(e.key == extra.key for e in self.extras):
            return
        extra.bind(samples)
        self.extras.append(extra)

    def from_image(
        self,
        image: torch.Tensor,
        query: str,
        *,
        box: torch.Tensor | None = None,
        sample: GroundingSample | None = None,
        truncate: bool = True,
    ) -> tuple[dict, LetterboxParams]:
        """The sample of a uint8 ``(3, H, W)`` image and its query (``box`` in original pixels, when known;
        ``sample`` the annotation it comes from, which some extras read). ``truncate=False`` refuses a query
        longer than the model's ``max_tokens`` instead of cutting it."""
        height, width = int(image.shape[1]), int(image.shape[2])
        canvas, pad_mask, params = letterbox(image, self.image_size)
        out = {
            "image": normalize(canvas, self.mean, self.std, pad_mask),
            "padding_mask": pad_mask,
            "letterbox": letterbox_row(params),
            "orig_size": torch.tensor([height, width], dtype=torch.int64),
        }
        if box is not None:
            out["box"] = torch.as_tensor(params.box_to_network(box), dtype=torch.float32)
        self.add_tokens(out, query, truncate)
        self.add_extras(out, sample, params, lambda: image)
        return out, params

    def from_annotation(self, sample: GroundingSample, image: Callable[[], torch.Tensor]) -> dict:
        """Everything but the pixels, the geometry taken from the annotation's image size (for cached backbone
        features); ``image()`` decodes the image for an extra that needs it."""
        params = letterbox_geometry(sample.width, sample.height, self.image_size)
        box = torch.tensor(sample.box, dtype=torch.float64)
        out = {
            "padding_mask": padding_mask(params),
            "letterbox": letterbox_row(params),
            "orig_size": torch.tensor([sample.height, sample.width], dtype=torch.int64),
            "box": torch.as_tensor(params.box_to_network(box), dtype=torch.float32),
        }
        self.add_tokens(out, sample.description, True)
        self.add_extras(out, sample, params, image)
        return out

    def add_tokens(self, out: dict, query: str, truncate: bool = True) -> None:
        if self.tokenizer is not None:
            ids, mask = self.tokenizer.encode(query, self.max_tokens, truncate=truncate)
            out["input_ids"] = torch.tensor(ids, dtype=torch.int64)
            out["attention_mask"] = torch.tensor(mask, dtype=torch.int64)

    def add_extras(
        self,
        out: dict,
        sample: GroundingSample | None,
        params: LetterboxParams,
        image: Callable[[], torch.Tensor],
    ) -> None:
        for extra in self.extras:
            extra.add(out, sample, params, image)
