"""VLTVG: visual grounding with visual-linguistic verification and iterative reasoning (Yang et al., CVPR 2022),
one of the paper's Table II methods, as its reference implementation builds it (yangli18/VLTVG @ a8bcfe773c84).

Read top to bottom, the forward pass is:

1. **Visual features** (DETR's): a CNN's stride-32 map (20×20 at 640 px), a 1×1 ``input_proj`` to D = 256 and
   DETR's 6-layer encoder with 2-D sine positions.
2. **Words**: the mean of BERT's last four layers for every token, projected to D (``bert_proj``).
3. **Verification and context** (:class:`~rsvg.models.vltvg_layers.VerificationContextLayer`): every cell is scored
   by how well the words it gathers match it, and gathers context from the other cells, guided by the words, with
   relative positions; its output is the map and beside it the verified context features.
4. **Multi-stage decoder** (:class:`~rsvg.models.vltvg_layers.DecoderStage`, six stages): one object query,
   starting from zeros with a learned position, gathers the words that describe it and then the cells that
   match them; each stage's output, normalised, gives a box through the shared 3-layer MLP (sigmoid
   ``(cx, cy, w, h)``). The answer is the last stage's box.

The loss, as the reference's ``VGCriterion``: for every stage, ``l1_weight`` × L1 on ``(cx, cy, w, h)`` summed over
the four plus ``giou_weight`` × (1 − GIoU), averaged over the batch and summed over the stages (the configs: 5 and
2). A DETR checkpoint given as ``backbone_weights`` initialises the backbone, ``input_proj`` and the encoder, as the
reference's ``load_weights_path`` does.

Six options, off in the paper configs, are not VLTVG's
(:class:`~rsvg.models.detr_branch_config.DetrBranchConfig`): what MGVLF's [REG] head needed to learn on frozen CPU
encoders (``positions_in_tokens``, ``reg_from_query``, ``reg_centre_from_attention``) and how MGVLF's lite config
reads those encoders (``stride16_detail``, ``visual_norm``, ``text_norm``); the lite config turns them on.

What rsvg does not build: BERT's pooler (frozen and never read in the reference). Where rsvg differs: DETR's sine
positions cover the whole grid (the reference's cover each image's unpadded part), a cell is padding only when all
its pixels are, and the relative positions work on any map (the reference asserts a 20×20 map).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rsvg.models.detr_branch import DetrBranchModel
from rsvg.models.heads import box_from_attention, corners
from rsvg.models.loss import LossConfig, add_attention_terms, centre_size_loss
from rsvg.models.outputs import GroundingOutput
from rsvg.models.transvg import MLP
from rsvg.models.vltvg_config import VLTVGConfig
from rsvg.models.vltvg_layers import DecoderStage, VerificationContextLayer

__all__ = ["VLTVG"]


class VLTVG(DetrBranchModel):
    """VLTVG; ``cfg`` (:class:`~rsvg.models.vltvg_config.VLTVGConfig`) sets its widths and depths."""

    arch = "vltvg"

    def __init__(self, cfg: VLTVGConfig, backbone: nn.Module, text_encoder: nn.Module) -> None:
        super().__init__(cfg, backbone, text_encoder)  # 1. visual features: input_proj, DETR's encoder
        d = cfg.hidden_dim
        self.bert_proj = nn.Linear(text_encoder.hidden_size, d)  # 2. words
        # 3-4. the decoder: verification and context, then the stages with their object query
        self.context = VerificationContextLayer(  # relative positions over the map's longer side
            d, cfg.heads, cfg.dropout, math.isqrt(self.num_visual), cfg.verify_scale, cfg.verify_sigma, cfg.verify_pow
        )
        self.decoder = nn.ModuleList(
            DecoderStage(d, cfg.heads, cfg.ffn_dim, cfg.dropout, cfg.decoder_dropout) for _ in range(cfg.decoder_stages)
        )
        self.decoder_norm = nn.LayerNorm(d)
        self.query_pos = nn.Parameter(torch.empty(1, d))
        self.text_query_pos = nn.Parameter(torch.empty(1, d))
        self.bbox_embed = MLP(d, d, 4, 3)
        self.query_proj = nn.Linear(text_encoder.hidden_size, d) if cfg.reg_from_query else None
        # the reference starts its whole decoder (query positions included) from Xavier; the projections and the
        # box MLP keep torch's defaults
        for module in (self.context, self.decoder):
            for p in module.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        nn.init.xavier_uniform_(self.query_pos)
        nn.init.xavier_uniform_(self.text_query_pos)

    # ------------------------------------------------------------------------------------------------------------
    def forward(
        self,
        image: Tensor | None,
        padding_mask: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        need_attention: bool = False,
        *,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> GroundingOutput:
        # 1. visual features (with model.positions_in_tokens, their positions added to them)
        x, pos, padding, (h, w) = self.visual_tokens(image, image_features, padding_mask)
        if self.cfg.positions_in_tokens:
            x = x + pos

        # 2. words
        raw_words, sentence = self.read_text(input_ids, attention_mask, text_features)
        words = self.bert_proj(raw_words)
        word_pad = attention_mask == 0

        # 3. verification and language-guided context: (B, h*w, 2D), the map and the verified context
        features = self.context(x, padding, words, word_pad, (h, w))

        # 4. the stages, each giving a box (its centre where the query looks, with model.reg_centre_from_attention)
        bsz = x.shape[0]
        if self.query_proj is not None:  # model.reg_from_query
            query = self.query_proj(sentence).unsqueeze(1).to(x.dtype)
        else:
            query = torch.zeros(bsz, 1, x.shape[-1], dtype=x.dtype, device=x.device)
        from_attention = self.cfg.reg_centre_from_attention
        boxes, looks = [], []
        for stage in self.decoder:  # the query positions (1, D) broadcast over the batch
            query, weights = stage(
                query, self.query_pos, self.text_query_pos, features, padding, pos, words, word_pad,
                from_attention or need_attention,
            )  # fmt: skip
            raw = self.bbox_embed(self.decoder_norm(query[:, 0])).float()
            if from_attention:
                assert weights is not None
                boxes.append(box_from_attention(raw, weights[:, 0], h, w))
            else:
                boxes.append(corners(*raw.sigmoid().unbind(-1)))
            looks.append(weights)
        result = GroundingOutput(boxes[-1], extra={"stage_boxes": torch.stack(boxes, 1)[:, :-1]})
        if need_attention:  # where each stage's object query looks: the last one's as the answer's attention
            stage_looks = torch.stack([a[:, 0] for a in looks if a is not None], 1).reshape(bsz, -1, h, w)
            result.attention = stage_looks[:, -1]
            result.extra["stage_attention"] = stage_looks[:, :-1]
        return result

    # --- loss ------------------------------------------------------------------------------------------------
    def needs_attention(self, cfg: LossConfig) -> bool:
        return cfg.reg_attention_weight > 0

    def loss_terms(self, cfg: LossConfig) -> tuple[str, ...]:
        return ("loss", "l1", "giou") + (("attention",) if self.needs_attention(cfg) else ())

    def loss(self, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig) -> dict[str, Tensor]:
        """The reference's ``VGCriterion``: :func:`~rsvg.models.loss.centre_size_loss` of every stage's box, summed;
        ``l1`` and ``giou`` report the last stage's. With ``loss.reg_attention_weight`` (not VLTVG's) also, for
        every stage, the cross-entropy pulling its query's attention onto the target's cells
        (:func:`~rsvg.models.loss.attention_loss`), summed; ``attention`` reports the last stage's."""
        target = batch["box"].float() / self.image_size
        stages = [*out.extra["stage_boxes"].unbind(1), out.boxes]
        terms = [centre_size_loss(pred, target, cfg) for pred in stages]
        losses = {**terms[-1], "loss": torch.stack([t["loss"] for t in terms]).sum()}
        if self.needs_attention(cfg):
            looks = [*out.extra["stage_attention"].unbind(1)] if "stage_attention" in out.extra else []
            add_attention_terms(losses, [*looks, out.attention], target, cfg)
        return losses
