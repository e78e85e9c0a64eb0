"""The options of FAOA (``model.arch: faoa``): Yang et al., "A Fast and Accurate One-Stage Approach to Visual
Grounding", ICCV 2019, as its reference implementation builds it (zyang-ur/onestage_grounding @ 2fff0943c3bc).

Its defaults are the reference's: DarkNet-53 (YOLOv3's trunk and neck) at a 256-px letterbox, queries of 20
tokens, the text encoder frozen (the reference detaches BERT's features), a 512-wide fusion with the 8 spatial
coordinate channels, YOLOv3's COCO anchors measured at 416 px.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsvg.errors import ConfigError
from rsvg.models.config import check_at_least
from rsvg.models.onestage_config import OneStageConfig

__all__ = ["FAOAConfig"]


@dataclass
class FAOAConfig(OneStageConfig):
    """Every architectural choice of FAOA (the three Table II rows: BERT, LSTM, without coordinates)."""

    arch: str = "faoa"
    freeze_text_encoder: bool = True  # the reference detaches BERT's features: it never trains
    sentence_feature: str = "mean"  # unused: FAOA reads the [CLS] token of the last four layers
    emb_size: int = 512  # width of the fusion (the reference's --emb_size)
    coordmap: bool = True  # the 8 spatial coordinate channels of each fused map (Table II's "w/o coord" is false)
    text_dropout: float = 0.1  # dropout inside the text mapping (jemb_drop_out)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, {"emb_size": 2})
        if self.image_size % 32:
            raise ConfigError(f"model.image_size must be a multiple of 32 (the coarsest grid), got {self.image_size}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ConfigError(f"model.text_dropout must be in [0, 1), got {self.text_dropout}")

