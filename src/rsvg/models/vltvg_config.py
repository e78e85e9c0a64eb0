"""The options of VLTVG (``model.arch: vltvg``): Yang et al., "Improving Visual Grounding with Visual-Linguistic
Verification and Iterative Reasoning", CVPR 2022, as its reference implementation builds it (yangli18/VLTVG,
``models/VLTVG.py``, ``models/decoder.py`` and ``configs/VLTVG_R50_*.py``).

Its defaults are the reference's R50 configs: a 640-px input, queries of 40 tokens, the mean of BERT's last four
layers projected to 256, DETR's 6-layer encoder on the stride-32 map, the verification and context layer (one, as
every reference config has: a second would read the first's doubled width), six decoder stages, and the
verification score ``scale · exp(−(1 − cos)^pow / (2 σ²))`` with scale 1, σ 0.5 and pow 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig, check_at_least

__all__ = ["VLTVGConfig"]


@dataclass
class VLTVGConfig(ModelConfig):
    """Every architectural choice of VLTVG (Table II's R50 and R101 rows, and narrower widths for the CPU config)."""

    arch: str = "vltvg"
    image_size: int = 640
    max_tokens: int = 40  # max_query_len
    sentence_feature: str = "mean"  # VLTVG reads no sentence feature (the reference freezes BERT's pooler)
    word_layers: int = 4  # bert_output_layers: the mean of BERT's last four layers
    hidden_dim: int = 256
    heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1  # DETR's encoder and every attention's weights
    decoder_dropout: float = 0.0  # the decoder stages' residual and FFN dropout (the reference's configs: 0)
    visual_encoder_layers: int = 6  # enc_layers: DETR's encoder over the stride-32 map
    decoder_stages: int = 6  # num_layers: the multi-stage cross-modal decoder
    verify_scale: float = 1.0  # the verification score's initial scale (learned)
    verify_sigma: float = 0.5  # its initial σ (learned)
    verify_pow: float = 2.0  # its power (fixed)
    # --- Not in VLTVG (off in its paper configs): what MGVLF's [REG] head needed to learn on frozen CPU encoders,
    # in VLTVG's terms (src/rsvg/models/mgvlf_config.py says why each) ---
    # the map's 2-D sine positions added to the visual features themselves, so that the values the object query
    # gathers carry where they come from (DETR's encoder adds them to queries and keys only)
    positions_in_tokens: bool = False
    # the object query starts from a projection of the query's sentence feature instead of zeros
    reg_from_query: bool = False
    # each stage's box centre is where its object query looks (the attention-weighted mean of the cells' centres),
    # moved by at most one cell by the box MLP, which also gives the size
    reg_centre_from_attention: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        lows = {"word_layers": 1, "hidden_dim": 4, "heads": 1, "ffn_dim": 1, "visual_encoder_layers": 0}
        check_at_least(self, {**lows, "decoder_stages": 1})
        if self.hidden_dim % 4:
            raise ConfigError(f"model.hidden_dim must be divisible by 4 (2-D sine positions), got {self.hidden_dim}")
        if self.hidden_dim % self.heads:
            raise ConfigError(f"model.hidden_dim {self.hidden_dim} must be divisible by model.heads {self.heads}")
        for name in ("dropout", "decoder_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.verify_sigma <= 0 or self.verify_pow <= 0:
            raise ConfigError("model.verify_sigma and model.verify_pow must be > 0")
