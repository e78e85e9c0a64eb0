"""The options the one-stage families of the paper's Table II share (FAOA, ReSC-base, LBYL-Net): their
references' input (DarkNet-53 at a 256-px letterbox, queries of 20 tokens) and their anchors.

Each family's config subclasses :class:`OneStageConfig` with its own options and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig
from rsvg.models.yolo import COCO_ANCHORS

__all__ = ["ANCHOR_CHOICES", "OneStageConfig"]

#: where the anchors come from: YOLOv3's COCO set, or k-means on the training split's boxes
ANCHOR_CHOICES = ("coco", "kmeans")


@dataclass
class OneStageConfig(ModelConfig):
    """DarkNet-53, 256 px, 20 tokens and nine anchors, as the three references use them."""

    backbone: str = "darknet53"
    image_size: int = 256
    max_tokens: int = 20
    # coco: YOLOv3's 9 anchors (w, h) measured at anchor_imsize px, as the references use them; kmeans: 9 anchors
    # from the training split's boxes, computed when training starts (rsvg.models.anchor_fit) and stored here
    # (anchor_boxes, smallest first) so that the checkpoint keeps them
    anchors: str = "coco"
    anchor_boxes: list[list[float]] = field(default_factory=lambda: [list(a) for a in COCO_ANCHORS])
    anchor_imsize: float = 416.0  # the image size the anchor numbers are measured at

    def __post_init__(self) -> None:
        super().__post_init__()
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
