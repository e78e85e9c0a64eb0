"""The options of LBYL-Net (``model.arch: lbyl``): Huang et al., "Look Before You Leap: Learning Landmark Features
for One-Stage Visual Grounding", CVPR 2021, as its reference implementation builds it (svip-lab/LBYLNet @
47a0e83b6db6, ``core/models/net/lbylnet.py`` and ``configs/lbyl_bert_*_batch64.json``).

Its defaults are the reference's BERT variant: DarkNet-53 (YOLOv3's trunk and neck) fed BGR images normalised with
LBYL-Net's own statistics, a 256-px letterbox, queries of up to 128 tokens, the text encoder trained (the reference
does not detach BERT), a 256-wide FiLM fusion with coordinate channels, the landmark feature convolution with 128
channels per quadrant, YOLOv3's COCO anchors used as sizes in 256-px input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsvg.errors import ConfigError
from rsvg.models.config import check_at_least
from rsvg.models.onestage_config import OneStageConfig

__all__ = ["LBYL_MEAN_BGR", "LBYL_STD_BGR", "LBYLConfig"]

#: the reference's image statistics, in its BGR channel order (``core/dbs``; images read by cv2, never converted)
LBYL_MEAN_BGR = (0.408, 0.447, 0.470)
LBYL_STD_BGR = (0.289, 0.274, 0.278)


@dataclass
class LBYLConfig(OneStageConfig):
    """Every architectural choice of LBYL-Net (Table II's BERT row, and narrower widths for the CPU config)."""

    arch: str = "lbyl"
    max_tokens: int = 128  # max_query_len; each batch is trimmed to its longest query, as the reference does
    freeze_text_encoder: bool = False  # the reference fine-tunes BERT with everything else
    sentence_feature: str = "mean"  # the pooler is never read: the text encoder leaves it out
    emb_size: int = 256  # joint_embedding_size: the visual and text mappings, FiLM's input
    out_dim: int = 256  # joint_out_dim: the merged map, the landmark convolution and the heads
    ctx_dim: int = 128  # ctx_dim: channels per quadrant of the landmark feature convolution
    text_dropout: float = 0.1  # joint_embedding_dropout, inside the text mapping
    # true: the reference's input, BGR normalised with its statistics (the model declares them as its mean/std in
    # RGB order and flips the channels itself); false: the backbone's own RGB normalisation (e.g. a frozen
    # ImageNet backbone)
    bgr_input: bool = True
    # the image size the anchor numbers are measured at: the reference uses the numbers as pixels of its 256-px
    # input (core/utils/misc.py: make_anchors keeps them at their values, the loss divides by the stride)
    anchor_imsize: float = 256.0
    lstm_dropout: float = 0.5  # text: lstm: the reference's input dropout on the word embeddings

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, {"emb_size": 1, "out_dim": 1, "ctx_dim": 1})
        if self.image_size < 64:
            # the coarsest map must have more than one cell: the fusion's instance norm needs several
            raise ConfigError(f"model.image_size must be at least 64 (a 2x2 coarsest map), got {self.image_size}")
        if not 0.0 <= self.text_dropout < 1.0:
            raise ConfigError(f"model.text_dropout must be in [0, 1), got {self.text_dropout}")

    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """With ``bgr_input``, the reference's BGR statistics in RGB order: an RGB image normalised with them and
        flipped to BGR (:meth:`rsvg.models.lbyl.LBYLNet.backbone_input`) is exactly the reference's input; else
        the backbone's."""
        if self.bgr_input:
            return LBYL_MEAN_BGR[::-1], LBYL_STD_BGR[::-1]
        return super().normalisation()
