"""MGVLF: multi-granularity visual-language fusion for remote-sensing visual grounding (Zhan et al., 2023).

Read top to bottom, the forward pass is the paper's Fig. 5:

1. **Multimodal encoder.** A CNN gives the stride-32 map ``F1`` (20×20 at 640 px); three extra conv levels
   give ``F2..F4`` (9×9, 4×4, 1×1). A BERT-family encoder gives word-level features (mean of the last four
   hidden layers) and a sentence-level feature.
2. **MLCM.** ``L`` decoder layers refine the level-1 tokens: self-attention, cross-attention to the memory
   ``y = [F1..F4 tokens; word tokens; sentence token]`` (what goes into ``y`` is configurable: the paper's
   ablations), FFN. Then a 6-layer self-attention encoder relates object regions.
3. **Fusion.** Visual tokens, word tokens and a learnable [REG] token go through 6 transformer layers.
4. **Localisation.** An MLP reads the [REG] output and predicts ``(cx, cy, w, h)`` through a sigmoid, turned
   into ``(x1, y1, x2, y2)``: a valid box by construction, normalised to the network input (0..1).

Padding is masked everywhere: letterbox padding in the visual tokens, padded text tokens in the MLCM memory and
in the fusion. With ``mlcm: false`` the same code is the TransVG-style baseline (ablation (a)).

Options that are not in the paper are off in its configs (:mod:`rsvg.models.mgvlf_config`); each is a part
chosen when the model is built (:mod:`rsvg.models.mgvlf_layers`), not a branch of the forward. The stages after
step 4 wrap this model (:mod:`rsvg.models.stages`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.backbones.base import BACKBONE_STRIDE
from rsvg.models.detr_init import DetrInitReport
from rsvg.models.interface import GroundingModel
from rsvg.models.loss import LossConfig, add_attention_terms, cell_losses, grounding_loss
from rsvg.models.mgvlf_config import MGVLFConfig
from rsvg.models.mgvlf_layers import (
    ChannelNorm,
    ExtraLevels,
    add_positions,
    build_answer,
    keep_tokens,
    mlcm_attention_map,
    visual_padding_mask,
)
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stage_inputs import CoreFacts, CoreState
from rsvg.models.text_encoder import TextEncoder
from rsvg.models.transformer import DecoderLayer, Encoder, sine_position_encoding

# GroundingOutput and the two mask helpers are named here too, where older code and docs/scenes.md import them
__all__ = ["BACKBONE_STRIDE", "MGVLF", "GroundingOutput", "mlcm_attention_map", "visual_padding_mask"]


class MGVLF(GroundingModel):
    """The grounding model; ``cfg`` chooses MGVLF, the baseline or an ablation (:mod:`rsvg.models.mgvlf_config`)."""

    arch = "mgvlf"
    #: The parts that form the reference implementation's "visual model" (its DETR-based module with the MLCM,
    #: which also projects the text into the MLCM memory); the fusion, the [REG] token and the head form its
    #: third optimiser group (``train.lr_groups: reference``).
    VISUAL_MODEL = (
        "backbone.",
        "input_proj.",
        "extra.",
        "memory_text_proj.",
        "memory_text_pos.",
        "mlcm_decoder.",
        "visual_encoder.",
    )

    def __init__(self, cfg: MGVLFConfig, backbone: nn.Module, text_encoder: TextEncoder) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_dim
        self.backbone = backbone
        self.text = text_encoder
        # backbone channels per stride (the backbone returns the levels the registry asks for)
        self.level_channels = dict(zip(backbone.return_levels, backbone.out_channels, strict=True))
        # the visual input (what encode_image returns and feature caches store): the stride-32 map and, with
        # stride16_detail, the stride-16 map folded in
        c5 = self.level_channels[32] + (4 * self.level_channels[16] if cfg.stride16_detail else 0)
        self.feature_channels = c5
        b = text_encoder.hidden_size
        side = -(-cfg.image_size // BACKBONE_STRIDE)
        self.num_visual = side * side

        # --- MLCM: multi-level cross-modal refinement of the level-1 visual tokens ---
        self.visual_norm = ChannelNorm(c5) if cfg.visual_norm else nn.Identity()
        self.word_norm = nn.LayerNorm(b) if cfg.text_norm else nn.Identity()
        self.sentence_norm = nn.LayerNorm(b) if cfg.text_norm else nn.Identity()
        self.token_positions = add_positions if cfg.positions_in_tokens else keep_tokens
        self.input_proj = nn.Conv2d(c5, d, 1)
        self.extra = (
            ExtraLevels(c5, cfg.extra_mid_channels, d, cfg.extra_levels, cfg.extra_padding) if cfg.multiscale else None
        )
        text_in_memory = cfg.mlcm and any(p in cfg.memory for p in ("words", "sentence"))
        self.memory_text_proj = nn.Linear(b, d) if text_in_memory else None
        self.memory_text_pos = nn.Embedding(cfg.max_tokens + 1, d) if text_in_memory else None
        self.mlcm_decoder = nn.ModuleList(
            DecoderLayer(d, cfg.heads, cfg.ffn_dim, cfg.dropout)
            for _ in range(cfg.mlcm_decoder_layers if cfg.mlcm else 0)
        )
        self.visual_encoder = Encoder(cfg.visual_encoder_layers, d, cfg.heads, cfg.ffn_dim, cfg.dropout)

        # --- Fusion: [visual tokens; word tokens; REG] ---
        self.fusion_visual_proj = nn.Linear(d, d)
        self.fusion_text_proj = nn.Linear(b, d)
        self.reg_token = nn.Parameter(torch.zeros(1, 1, d))
        self.reg_query_proj = nn.Linear(b, d) if cfg.reg_from_query else None
        self.fusion_pos = nn.Embedding(self.num_visual + cfg.max_tokens + 1, d)
        self.fusion = Encoder(cfg.fusion_layers, d, cfg.heads, cfg.ffn_dim, cfg.dropout)

        # --- Localisation: the [REG] head (the paper) or a cells head ---
        self.head = build_answer(cfg.head, cfg.reg_centre_from_attention, d, b)
        # what a DETR checkpoint initialised besides the backbone (rsvg.models.detr_init; set by the builder)
        self.detr_init: DetrInitReport | None = None

    def init_new_parameters(self, net: GroundingModel | None = None) -> None:
        """Xavier for every matrix not loaded from pretrained weights (paper Sec. V-B), over this model or the
        ``net`` that wraps it (its stages too, then each stage's own initialisation). The builder calls it once
        the whole model exists, so the random draws follow the parameters' order."""
        net = net or self
        for name, p in net.named_parameters():
            if not name.removeprefix("core.").startswith(("backbone.", "text.")) and p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.reg_token, std=0.02)
        for stage in net.stage_list():
            stage.reset_parameters()

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
        args = (image, padding_mask, input_ids, attention_mask, need_attention)
        return self.forward_core(*args, image_features=image_features, text_features=text_features)[0]

    def forward_core(
        self,
        image: Tensor | None,
        padding_mask: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        need_attention: bool = False,
        *,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[GroundingOutput, CoreState]:
        # 1. Multimodal encoder (either part may come precomputed: frozen encoders' features are cacheable)
        visual = self._visual_input(image, image_features)
        feats = self.visual_norm(visual)
        h, w = feats.shape[-2:]
        level1 = self.input_proj(feats).flatten(2).transpose(1, 2)  # (B, h*w, D)
        pos1 = sine_position_encoding(h, w, level1.shape[-1], level1.device).to(level1.dtype).unsqueeze(0)
        level1 = self.token_positions(level1, pos1)
        vis_mask = visual_padding_mask(padding_mask, h, w)
        raw_words, raw_sentence = self.text(input_ids, attention_mask) if text_features is None else text_features
        words, sentence = self.word_norm(raw_words), self.sentence_norm(raw_sentence)
        text_pad = attention_mask == 0

        # 2. MLCM: cross-modal decoder layers, then the self-attention encoder
        x, mlcm_attention = self._mlcm(feats, level1, pos1, vis_mask, words, sentence, text_pad, need_attention)
        x, _ = self.visual_encoder(x, pos1, vis_mask)

        # 3. Fusion of visual tokens, word tokens and the [REG] token
        out, weights = self._fuse(x, words, sentence, vis_mask, text_pad, self.head.wants_weights(need_attention))

        # 4. Localisation from the [REG] token (the paper), or from the best of the visual tokens (head: cells)
        result = self.head.answer(out, weights, vis_mask, (h, w), sentence, need_attention)
        result.mlcm_attention = mlcm_attention
        detail = visual[:, self.level_channels[32] :] if self.cfg.stride16_detail else None
        state = CoreState(
            padding_mask, vis_mask, (h, w), out[:, : h * w], raw_words, raw_sentence, sentence, text_pad,
            need_attention, detail,
        )  # fmt: skip
        return result, state

    def _visual_input(self, image: Tensor | None, image_features: Tensor | None) -> Tensor:
        """The visual input map, computed from ``image`` unless given; checked against the model."""
        image_features = self.visual_features(image, image_features)
        _, channels, h, w = image_features.shape
        if h * w != self.num_visual or channels != self.feature_channels:
            raise ValueError(
                f"a {channels}x{h}x{w} feature map does not match the model ({self.feature_channels} channels, "
                f"{self.num_visual} tokens at model.image_size {self.cfg.image_size})"
            )
        return image_features

    def _mlcm(
        self, feats: Tensor, level1: Tensor, pos1: Tensor, vis_mask: Tensor, words: Tensor, sentence: Tensor,
        text_pad: Tensor, need_attention: bool,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """The MLCM decoder layers over the level-1 tokens, and the last layer's attention map on request."""
        x, attention = level1, None
        if not len(self.mlcm_decoder):
            return x, attention
        memory, memory_pos, memory_mask = self._memory(feats, level1, pos1, vis_mask, words, sentence, text_pad)
        h, w = feats.shape[-2:]
        for k, layer in enumerate(self.mlcm_decoder):
            want = need_attention and k == len(self.mlcm_decoder) - 1 and "visual" in self.cfg.memory
            x, cross = layer(x, pos1, vis_mask, memory, memory_pos, memory_mask, need_weights=want)
            if cross is not None:
                attention = mlcm_attention_map(cross, vis_mask, h, w)
        return x, attention

    def _memory(
        self, feats: Tensor, level1: Tensor, pos1: Tensor, vis_mask: Tensor, words: Tensor, sentence: Tensor,
        text_pad: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """The MLCM memory ``y``, its positions and its padding mask, from the parts the config names."""
        bsz = level1.shape[0]
        parts, pos, masks = [], [], []
        if "visual" in self.cfg.memory:
            parts.append(level1)
            pos.append(pos1.expand(bsz, -1, -1))
            masks.append(vis_mask)
            for f in self.extra(feats) if self.extra is not None else ():
                h, w = f.shape[-2:]
                parts.append(f.flatten(2).transpose(1, 2))
                pos.append(sine_position_encoding(h, w, f.shape[1], f.device).to(f.dtype).expand(bsz, -1, -1))
                masks.append(torch.zeros(bsz, h * w, dtype=torch.bool, device=f.device))
        if self.memory_text_proj is not None:
            tpos = self.memory_text_pos.weight  # type: ignore[union-attr]
            if "words" in self.cfg.memory:
                parts.append(F.relu(self.memory_text_proj(words)))
                pos.append(tpos[: words.shape[1]].expand(bsz, -1, -1))
                masks.append(text_pad)
            if "sentence" in self.cfg.memory:
                parts.append(F.relu(self.memory_text_proj(sentence)).unsqueeze(1))
                pos.append(tpos[-1:].expand(bsz, -1, -1))
                masks.append(torch.zeros(bsz, 1, dtype=torch.bool, device=words.device))
        return torch.cat(parts, 1), torch.cat(pos, 1), torch.cat(masks, 1)

    def _fuse(
        self, x: Tensor, words: Tensor, sentence: Tensor, vis_mask: Tensor, text_pad: Tensor, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """The fusion of ``[visual tokens; word tokens; REG]``: its output and, on request, its attention."""
        bsz, nv, nt = x.shape[0], x.shape[1], words.shape[1]
        reg = self.reg_token.expand(bsz, -1, -1)
        if self.reg_query_proj is not None:  # model.reg_from_query
            reg = reg + self.reg_query_proj(sentence).unsqueeze(1)
        tokens = torch.cat([F.relu(self.fusion_visual_proj(x)), F.relu(self.fusion_text_proj(words)), reg], 1)
        pos = torch.cat([self.fusion_pos.weight[: nv + nt], self.fusion_pos.weight[-1:]], 0).unsqueeze(0)
        mask = torch.cat([vis_mask, text_pad, torch.zeros(bsz, 1, dtype=torch.bool, device=x.device)], 1)
        return self.fusion(self.token_positions(tokens, pos), pos, mask, need_weights=need_weights)

    def encode_image(self, image: Tensor, backbone: nn.Module | None = None) -> Tensor:
        """The visual input ``(B, feature_channels, h, w)`` of the normalised ``image``: :meth:`feature_map` of the
        maps of ``backbone`` (the model's own unless given)."""
        return self.feature_map((backbone or self.backbone)(image))

    def feature_map(self, maps: list[Tensor]) -> Tensor:
        """The visual input from the backbone's maps (those of ``backbone.return_levels``, highest resolution
        first): the stride-32 map and, with ``stride16_detail``, the stride-16 map folded in."""
        by_stride = dict(zip(self.backbone.return_levels, maps, strict=True))
        if not self.cfg.stride16_detail:
            return by_stride[32]
        # Space-to-depth: each stride-32 cell also carries its 2x2 stride-16 cells as channels.
        return torch.cat([by_stride[32], F.pixel_unshuffle(by_stride[16], 2)], 1)

    # --- loss --------------------------------------------------------------------------------------------------
    def needs_attention(self, cfg: LossConfig) -> bool:
        return self.cfg.head == "reg" and cfg.reg_attention_weight > 0

    def loss_terms(self, cfg: LossConfig) -> tuple[str, ...]:
        terms = ("loss", "l1", "giou", "cell") if self.cfg.head == "cells" else ("loss", "l1", "giou")
        return terms + (("attention",) if self.needs_attention(cfg) else ())

    def loss(self, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig) -> dict[str, Tensor]:
        """The paper's terms on the [REG] box (eq. 15); with ``head: cells`` the same on the box of the cell
        holding the target's centre, plus a cross-entropy over the cells; the [REG] attention term when weighed."""
        target = batch["box"].float() / self.image_size
        if out.cell_scores is not None and out.cell_boxes is not None:
            side = math.isqrt(self.num_visual)
            losses = cell_losses(out.cell_scores, out.cell_boxes, target, side, side, cfg)
        else:
            losses = grounding_loss(out.boxes, target, cfg)
        if self.needs_attention(cfg):
            add_attention_terms(losses, [out.attention], target, cfg)
        return losses

    # --- optimiser groups and the stages ---------------------------------------------------------------------
    def pretrained_parameter_names(self) -> set[str]:
        """Names of the parameters initialised from pretrained weights (they get the lower learning rate)."""
        pretrained, _ = self.backbone.pretrained_and_new_parameters()
        names = {f"backbone.{n}" for n, _ in pretrained}
        names |= {f"text.{n}" for n in self.text.pretrained_names}
        if self.detr_init is not None:
            names |= self.detr_init.loaded
        own = dict(self.named_parameters())
        return {n for n in names if n in own}

    def init_report(self) -> str | None:
        return self.detr_init.summary() if self.detr_init is not None else None

    def reference_group(self, name: str) -> str:
        return "visual" if name.startswith(self.VISUAL_MODEL) else "text" if name.startswith("text.") else "rest"

    def core_facts(self) -> CoreFacts:
        cfg = self.cfg
        return CoreFacts(
            cfg.image_size, cfg.hidden_dim, self.text.hidden_size, cfg.heads, cfg.ffn_dim, cfg.max_tokens,
            dict(self.level_channels),
        )  # fmt: skip
