"""What a core model hands the stages that wrap it (:mod:`rsvg.models.stages`).

* :class:`CoreFacts` — at build time: its input size, widths and the backbone's channels per stride, from which
  each stage sizes its layers;
* :class:`CoreState` — per batch: what its forward computed on the way to the answer (the fusion's visual
  tokens, the text features, the masks), which the stages read to change or check that answer.

Both sit at the bottom of the import graph with :mod:`rsvg.models.outputs`: a core model fills them without
knowing any stage, and the stages read them without importing a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["CoreFacts", "CoreState"]


@dataclass(frozen=True)
class CoreFacts:
    """A core model's sizes, for the stages built around it."""

    image_size: int  # side of the square network input, pixels
    dim: int  # width of the visual tokens the core hands over
    text_dim: int  # width of the text encoder's features
    heads: int  # attention heads of the core's transformer layers (the stages' layers use as many)
    ffn_dim: int  # their feed-forward width
    max_tokens: int  # text tokens, special tokens included
    level_channels: dict[int, int]  # the backbone's channels per stride it returns


@dataclass
class CoreState:
    """What a core model's forward computed for one batch, for the stages that run after it."""

    padding_mask: Tensor  # (B, S, S) True on letterbox padding
    visual_padding: Tensor  # (B, h*w) True on padding tokens
    grid: tuple[int, int]  # (h, w) of the visual tokens
    tokens: Tensor  # (B, h*w, D) the visual tokens the answer was read from
    words: Tensor  # (B, Nt, T) the text encoder's word features, before the core's own normalisation
    sentence: Tensor  # (B, T) its sentence feature, likewise
    normalised_sentence: Tensor  # (B, T) the sentence feature as the core read it
    text_padding: Tensor  # (B, Nt) True on padding
    need_attention: bool
    detail: Tensor | None = None  # (B, 4·C16, h, w) the backbone's stride-16 map folded into the stride-32 grid
