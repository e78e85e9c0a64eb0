"""The options of ReSC-base (``model.arch: resc``): Yang et al., "Improving One-stage Visual Grounding by Recursive
Sub-query Construction", ECCV 2020, as its reference implementation builds it (zyang-ur/ReSC @ 5cb03df88b4f,
``train.py`` defaults, ``model/grounding_model.py: grounding_model_multihop``).

Its defaults are the reference's: DarkNet-53 (YOLOv3's trunk and neck) at a 256-px letterbox, of which only the
stride-8 map is read; queries of 20 tokens; YOLOv3's 9 COCO anchors measured at 416 px, all on the one stride-8
grid (:class:`~rsvg.models.onestage_config.OneStageConfig`); the text encoder frozen (the reference detaches BERT's
per-token features, the mean of its last four layers); a 512-wide fusion; 3 sub-query rounds (``--nflim 3``) with
product fusion (``--fusion prod``) and the 8 coordinate channels; the diversity loss weighted 0.125 (``--w_div``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsvg.errors import ConfigError
from rsvg.models.config import check_at_least
from rsvg.models.onestage_config import OneStageConfig

__all__ = ["FUSION_CHOICES", "ReSCConfig"]

#: how a round's word attention combines the image summary, the words and their context score (``--fusion``):
#: their product (the reference's default) or the image summary concatenated with the weighted words
FUSION_CHOICES = ("prod", "cat")


@dataclass
class ReSCConfig(OneStageConfig):
    """Every architectural choice of ReSC-base (the paper's Table II row "ReSC")."""

    arch: str = "resc"
    # the reference detaches BERT's features: it never trains (false: its --tunebert, trained at lr_pretrained with
    # train.lr_groups: reference)
    freeze_text_encoder: bool = True
    sentence_feature: str = "mean"  # unused: ReSC reads the per-token features only (and no pooler)
    emb_size: int = 512  # width of the fusion (the reference's --emb_size)
    rounds: int = 3  # sub-query rounds, one FiLM block each (the reference's --nflim)
    fusion: str = "prod"  # the word attention's fusion (the reference's --fusion)
    coordmap: bool = True  # the 8 coordinate channels each round's convolution reads (the reference always has them)
    text_dropout: float = 0.1  # dropout inside the per-token text mapping (jemb_drop_out)
    diversity_weight: float = 0.125  # weight of the diversity and coverage terms of the loss (--w_div)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, {"emb_size": 2, "rounds": 1})
        if self.text != "bert":  # its rounds attend to every token's feature: the reference has no LSTM variant
            raise ConfigError(f"model.text: ReSC reads a BERT-family encoder's token features, got {self.text!r}")
        if self.fusion not in FUSION_CHOICES:
            raise ConfigError(f"model.fusion must be one of {', '.join(FUSION_CHOICES)}, got {self.fusion!r}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ConfigError(f"model.text_dropout must be in [0, 1), got {self.text_dropout}")
        if self.diversity_weight < 0:
            raise ConfigError(f"model.diversity_weight must be >= 0, got {self.diversity_weight}")
