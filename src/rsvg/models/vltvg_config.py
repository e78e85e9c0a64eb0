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
from rsvg.models.config import check_at_least
from rsvg.models.detr_branch_config import DetrBranchConfig

__all__ = ["VLTVGConfig"]


@dataclass
class VLTVGConfig(DetrBranchConfig):
    """Every architectural choice of VLTVG (Table II's R50 and R101 rows, and narrower widths for the CPU config);
    the visual branch's options and the lite options are
    :class:`~rsvg.models.detr_branch_config.DetrBranchConfig`'s."""

    arch: str = "vltvg"
    max_tokens: int = 40  # max_query_len
    word_layers: int = 4  # bert_output_layers: the mean of BERT's last four layers
    decoder_dropout: float = 0.0  # the decoder stages' residual and FFN dropout (the reference's configs: 0)
    decoder_stages: int = 6  # num_layers: the multi-stage cross-modal decoder
    verify_scale: float = 1.0  # the verification score's initial scale (learned)
    verify_sigma: float = 0.5  # its initial σ (learned)
    verify_pow: float = 2.0  # its power (fixed)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, {"decoder_stages": 1})
        if not 0.0 <= self.decoder_dropout < 1.0:
            raise ConfigError(f"model.decoder_dropout must be in [0, 1), got {self.decoder_dropout}")
        if self.verify_sigma <= 0 or self.verify_pow <= 0:
            raise ConfigError("model.verify_sigma and model.verify_pow must be > 0")
