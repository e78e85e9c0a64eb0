"""The options of MGVLF (``model.arch: mgvlf``), the paper's model: one dataclass over :class:`ModelConfig`.

The switches select the paper's variants (Table III):

=========================  ==========  ===============================================
variant                    ``mlcm``    ``memory`` (what the MLCM decoder attends to)
=========================  ==========  ===============================================
(a) TransVG-style baseline  false       –
(b) multi-scale visual      true        [visual]
(c) + sentence level        true        [visual, sentence]
(d) + word level            true        [visual, words]
(e) text only               true        [words, sentence]
MGVLF                       true        [visual, words, sentence]
=========================  ==========  ===============================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig, check_at_least

__all__ = ["MEMORY_PARTS", "MGVLFConfig"]

MEMORY_PARTS = ("visual", "words", "sentence")


@dataclass
class MGVLFConfig(ModelConfig):
    """Every architectural choice of MGVLF, the baseline and the ablations."""

    hidden_dim: int = 256  # D
    heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    mlcm: bool = True
    memory: list[str] = field(default_factory=lambda: list(MEMORY_PARTS))
    mlcm_decoder_layers: int = 1  # L (the reference code uses 1; the paper leaves it open)
    visual_encoder_layers: int = 6  # the MLCM self-attention encoder (the baseline's visual encoder)
    fusion_layers: int = 6
    extra_levels: int = 3  # conv6, conv7, conv8 of the reference: 20x20 -> 9x9 -> 4x4 -> 1x1 at 640
    extra_mid_channels: int = 128
    extra_padding: int = 0  # 0 as the reference (needs a 20x20 map); 1 for smaller inputs
    detr_encoder: bool = True  # map a DETR checkpoint's encoder onto the visual encoder when one is given
    detr_fusion: bool = True  # ... and onto the fusion encoder too, as the reference does (D = 256, 6 layers)
    # --- Not in the paper (off in its configs): for small objects, small data and short runs (the lite config) ---
    # Fold the backbone's stride-16 map into the stride-32 tokens (space-to-depth: each token also gets the four
    # stride-16 cells it covers), so small objects keep their detail without 4x more tokens.
    stride16_detail: bool = False
    # Add each token's position encoding to the token itself, not only to attention queries and keys, so that
    # absolute position reaches the values and hence the [REG] output the box is read from.
    positions_in_tokens: bool = False
    # LayerNorm over the channels of the backbone map before the projections: puts the visual tokens on the scale
    # of the text tokens (an un-normalised CNN map is ~25x larger), so the text terms of the MLCM's cross-attention
    # are not drowned in the residual stream.
    visual_norm: bool = False
    # LayerNorm over the text encoder's word and sentence features before every use: a frozen MiniLM's pooler
    # output has a norm of ~1.4 over 384 dimensions, so every layer reading it learns ~10x slower than one reading
    # standardised inputs.
    text_norm: bool = False
    # Where the box comes from. "reg" (the paper): an MLP on the fusion's [REG] token. "cells": every visual token
    # of the fusion scores itself as the referred object's cell and regresses a box around its cell; the box of
    # the best-scoring cell is the answer (one-stage detection style: converges in far fewer steps).
    head: str = "reg"
    # The [REG] token starts as the learned token plus a projection of the query's sentence feature, so that its
    # attention in the first fusion layer can already look for what the query names (the paper's [REG] token is
    # the same for every query and learns what to look for only through the fusion's mixing).
    reg_from_query: bool = False
    # The [REG] box's centre is where the [REG] token looks: the average of the visual cells' centres weighted by its
    # attention in the last fusion layer, moved by at most one cell by the MLP, which also gives the size. The
    # centre loss then reaches the attention directly instead of only through the values it mixes.
    reg_centre_from_attention: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, _AT_LEAST)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        bad = [m for m in self.memory if m not in MEMORY_PARTS]
        if bad:
            raise ValueError(f"model.memory: unknown parts {bad}; choose from {list(MEMORY_PARTS)}")
        if self.mlcm and not self.memory:
            raise ValueError("model.memory must name at least one part when model.mlcm is true")
        if self.hidden_dim % self.heads:
            raise ValueError(f"model.hidden_dim {self.hidden_dim} must be divisible by model.heads {self.heads}")
        if self.head not in ("reg", "cells"):
            raise ValueError(f"model.head must be reg or cells, got {self.head!r}")

    @property
    def multiscale(self) -> bool:
        """Whether the extra convolution levels are computed (only the MLCM memory uses them)."""
        return self.mlcm and "visual" in self.memory and self.extra_levels > 0


# the smallest value of each integer option that builds a model
_AT_LEAST = {
    "hidden_dim": 1,
    "heads": 1,
    "ffn_dim": 1,
    "mlcm_decoder_layers": 0,
    "visual_encoder_layers": 0,
    "fusion_layers": 1,
    "extra_levels": 0,
    "extra_mid_channels": 1,
    "extra_padding": 0,
}
