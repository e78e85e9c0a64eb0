"""The options of TransVG (``model.arch: transvg``): Deng et al., "TransVG: End-to-End Visual Grounding with
Transformers", ICCV 2021, as its reference implementation builds it (djiajunustc/TransVG, ``models/trans_vg.py``
and ``train.sh``).

Its defaults are the reference's: a 640-px input, queries of 20 tokens, BERT's last layer as the word features, a
256-wide DETR encoder of 6 layers on the stride-32 map (8 heads, FFN 2048, dropout 0.1) and a 6-layer
vision-language encoder of the same shape over ``[REG; words; visual tokens]`` with learned positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from rsvg.models.config import check_at_least
from rsvg.models.detr_branch_config import DetrBranchConfig

__all__ = ["TransVGConfig"]


@dataclass
class TransVGConfig(DetrBranchConfig):
    """Every architectural choice of TransVG (Table II's row, and narrower widths for the CPU config); the visual
    branch's options and the lite options are :class:`~rsvg.models.detr_branch_config.DetrBranchConfig`'s."""

    arch: str = "transvg"
    max_tokens: int = 20  # max_query_len (the reference's README uses 40 for RefCOCOg)
    word_layers: int = 1  # bert_enc_num 12: the output of BERT's last layer
    vl_layers: int = 6  # vl_enc_layers: the vision-language encoder, as wide as DETR's

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, {"vl_layers": 1})
