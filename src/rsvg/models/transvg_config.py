"""The options of TransVG (``model.arch: transvg``): Deng et al., "TransVG: End-to-End Visual Grounding with
Transformers", ICCV 2021, as its reference implementation builds it (djiajunustc/TransVG, ``models/trans_vg.py``
and ``train.sh``).

Its defaults are the reference's: a 640-px input, queries of 20 tokens, BERT's last layer as the word features, a
256-wide DETR encoder of 6 layers on the stride-32 map (8 heads, FFN 2048, dropout 0.1) and a 6-layer
vision-language encoder of the same shape over ``[REG; words; visual tokens]`` with learned positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig, check_at_least

__all__ = ["TransVGConfig"]


@dataclass
class TransVGConfig(ModelConfig):
    """Every architectural choice of TransVG (Table II's row, and narrower widths for the CPU config)."""

    arch: str = "transvg"
    image_size: int = 640
    max_tokens: int = 20  # max_query_len (the reference's README uses 40 for RefCOCOg)
    sentence_feature: str = "mean"  # TransVG reads no sentence feature: the text encoder leaves the pooler out
    word_layers: int = 1  # bert_enc_num 12: the output of BERT's last layer
    hidden_dim: int = 256  # the DETR encoder's and the vision-language encoder's width
    heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    visual_encoder_layers: int = 6  # detr_enc_num: DETR's encoder over the stride-32 map
    vl_layers: int = 6  # vl_enc_layers: the vision-language encoder
    # --- Not in TransVG (off in its paper config): what MGVLF's [REG] head needed to learn on frozen CPU encoders,
    # the same three options as there (src/rsvg/models/mgvlf_config.py says why each) ---
    # the vision-language encoder's learned positions added to the tokens themselves, not only to queries and keys
    positions_in_tokens: bool = False
    # the [REG] token starts as the learned token plus a projection of the query's sentence feature
    reg_from_query: bool = False
    # the box's centre is where [REG] looks in the last layer (its attention-weighted mean of the cells' centres),
    # moved by at most one cell by the MLP, which also gives the size
    reg_centre_from_attention: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        lows = {"word_layers": 1, "hidden_dim": 4, "heads": 1, "ffn_dim": 1, "visual_encoder_layers": 0, "vl_layers": 1}
        check_at_least(self, lows)
        if self.hidden_dim % 4:
            raise ConfigError(f"model.hidden_dim must be divisible by 4 (2-D sine positions), got {self.hidden_dim}")
        if self.hidden_dim % self.heads:
            raise ConfigError(f"model.hidden_dim {self.hidden_dim} must be divisible by model.heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
