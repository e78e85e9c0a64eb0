"""The options of ZSGNet (``model.arch: zsgnet``): Sadhu et al., "Zero-Shot Grounding of Objects from Natural Language
Queries", ICCV 2019, as its reference implementation builds it (TheShadow29/zsgnet-pytorch, ``code/mdl.py``,
``code/fpn_resnet.py``, ``code/anchors.py``, ``code/loss.py`` and ``configs/cfg.json``).

Its defaults are the reference's ResNet-50 + FPN model: a 300-px input read as pixels / 255 (the reference's mean and
standard deviation normalisation is commented out), queries of up to 50 words as fixed 300-d word vectors through a
BiLSTM of 128 per direction, 9 anchors (ratios 1/2, 1, 2 × 4·{1, 2^(1/3), 2^(2/3)} cells) on each of six maps, the
shared attention and regression head on ``[visual ‖ language ‖ cell centre]``, and the loss: focal binary
cross-entropy (α 0.25, γ 2) over anchors with IoU > 0.6 or the best one, plus SmoothL1 on their regressions.
``backbone: vgg16`` gives the reference's other model: SSD's VGG16 trunk and extra layers instead of ResNet-50 and
its FPN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig, check_at_least

__all__ = ["ZSGNetConfig", "ssd_map_sizes"]


def ssd_map_sizes(image_size: int) -> list[int]:
    """The sides of the six maps SSD's VGG16 and extra layers give for a square input of ``image_size`` (38, 19,
    10, 5, 3 and 1 at 300); a side below 1 means the input is too small."""
    c4 = -(-(image_size // 4) // 2)  # two 2x2 poolings, then one that rounds up
    c7 = c4 // 2
    e1 = (c7 - 1) // 2 + 1  # 3x3, stride 2, padding 1
    e2 = (e1 - 1) // 2 + 1
    return [c4, c7, e1, e2, e2 - 2, e2 - 4]  # the last two: 3x3, no padding


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
    fpn_dim: int = 256  # the pyramid's maps (the FPN's, or SSD's extra layers' with vgg16), and the head's width
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
        if self.ssd_trunk and min(ssd_map_sizes(self.image_size)) < 1:
            raise ConfigError(
                f"model.image_size {self.image_size} is too small for VGG16's SSD layers, whose last map needs at "
                "least 268 px (300 gives maps of 38, 19, 10, 5, 3 and 1 cells)"
            )
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
    def ssd_trunk(self) -> bool:
        """VGG16 with SSD's extra layers (the reference's ``ssd_vgg``) rather than a backbone with an FPN."""
        return self.backbone.strip().lower().replace("-", "_") == "vgg16"

    @property
    def levels(self) -> tuple[int, ...]:
        """The strides of the backbone maps the model reads: conv4_3 and conv7 of VGG16, else C3, C4 and C5."""
        return (8, 16) if self.ssd_trunk else (8, 16, 32)

    @property
    def anchors_per_cell(self) -> int:
        return len(self.anchor_ratios) * len(self.anchor_scales)

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The reference's input: pixels / 255, no mean or standard deviation."""
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
