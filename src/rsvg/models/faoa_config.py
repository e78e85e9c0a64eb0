"""The options of FAOA (``model.arch: faoa``): Yang et al., "A Fast and Accurate One-Stage Approach to Visual
Grounding", ICCV 2019, as its reference implementation builds it (zyang-ur/onestage_grounding @ 2fff0943c3bc).

Its defaults are the reference's: DarkNet-53 (YOLOv3's trunk and neck) at a 256-px letterbox, queries of 20
tokens, the text encoder frozen (the reference detaches BERT's features), a 512-wide fusion with the 8 spatial
coordinate channels, YOLOv3's COCO anchors measured at 416 px.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig, check_at_least
from rsvg.models.yolo import COCO_ANCHORS

__all__ = ["ANCHOR_CHOICES", "FAOAConfig"]

#: where the anchors come from: YOLOv3's COCO set, or k-means on the training split's boxes
ANCHOR_CHOICES = ("coco", "kmeans")


@dataclass
class FAOAConfig(ModelConfig):
    """Every architectural choice of FAOA (the three Table II rows: BERT, LSTM, without coordinates)."""

    arch: str = "faoa"
    backbone: str = "darknet53"
    image_size: int = 256
    max_tokens: int = 20
    freeze_text_encoder: bool = True  # the reference detaches BERT's features: it never trains
    sentence_feature: str = "mean"  # unused: FAOA reads the [CLS] token of the last four layers
    emb_size: int = 512  # width of the fusion (the reference's --emb_size)
    coordmap: bool = True  # the 8 spatial coordinate channels of each fused map (Table II's "w/o coord" is false)
    text_dropout: float = 0.1  # dropout inside the text mapping (jemb_drop_out)
    # coco: YOLOv3's 9 anchors (w, h) measured at anchor_imsize px, as the reference uses them; kmeans: 9 anchors
    # from the training split's boxes, computed when training starts and stored here (anchor_boxes) so that the
    # checkpoint keeps them
    anchors: str = "coco"
    anchor_boxes: list[list[float]] = field(default_factory=lambda: [list(a) for a in COCO_ANCHORS])
    anchor_imsize: float = 416.0  # the image size the anchor numbers are measured at (the reference's 416)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, {"emb_size": 2})
        if self.image_size % 32:
            raise ConfigError(f"model.image_size must be a multiple of 32 (the coarsest grid), got {self.image_size}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ConfigError(f"model.text_dropout must be in [0, 1), got {self.text_dropout}")
        if self.anchors not in ANCHOR_CHOICES:
            raise ConfigError(f"model.anchors must be one of {', '.join(ANCHOR_CHOICES)}, got {self.anchors!r}")
        boxes = self.anchor_boxes
        if len(boxes) != 9 or not all(
            isinstance(b, (list, tuple)) and len(b) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in b)
            for b in boxes
        ):
            raise ConfigError(f"model.anchor_boxes must be 9 (width, height) pairs > 0, got {boxes!r}")
        if self.anchor_imsize <= 0:
            raise ConfigError(f"model.anchor_imsize must be > 0, got {self.anchor_imsize}")
