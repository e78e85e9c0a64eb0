"""The options TransVG and VLTVG share (:class:`DetrBranchConfig`): DETR's visual branch, the text encoder's word
layers, and the options that are not in either reference but that an attention-read box needs on frozen CPU encoders
(the lite configs turn them on; the paper configs keep them off).

The first three are what MGVLF's [REG] head needed to learn on those encoders, the last three what MGVLF's lite
config reads its encoders with (``src/rsvg/models/mgvlf_config.py`` says why each):

* ``positions_in_tokens``: positions added to the tokens themselves, not only to attention queries and keys, so that
  the values a query gathers carry where they come from;
* ``reg_from_query``: the query that reads the box starts from a projection of the sentence feature;
* ``reg_centre_from_attention``: the box's centre is where that query looks (the attention-weighted mean of the
  cells' centres), moved by at most one cell by the box MLP, which also gives the size;
* ``stride16_detail``: the backbone's stride-16 map folded into the stride-32 tokens (space-to-depth), so small
  objects keep their detail without 4× more tokens;
* ``visual_norm``: LayerNorm over the backbone map's channels before ``input_proj``;
* ``text_norm``: LayerNorm over the word and sentence features before they are read.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig, check_at_least

__all__ = ["DetrBranchConfig"]


@dataclass
class DetrBranchConfig(ModelConfig):
    """DETR's visual branch (``hidden_dim``, ``heads``, ``ffn_dim``, ``dropout``, ``visual_encoder_layers``), the
    word features (the mean of the text encoder's last ``word_layers`` layers) and the lite options."""

    image_size: int = 640
    sentence_feature: str = "mean"  # neither reference reads a sentence feature: the text encoder leaves the pooler out
    word_layers: int = 1
    hidden_dim: int = 256  # DETR's encoder's width, and the model's
    heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    visual_encoder_layers: int = 6  # DETR's encoder over the stride-32 map
    # --- not in the references (off in their paper configs): see the module docstring ---
    positions_in_tokens: bool = False
    reg_from_query: bool = False
    reg_centre_from_attention: bool = False
    stride16_detail: bool = False
    visual_norm: bool = False
    text_norm: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, {"word_layers": 1, "hidden_dim": 4, "heads": 1, "ffn_dim": 1, "visual_encoder_layers": 0})
        if self.hidden_dim % 4:
            raise ConfigError(f"model.hidden_dim must be divisible by 4 (2-D sine positions), got {self.hidden_dim}")
        if self.hidden_dim % self.heads:
            raise ConfigError(f"model.hidden_dim {self.hidden_dim} must be divisible by model.heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
