"""The options of ZSGNet (``model.arch: zsgnet``): Sadhu et al., "Zero-Shot Grounding of Objects from Natural Language
Queries", ICCV 2019, as its reference implementation builds it (TheShadow29/zsgnet-pytorch, ``code/mdl.py``,
``code/fpn_resnet.py``, ``code/anchors.py``, ``code/loss.py`` and ``configs/cfg.json``).

Its defaults are the reference's ResNet-50 + FPN model: a 300-px input read as pixels / 255 (the reference's mean and
standard deviation normalisation is commented out), queries of up to 50 words as fixed 300-d word vectors through a
BiLSTM of 128 per direction, 9 anchors (ratios 1/2, 1, 2 × 4·{1, 2^(1/3), 2^(2/3)} cells) on each of six maps, the
shared attention and regression head on ``[visual ‖ language ‖ cell centre]``, and the loss: focal binary
cross-entropy (α 0.25, γ 2) over anchors with IoU > 0.6 or the best one, plus SmoothL1 on their regressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig, check_at_least

__all__ = ["ZSGNetConfig"]


@dataclass
class ZSGNetConfig(ModelConfig):
    """Every architectural and loss choice of ZSGNet (Table II's ResNet-50 row, and narrower widths for the CPU
    config)."""

    #: the reference's 300-px input gives maps of 38, 19, 10, 5, 3 and 1 cells: any size builds
    size_multiple: ClassVar[int] = 1

    arch: str = "zsgnet"
    backbone: str = "resnet50"
    image_size: int = 300  # resize_img [300, 300]
    max_tokens: int = 50  # the phrase padded to 50 words
    # the fixed word vectors: a GloVe or word2vec text file (one word and its numbers per line), "learn" (trained
    # from random, only when asked) or "random" (fixed random vectors: shape and speed checks only)
    word_vectors: str | None = None
    vocabulary: list[str] = field(default_factory=list)  # the training split's words, filled by rsvg train
    emb_dim: int = 300
    lstm_dim: int = 128  # per direction
    fpn_dim: int = 256  # the FPN's maps, and the head's width
    head_convs: int = 5  # 3x3 conv + ReLU layers before the head's output conv
    anchor_ratios: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    anchor_scales: list[float] = field(default_factory=lambda: [1.0, 2 ** (1 / 3), 2 ** (2 / 3)])
    anchor_cells: float = 4.0  # scale_factor: the scales are in multiples of this many cells
    match_threshold: float = 0.6  # anchors over this IoU with the target are positives (and the best one)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_weight: float = 1.0  # lamb_reg: the regression term's weight
    final_bias: float = -4.0  # the attention logits' initial bias

    def __post_init__(self) -> None:
        super().__post_init__()
        lows = {"max_tokens": 1, "emb_dim": 1, "lstm_dim": 1, "fpn_dim": 1, "head_convs": 1}
        check_at_least(self, lows)
        if self.image_size < 64:
            raise ConfigError(f"model.image_size must be at least 64 (six maps down to 1x1), got {self.image_size}")
        if not self.anchor_ratios or not self.anchor_scales or min(self.anchor_ratios + self.anchor_scales) <= 0:
            raise ConfigError("model.anchor_ratios and model.anchor_scales must be non-empty lists of numbers > 0")
        if self.anchor_cells <= 0:
            raise ConfigError(f"model.anchor_cells must be > 0, got {self.anchor_cells}")
        if not 0.0 < self.match_threshold < 1.0:
            raise ConfigError(f"model.match_threshold must be in (0, 1), got {self.match_threshold}")
        if not 0.0 <= self.focal_alpha <= 1.0 or self.focal_gamma < 0:
            raise ConfigError("model.focal_alpha must be in [0, 1] and model.focal_gamma >= 0")

    @property
    def needs_vocabulary(self) -> bool:
        return True

    @property
    def anchors_per_cell(self) -> int:
        return len(self.anchor_ratios) * len(self.anchor_scales)

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The reference's input: pixels / 255, no mean or standard deviation."""
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
