"""The options the one-stage families of the paper's Table II share (FAOA, ReSC-base, LBYL-Net): their
references' input (DarkNet-53 at a 256-px letterbox, queries of 20 tokens), their anchors and their text model
(BERT, or the BiLSTM of the LSTM rows).

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
    # bert: the BERT-family encoder text_encoder names; lstm: a BiLSTM on a vocabulary learned from the training
    # split (rsvg.models.lstm_text), which trains with the rest (Table II's LSTM rows)
    text: str = "bert"
    vocabulary: list[str] = field(default_factory=list)  # text: lstm: the training split's words, filled by rsvg train
    lstm_dropout: float = 0.2  # text: lstm: dropout on the word embeddings (the references' input dropout)

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
        if self.text not in ("bert", "lstm"):
            raise ConfigError(f"model.text must be bert or lstm, got {self.text!r}")
        if self.text == "lstm" and self.freeze_text_encoder:
            raise ConfigError("model.text: lstm learns its word embeddings: set model.freeze_text_encoder: false")
        if not 0.0 <= self.lstm_dropout < 1.0:
            raise ConfigError(f"model.lstm_dropout must be in [0, 1), got {self.lstm_dropout}")

    @property
    def needs_vocabulary(self) -> bool:
        return self.text == "lstm"
