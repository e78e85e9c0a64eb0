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

Options that are not in the paper are off in its configs (see :mod:`rsvg.models.config`): ``stride16_detail``,
``positions_in_tokens``, ``visual_norm``, ``text_norm`` change the steps above; ``head: cells`` is a head beside
the [REG] head (:mod:`rsvg.models.heads`); the stages after step 4 (:mod:`rsvg.models.stages`) run in order on
the result and may change the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.config import ModelConfig
from rsvg.models.detr_init import DetrInitReport
from rsvg.models.heads import AttentionBoxHead, BoxHead, CellHead
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stages import FEATURE_PARTS, Stage, StageContext, build_stages, upgrade_legacy_names
from rsvg.models.stages.base import BACKBONE_STRIDE
from rsvg.models.text_encoder import TextEncoder
from rsvg.models.transformer import DecoderLayer, Encoder, sine_position_encoding

# GroundingOutput is defined in rsvg.models.outputs and named here too, where docs/scenes.md points
__all__ = ["BACKBONE_STRIDE", "MGVLF", "GroundingOutput", "mlcm_attention_map", "visual_padding_mask"]


class ExtraLevels(nn.Module):
    """The reference's conv6..conv8: each a 1×1 conv to ``mid`` channels and a 3×3 stride-2 conv to ``out``.

    As in the reference code there is no activation between them. With ``padding=0`` a 20×20 map gives
    9×9, 4×4 and 1×1.
    """

    def __init__(self, in_channels: int, mid: int, out: int, levels: int, padding: int) -> None:
        super().__init__()
        blocks = []
        for i in range(levels):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(in_channels if i == 0 else out, mid, 1),
                    nn.Conv2d(mid, out, 3, stride=2, padding=padding),
                )
            )
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs


def visual_padding_mask(padding_mask: Tensor, height: int, width: int) -> Tensor:
    """``(B, H, W)`` pixel mask (True = padding) → ``(B, h*w)`` token mask: a token is padding only if every
    pixel of its cell is."""
    valid = F.adaptive_max_pool2d((~padding_mask).unsqueeze(1).float(), (height, width))
    return (valid < 0.5).flatten(1)


def mlcm_attention_map(cross: Tensor, vis_mask: Tensor, height: int, width: int) -> Tensor:
    """The MLCM attention map from the last MLCM decoder layer's cross-attention ``(B, h*w, N_memory)`` (head
    averaged; the level-1 visual tokens come first in the memory): the attention each level-1 cell receives,
    averaged over the (unpadded) visual queries and normalised to sum to 1 over the unpadded cells."""
    valid = (~vis_mask).to(cross.dtype)  # (B, h*w)
    received = (cross[:, :, : height * width] * valid[:, :, None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
    received = received * valid
    return (received / received.sum(1, keepdim=True).clamp(min=1e-12)).reshape(-1, height, width)


class MGVLF(nn.Module):
    """The grounding model; ``cfg`` chooses MGVLF, the baseline or an ablation (see :mod:`rsvg.models.config`)."""

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

    def __init__(self, cfg: ModelConfig, backbone: nn.Module, text_encoder: TextEncoder) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_dim
        self.backbone = backbone
        self.text = text_encoder
        # backbone channels per stride (the backbone returns the levels build.backbone_levels(cfg) names)
        self.level_channels = dict(zip(backbone.return_levels, backbone.out_channels, strict=True))
        # the visual feature map (what encode_image returns and feature caches store): the stride-32 map, with
        # stride16_detail the stride-16 map folded in, then the maps the stages read (FEATURE_PARTS)
        c5 = self.level_channels[32] + (4 * self.level_channels[16] if cfg.stride16_detail else 0)
        b = text_encoder.hidden_size
        side = -(-cfg.image_size // BACKBONE_STRIDE)
        self.num_visual = side * side

        # --- MLCM: multi-level cross-modal refinement of the level-1 visual tokens ---
        self.visual_norm = nn.LayerNorm(c5) if cfg.visual_norm else None
        self.word_norm = nn.LayerNorm(b) if cfg.text_norm else None
        self.sentence_norm = nn.LayerNorm(b) if cfg.text_norm else None
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

        # --- Localisation ---
        if cfg.head == "cells":
            self.head: nn.Module = CellHead(d, b)
        else:
            self.head = AttentionBoxHead(d) if cfg.reg_centre_from_attention else BoxHead(d)

        # --- The stages after the paper's model (rsvg.models.stages), in the order they run ---
        self.stages = build_stages(cfg, d, b, self.level_channels)
        parts = sorted({p for stage in self.stages.values() for p in stage.feature_parts})
        self.feature_parts = {p: FEATURE_PARTS[p].channels for p in parts}
        self.core_channels = c5
        self.feature_channels = c5 + sum(self.feature_parts.values())
        self._init_new_parameters()
        # what a DETR checkpoint initialised besides the backbone (rsvg.models.detr_init; set by build_model)
        self.detr_init: DetrInitReport | None = None
        # checkpoints written before the stages had their own modules load under the current names
        self._register_load_state_dict_pre_hook(_upgrade_legacy_state)

    def _init_new_parameters(self) -> None:
        """Xavier for every matrix not loaded from pretrained weights (paper Sec. V-B)."""
        for name, p in self.named_parameters():
            if name.startswith(("backbone.", "text.")):
                continue
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.reg_token, std=0.02)
        for stage in self.stages.values():
            stage.reset_parameters()

    # ------------------------------------------------------------------------------------------------------------
    def _memory(
        self,
        feats: Tensor,
        level1: Tensor,
        pos1: Tensor,
        vis_mask: Tensor,
        words: Tensor,
        sentence: Tensor,
        text_pad: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The MLCM memory ``y``, its positions and its padding mask, from the parts the config names."""
        bsz = level1.shape[0]
        parts, pos, masks = [], [], []
        if "visual" in self.cfg.memory:
            parts.append(level1)
            pos.append(pos1.expand(bsz, -1, -1))
            masks.append(vis_mask)
            if self.extra is not None:
                for f in self.extra(feats):
                    h, w = f.shape[-2:]
                    parts.append(f.flatten(2).transpose(1, 2))
                    pos.append(sine_position_encoding(h, w, f.shape[1], f.device).to(f.dtype).expand(bsz, -1, -1))
                    masks.append(torch.zeros(bsz, h * w, dtype=torch.bool, device=f.device))
        if self.memory_text_proj is not None:
            nt = words.shape[1]
            tpos = self.memory_text_pos.weight  # type: ignore[union-attr]
            if "words" in self.cfg.memory:
                parts.append(F.relu(self.memory_text_proj(words)))
                pos.append(tpos[:nt].expand(bsz, -1, -1))
                masks.append(text_pad)
            if "sentence" in self.cfg.memory:
                parts.append(F.relu(self.memory_text_proj(sentence)).unsqueeze(1))
                pos.append(tpos[-1:].expand(bsz, -1, -1))
                masks.append(torch.zeros(bsz, 1, dtype=torch.bool, device=words.device))
        return torch.cat(parts, 1), torch.cat(pos, 1), torch.cat(masks, 1)

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
        """``image`` (B, 3, S, S) normalised, ``padding_mask`` (B, S, S) True on padding, token ids and mask
        (B, Nt). Returns normalised boxes (and the attention maps on request).

        ``image_features`` (the visual feature map, :meth:`encode_image`) replaces ``image`` when given;
        ``text_features`` (words, sentence) likewise replaces the text encoder's output. ``extras`` holds the
        batch entries the stages read (:attr:`batch_keys`)."""
        # 1. Multimodal encoder (either part may come precomputed: frozen encoders' features are cacheable)
        if image_features is None:
            if image is None:
                raise ValueError("give the image or its features (image_features)")
            image_features = self.encode_image(image)
        bsz, channels, h, w = image_features.shape
        if h * w != self.num_visual or channels != self.feature_channels:
            raise ValueError(
                f"a {channels}x{h}x{w} feature map does not match the model ({self.feature_channels} channels, "
                f"{self.num_visual} tokens at model.image_size {self.cfg.image_size})"
            )
        feats, folded = self._split_features(image_features)
        if self.visual_norm is not None:
            feats = self.visual_norm(feats.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        level1 = self.input_proj(feats).flatten(2).transpose(1, 2)  # (B, h*w, D)
        pos1 = sine_position_encoding(h, w, level1.shape[-1], level1.device).to(level1.dtype).unsqueeze(0)
        if self.cfg.positions_in_tokens:
            level1 = level1 + pos1
        vis_mask = visual_padding_mask(padding_mask, h, w)
        raw_words, raw_sentence = self.text(input_ids, attention_mask) if text_features is None else text_features
        words, sentence = raw_words, raw_sentence
        if self.word_norm is not None and self.sentence_norm is not None:
            words, sentence = self.word_norm(words), self.sentence_norm(sentence)
        text_pad = attention_mask == 0

        # 2. MLCM: cross-modal decoder layers, then the self-attention encoder
        x = level1
        mlcm_attention = None
        if len(self.mlcm_decoder):
            memory, memory_pos, memory_mask = self._memory(feats, level1, pos1, vis_mask, words, sentence, text_pad)
            for k, layer in enumerate(self.mlcm_decoder):
                want = need_attention and k == len(self.mlcm_decoder) - 1 and "visual" in self.cfg.memory
                x, cross = layer(x, pos1, vis_mask, memory, memory_pos, memory_mask, need_weights=want)
                if cross is not None:
                    mlcm_attention = mlcm_attention_map(cross, vis_mask, h, w)
        x, _ = self.visual_encoder(x, pos1, vis_mask)

        # 3. Fusion of visual tokens, word tokens and the [REG] token
        nt = words.shape[1]
        reg = self.reg_token.expand(bsz, -1, -1)
        if self.reg_query_proj is not None:  # model.reg_from_query
            reg = reg + self.reg_query_proj(sentence).unsqueeze(1)
        tokens = torch.cat([F.relu(self.fusion_visual_proj(x)), F.relu(self.fusion_text_proj(words)), reg], 1)
        pos = torch.cat([self.fusion_pos.weight[: h * w + nt], self.fusion_pos.weight[-1:]], 0).unsqueeze(0)
        if self.cfg.positions_in_tokens:
            tokens = tokens + pos
        mask = torch.cat([vis_mask, text_pad, torch.zeros(bsz, 1, dtype=torch.bool, device=x.device)], 1)
        reg_attention = self.cfg.head == "reg" and (need_attention or self.cfg.reg_centre_from_attention)
        out, weights = self.fusion(tokens, pos, mask, need_weights=reg_attention)

        # 4. Localisation from the [REG] token (the paper), or from the best of the visual tokens (head: cells)
        if isinstance(self.head, CellHead):
            scores, cell_boxes = self.head(out[:, : h * w], vis_mask, h, w, sentence)
            result = GroundingOutput(scores.new_empty(0), mlcm_attention=mlcm_attention, cell_boxes=cell_boxes)
            result.choose_cell(scores, (h, w), need_attention)
        else:
            # the [REG] token's attention over the visual tokens (computed when asked for or read by the head)
            reg_weights = weights[:, -1, : h * w] if weights is not None else None
            if isinstance(self.head, AttentionBoxHead):  # model.reg_centre_from_attention
                boxes = self.head(out[:, -1], reg_weights, h, w)
            else:
                boxes = self.head(out[:, -1])
            attention = reg_weights.reshape(bsz, h, w) if need_attention and reg_weights is not None else None
            result = GroundingOutput(boxes, attention=attention, mlcm_attention=mlcm_attention)

        # 5. The stages after the paper's model, in order (none in the paper's configs)
        if len(self.stages):
            ctx = StageContext(
                cfg=self.cfg,
                padding_mask=padding_mask,
                visual_padding=vis_mask,
                grid=(h, w),
                tokens=out[:, : h * w],
                words=raw_words,
                sentence=raw_sentence,
                normalised_sentence=sentence,
                text_padding=text_pad,
                backbone=self.backbone,
                need_attention=need_attention,
                folded=folded,
                batch=extras or {},
            )
            for stage in self.stages.values():
                stage(result, ctx)
        return result

    def _split_features(self, features: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The visual feature map → the part the core model reads (stride 32, with ``stride16_detail`` the folded
        stride-16 map) and, by name, the folded stride-16 map (``"detail"``) and the stages' maps."""
        folded: dict[str, Tensor] = {}
        if self.cfg.stride16_detail:
            folded["detail"] = features[:, self.level_channels[32] : self.core_channels]
        start = self.core_channels
        for name, channels in self.feature_parts.items():
            folded[name] = features[:, start : start + channels]
            start += channels
        core = features if start == self.core_channels else features[:, : self.core_channels]
        return core, folded

    @property
    def batch_keys(self) -> tuple[str, ...]:
        """The batch entries the stages read (:func:`rsvg.engine.batching.forward_batch` hands them over)."""
        return tuple(dict.fromkeys(k for stage in self.stages.values() for k in stage.batch_keys))

    def stage_list(self) -> list[Stage]:
        """The enabled stages, in the order they run."""
        return list(self.stages.values())  # type: ignore[arg-type]

    def sample_extras(self, training: bool) -> list[Any]:
        """New sample extras (:mod:`rsvg.data.extras`) for a training or an evaluation set: what each sample must
        carry for the enabled stages. Fresh ones every call (an extra is bound to one set's samples)."""
        return [e for stage in self.stage_list() for e in stage.sample_extras(training)]

    def encode_image(self, image: Tensor) -> Tensor:
        """The visual input ``(B, feature_channels, h, w)`` of the normalised ``image``: :meth:`feature_map` of the
        backbone's maps."""
        return self.feature_map(self.backbone(image), image)

    def feature_map(self, maps: list[Tensor], image: Tensor) -> Tensor:
        """The visual input of the model from the backbone's maps (those of ``backbone.return_levels``, highest
        resolution first) and the normalised image they came from: the stride-32 map, with ``stride16_detail``
        the stride-16 map folded in, then the maps the stages read (:data:`~rsvg.models.stages.FEATURE_PARTS`)."""
        by_stride = dict(zip(self.backbone.return_levels, maps, strict=True))
        parts = [by_stride[32]]
        if self.cfg.stride16_detail:
            # Space-to-depth: each stride-32 cell also carries its 2x2 stride-16 cells as channels.
            parts.append(F.pixel_unshuffle(by_stride[16], 2))
        for name in self.feature_parts:
            parts.append(FEATURE_PARTS[name].compute(image).to(parts[0].dtype))
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def pretrained_parameter_names(self) -> set[str]:
        """Names of the parameters initialised from pretrained weights (they get the lower learning rate)."""
        pretrained, _ = self.backbone.pretrained_and_new_parameters()
        names = {f"backbone.{n}" for n, _ in pretrained}
        names |= {f"text.{n}" for n in self.text.pretrained_names}
        if self.detr_init is not None:
            names |= self.detr_init.loaded
        own = dict(self.named_parameters())
        return {n for n in names if n in own}


def _upgrade_legacy_state(state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
    """Load-state-dict pre-hook: rename an older checkpoint's stage parameters in place."""
    own = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    upgraded = upgrade_legacy_names(own)
    if upgraded.keys() == own.keys():
        return
    for key in own:
        del state_dict[prefix + key]
    for key, value in upgraded.items():
        state_dict[prefix + key] = value
