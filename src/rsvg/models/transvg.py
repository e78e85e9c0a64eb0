"""TransVG: visual grounding with a vision-language transformer (Deng et al., ICCV 2021), one of the paper's
Table II methods, as its reference implementation builds it (djiajunustc/TransVG @ c8624277018f).

Read top to bottom, the forward pass is:

1. **Visual branch** (DETR's): a CNN gives the stride-32 map (20×20 at 640 px); a 1×1 ``input_proj`` takes it
   to D = 256 and DETR's 6-layer encoder (2-D sine positions added to queries and keys) relates the cells.
2. **Linguistic branch**: BERT's last layer, every token (``word_layers: 1``).
3. **Vision-language encoder**: ``[REG; words; visual tokens]``, each projected to D by a linear layer (the
   visual tokens by ``visu_proj``, the words by ``text_proj``), with a learned position per slot (421 at Nt 20),
   through 6 post-norm encoder layers; padded words and padding cells are masked.
4. **Box**: a 3-layer MLP on the [REG] output gives sigmoid ``(cx, cy, w, h)`` in the input, turned into
   ``(x1, y1, x2, y2)``.

The loss is the reference's: L1 on ``(cx, cy, w, h)`` summed over the four and averaged over the batch, plus
1 − GIoU averaged over the batch, 1:1. A DETR checkpoint given as ``backbone_weights`` initialises the backbone,
``input_proj`` and the visual encoder, as the reference's ``--detr_model`` does (:mod:`rsvg.models.detr_init`).

Six options, off in the paper config, are not TransVG's
(:class:`~rsvg.models.detr_branch_config.DetrBranchConfig`): what MGVLF's [REG] head needed to learn on frozen CPU
encoders (``positions_in_tokens``, ``reg_from_query``, ``reg_centre_from_attention``) and how MGVLF's lite config
reads those encoders (``stride16_detail``, ``visual_norm``, ``text_norm``); the lite config turns them on.

What rsvg does not build: BERT's pooler (590,592 parameters the reference builds and never reads; its
``requires_grad`` is on but it gets no gradient), and the reference's ``--dilation`` (a stride-16 map). Where rsvg
differs: DETR's sine positions are over the whole 20×20 grid (the reference's over each image's unpadded part), and
a cell is padding only when all its pixels are (the reference's nearest-pixel downsampling of the mask).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.detr_branch import DetrBranchModel
from rsvg.models.heads import box_from_attention, corners
from rsvg.models.loss import LossConfig, add_attention_terms, centre_size_loss
from rsvg.models.outputs import GroundingOutput
from rsvg.models.transformer import Encoder
from rsvg.models.transvg_config import TransVGConfig

__all__ = ["MLP", "TransVG"]


class MLP(nn.Module):
    """``layers`` linear layers with ReLUs between them (DETR's and TransVG's box MLP)."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, layers: int) -> None:
        super().__init__()
        sizes = [dim_in] + [hidden] * (layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, [*sizes[1:], dim_out], strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class TransVG(DetrBranchModel):
    """TransVG; ``cfg`` (:class:`~rsvg.models.transvg_config.TransVGConfig`) sets its widths and depths."""

    arch = "transvg"

    def __init__(self, cfg: TransVGConfig, backbone: nn.Module, text_encoder: nn.Module) -> None:
        super().__init__(cfg, backbone, text_encoder)  # 1. the visual branch: input_proj, DETR's encoder
        d = cfg.hidden_dim
        # 3. vision-language encoder over [REG; words; visual tokens]
        self.visu_proj = nn.Linear(d, d)
        self.text_proj = nn.Linear(text_encoder.hidden_size, d)
        self.reg_token = nn.Embedding(1, d)
        self.reg_query_proj = nn.Linear(text_encoder.hidden_size, d) if cfg.reg_from_query else None
        self.vl_pos_embed = nn.Embedding(1 + cfg.max_tokens + self.num_visual, d)
        self.vl_transformer = Encoder(cfg.vl_layers, d, cfg.heads, cfg.ffn_dim, cfg.dropout)
        # 4. the box
        self.bbox_embed = MLP(d, d, 4, 3)
        # the reference's transformers start from Xavier (DETR's _reset_parameters); the rest keeps torch's defaults
        for p in self.vl_transformer.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

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
        # 1. visual branch
        x, _, vis_mask, (h, w) = self.visual_tokens(image, image_features, padding_mask)

        # 2. linguistic branch (the batch's text may be trimmed to its longest query: positions stay per slot)
        words, sentence = self.read_text(input_ids, attention_mask, text_features)
        nt = words.shape[1]

        # 3. vision-language encoder
        bsz = x.shape[0]
        reg = self.reg_token.weight.unsqueeze(0).expand(bsz, -1, -1)
        if self.reg_query_proj is not None:  # model.reg_from_query
            reg = reg + self.reg_query_proj(sentence).unsqueeze(1)
        tokens = torch.cat([reg, self.text_proj(words), self.visu_proj(x)], 1)
        table = self.vl_pos_embed.weight
        vl_pos = torch.cat([table[: 1 + nt], table[1 + self.cfg.max_tokens :]], 0).unsqueeze(0)
        if self.cfg.positions_in_tokens:
            tokens = tokens + vl_pos
        reg_pad = torch.zeros(bsz, 1, dtype=torch.bool, device=x.device)
        mask = torch.cat([reg_pad, attention_mask == 0, vis_mask], 1)
        from_attention = self.cfg.reg_centre_from_attention
        out, weights = self.vl_transformer(tokens, vl_pos, mask, need_weights=need_attention or from_attention)

        # 4. the box from the [REG] token (its centre where it looks, with model.reg_centre_from_attention)
        reg_weights = weights[:, 0, 1 + nt :] if weights is not None else None
        raw = self.bbox_embed(out[:, 0]).float()
        if from_attention:
            assert reg_weights is not None
            boxes = box_from_attention(raw, reg_weights, h, w)
        else:
            boxes = corners(*raw.sigmoid().unbind(-1))
        attention = reg_weights.reshape(-1, h, w) if need_attention and reg_weights is not None else None
        return GroundingOutput(boxes, attention=attention)

    # --- loss ------------------------------------------------------------------------------------------------
    def needs_attention(self, cfg: LossConfig) -> bool:
        return cfg.reg_attention_weight > 0

    def loss_terms(self, cfg: LossConfig) -> tuple[str, ...]:
        return ("loss", "l1", "giou") + (("attention",) if self.needs_attention(cfg) else ())

    def loss(self, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig) -> dict[str, Tensor]:
        """The reference's ``trans_vg_loss`` (:func:`~rsvg.models.loss.centre_size_loss`); with
        ``loss.reg_attention_weight`` (not TransVG's) also the cross-entropy pulling [REG]'s attention onto the
        target's cells (:func:`~rsvg.models.loss.attention_loss`)."""
        target = batch["box"].float() / self.image_size
        losses = centre_size_loss(out.boxes, target, cfg)
        if self.needs_attention(cfg):
            add_attention_terms(losses, [out.attention], target, cfg)
        return losses
