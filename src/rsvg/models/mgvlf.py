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

Options that are not in the paper (off in its configs, on in the lite config; see :mod:`rsvg.models.config`):
``stride16_detail`` (the stride-16 map folded into the stride-32 tokens, :meth:`MGVLF.feature_map`),
``positions_in_tokens``, ``visual_norm``, ``text_norm``, ``head: cells`` (:class:`CellHead` instead of step 4),
``object_head`` (per-cell categories and the query's category, whose agreement is a prior on the cell scores),
``rank``: step 4b, the best cells ranked again as objects with their colours read from the image
(:mod:`rsvg.models.rank`), ``zoom``: step 5, a second look at the image at a finer resolution around a small
first box (:mod:`rsvg.models.zoom`), and ``refine``: step 6, the answer's box read again from the stride-16 map and
the image's colours and corrected (:mod:`rsvg.models.refine`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.boxes import stack_objects
from rsvg.data.categories import DIOR_CLASSES
from rsvg.models.config import ModelConfig
from rsvg.models.detr_init import DetrInitReport
from rsvg.models.heads import BoxHead, CellHead
from rsvg.models.rank import CandidateRanker, colour_channels, colour_map, unfold_colour_map
from rsvg.models.refine import BoxRefiner, jitter_boxes
from rsvg.models.text_encoder import TextEncoder
from rsvg.models.transformer import DecoderLayer, Encoder, sine_position_encoding
from rsvg.models.zoom import (
    SecondLook,
    crop_map,
    crop_windows,
    from_window,
    needs_zoom,
    window_origins,
    window_padding,
    window_token_padding,
)

BACKBONE_STRIDE = 32


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


@dataclass
class GroundingOutput:
    """Predicted boxes, normalised ``(x1, y1, x2, y2)`` in the network input, and optional attention maps."""

    boxes: Tensor  # (B, 4)
    # (B, h, w): the [REG] token's attention over the visual tokens; with ``head: cells`` the cells' softmax
    attention: Tensor | None = None
    cell_scores: Tensor | None = None  # (B, h*w) logits, ``head: cells`` only
    cell_boxes: Tensor | None = None  # (B, h*w, 4), ``head: cells`` only
    # (B, h, w), with need_attention: the MLCM attention map (paper Fig. 6), see :func:`mlcm_attention_map`
    mlcm_attention: Tensor | None = None
    # ``object_head`` only: (B, h*w, 20) logits over the DIOR categories per visual token, and (B, 20) logits of
    # the referred object's category read from the query
    object_logits: Tensor | None = None
    query_category_logits: Tensor | None = None
    # ``zoom`` only (:mod:`rsvg.models.zoom`): the samples that got a second look (``zoom_rows``, (Z,)), their
    # windows' input-pixel corners (Z, 2), the second look's cell scores (Z, g²) and window-normalised boxes
    # (Z, g², 4); at inference also the first look's boxes (B, 4) (``boxes`` then holds the second look's box
    # for the ``zoom_rows``)
    zoom_rows: Tensor | None = None
    zoom_origins: Tensor | None = None
    zoom_scores: Tensor | None = None
    zoom_boxes: Tensor | None = None
    first_boxes: Tensor | None = None
    # ``rank`` only (:mod:`rsvg.models.rank`): the candidate cells (B, K) in the first look's order, their boxes
    # (B, K, 4) and the ranking's logits (B, K); ``boxes`` holds the best candidate's box (before a second look)
    rank_cells: Tensor | None = None
    rank_boxes: Tensor | None = None
    rank_scores: Tensor | None = None
    # ``refine`` only (:mod:`rsvg.models.refine`): in training the refined boxes of the image's jittered objects
    # (N, 4) and those objects' boxes (N, 4); at inference the boxes before the refinement (B, 4)
    refine_boxes: Tensor | None = None
    refine_truth: Tensor | None = None
    unrefined_boxes: Tensor | None = None
    zoom_geometry: tuple[int, int] | None = None  # (image_size, zoom_window): maps targets into the windows


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
        # backbone channels per stride (the backbone returns the levels backbone_levels(cfg) names)
        self.level_channels = dict(zip(backbone.return_levels, backbone.out_channels, strict=True))
        c5 = self.level_channels[32] + (4 * self.level_channels[16] if cfg.stride16_detail else 0)
        # model.rank / model.refine: the colour map rides along in the visual feature map, after the backbone's maps
        self.colour_channels = colour_channels(BACKBONE_STRIDE) if cfg.colour_map else 0
        # channels of the map encode_image returns (what feature caches store)
        self.feature_channels = c5 + self.colour_channels
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
        self.fusion_pos = nn.Embedding(self.num_visual + cfg.max_tokens + 1, d)
        self.fusion = Encoder(cfg.fusion_layers, d, cfg.heads, cfg.ffn_dim, cfg.dropout)

        # --- Localisation ---
        self.head: nn.Module = BoxHead(d) if cfg.head == "reg" else CellHead(d, b)
        self.object_head = nn.Linear(d, len(DIOR_CLASSES)) if cfg.object_head else None
        self.query_category = nn.Linear(b, len(DIOR_CLASSES)) if cfg.object_head else None
        self.prior_scale = nn.Parameter(torch.ones(())) if cfg.object_head else None
        self.ranker = (
            CandidateRanker(d, b, cfg.heads, cfg.ffn_dim, cfg.rank_layers, cfg.max_tokens, len(DIOR_CLASSES))
            if cfg.rank
            else None
        )

        # --- The second look at small objects (not in the paper; rsvg.models.zoom) ---
        # channels of its input map (crop_map: stride 16 with stride 8 folded in; what ZoomCrops stores)
        self.zoom_channels = self.level_channels[16] + 4 * self.level_channels[8] if cfg.zoom else 0
        self.second_look = (
            SecondLook(
                self.zoom_channels,
                d,
                b,
                cfg.heads,
                cfg.ffn_dim,
                cfg.zoom_layers,
                cfg.zoom_grid,
                cfg.max_tokens,
            )
            if cfg.zoom
            else None
        )
        # --- Box refinement (not in the paper; rsvg.models.refine) ---
        self.refiner = BoxRefiner(self.level_channels[16], cfg.refine_bins, cfg.refine_grow) if cfg.refine else None
        self._init_new_parameters()
        # what a DETR checkpoint initialised besides the backbone (rsvg.models.detr_init; set by build_model)
        self.detr_init: DetrInitReport | None = None

    def _init_new_parameters(self) -> None:
        """Xavier for every matrix not loaded from pretrained weights (paper Sec. V-B)."""
        for name, p in self.named_parameters():
            if name.startswith(("backbone.", "text.")):
                continue
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.reg_token, std=0.02)
        if self.object_head is not None:
            # RetinaNet's prior (Lin et al. 2017, Sec. 4.1): every cell starts at P(holds a c) = 0.01, so the focal
            # loss over the h*w*20 mostly empty cells starts near its final size, not ~180 (at 0.5), which for the
            # first hundred steps took most of the clipped gradient away from the grounding heads
            nn.init.constant_(self.object_head.bias, -math.log((1 - 0.01) / 0.01))
        if self.refiner is not None:
            self.refiner.reset_parameters()  # starts as the identity

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
        image: Tensor,
        padding_mask: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        need_attention: bool = False,
        *,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
        zoom_image: Tensor | None = None,
        zoom_features: Tensor | None = None,
        zoom_origin: Tensor | None = None,
        zoom_valid: Tensor | None = None,
        objects: list[Tensor] | None = None,
    ) -> GroundingOutput:
        """``image`` (B, 3, S, S) normalised, ``padding_mask`` (B, S, S) True on padding, token ids and mask
        (B, Nt). Returns normalised boxes (and the [REG] attention map on request).

        ``image_features`` (the backbone's map, :meth:`encode_image`) replaces ``image`` when given;
        ``text_features`` (words, sentence) likewise replaces the text encoder's output.

        With ``model.zoom``: ``zoom_image`` (B, 3, S·k, S·k) uint8, the image letterboxed at ``zoom_scale`` k
        (:func:`~rsvg.data.transforms.zoom_letterbox`), gives the small first boxes a second look (inference);
        in training ``zoom_features`` (B, C, g, g) (:meth:`zoom_map` of crops around the targets),
        ``zoom_origin`` (B, 2) (their input-pixel corners) and ``zoom_valid`` (B,) (which samples have one)
        instead. Without either the model answers with its first look.

        With ``model.refine``, in training ``objects`` (one ``(K, 5)`` tensor per sample, rows ``(class, x1, y1, x2,
        y2)`` normalised: every annotated object of the image) are moved at random and refined (``refine_boxes``
        against ``refine_truth``); at inference the answer's box is refined (``unrefined_boxes`` keeps it)."""
        # 1. Multimodal encoder (either part may come precomputed: frozen encoders' features are cacheable)
        feats = self.encode_image(image) if image_features is None else image_features  # (B, C5, h, w)
        bsz, channels, h, w = feats.shape
        if h * w != self.num_visual or channels != self.feature_channels:
            raise ValueError(
                f"a {channels}x{h}x{w} feature map does not match the model ({self.feature_channels} channels, "
                f"{self.num_visual} tokens at model.image_size {self.cfg.image_size})"
            )
        colours = None
        if self.colour_channels:  # model.rank / refine: the folded colour map rides at the end; unfold it once
            feats, folded = feats[:, : -self.colour_channels], feats[:, -self.colour_channels :]
            colours = unfold_colour_map(folded, BACKBONE_STRIDE)  # (B, 3, S/4, S/4)
        # model.refine: the backbone's stride-16 map, unfolded from the stride-32 cells that carry it
        detail = F.pixel_shuffle(feats[:, self.level_channels[32] :], 2) if self.refiner is not None else None
        if self.visual_norm is not None:
            feats = self.visual_norm(feats.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        level1 = self.input_proj(feats).flatten(2).transpose(1, 2)  # (B, h*w, D)
        pos1 = sine_position_encoding(h, w, level1.shape[-1], level1.device).to(level1.dtype).unsqueeze(0)
        if self.cfg.positions_in_tokens:
            level1 = level1 + pos1
        vis_mask = visual_padding_mask(padding_mask, h, w)
        words, sentence = self.text(input_ids, attention_mask) if text_features is None else text_features
        raw_words, raw_sentence = words, sentence  # the second look normalises them itself
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
        tokens = torch.cat(
            [
                F.relu(self.fusion_visual_proj(x)),
                F.relu(self.fusion_text_proj(words)),
                self.reg_token.expand(bsz, -1, -1),
            ],
            1,
        )
        pos = torch.cat([self.fusion_pos.weight[: h * w + nt], self.fusion_pos.weight[-1:]], 0).unsqueeze(0)
        if self.cfg.positions_in_tokens:
            tokens = tokens + pos
        mask = torch.cat([vis_mask, text_pad, torch.zeros(bsz, 1, dtype=torch.bool, device=x.device)], 1)
        reg_attention = need_attention and self.cfg.head == "reg"
        out, weights = self.fusion(tokens, pos, mask, need_weights=reg_attention)

        # Object head (not in the paper): what each cell holds and what the query asks for, as categories; their
        # agreement, log Σ_c P(c | query)·P(cell holds a c), is a prior on the cells head's scores.
        object_logits = query_logits = prior = None
        if self.object_head is not None and self.query_category is not None and self.prior_scale is not None:
            object_logits = self.object_head(out[:, : h * w])
            query_logits = self.query_category(sentence)
            agreement = query_logits.float().log_softmax(-1).unsqueeze(1) + F.logsigmoid(object_logits.float())
            prior = self.prior_scale * agreement.logsumexp(-1)

        # 4. Localisation from the [REG] token (the paper), or from the best of the visual tokens (head: cells)
        if isinstance(self.head, CellHead):
            scores, cell_boxes = self.head(out[:, : h * w], vis_mask, h, w, sentence, prior)
            best = scores.argmax(1)
            boxes = cell_boxes[torch.arange(bsz, device=best.device), best]
            attention = scores.softmax(1).reshape(bsz, h, w) if need_attention else None
            result = GroundingOutput(boxes, attention, scores, cell_boxes, mlcm_attention, object_logits, query_logits)
            if self.ranker is not None and colours is not None:
                self._rank(result, colours, raw_words, raw_sentence, text_pad)
        else:
            attention = None
            if weights is not None:
                attention = weights[:, -1, : h * w].reshape(bsz, h, w)
            result = GroundingOutput(
                boxes=self.head(out[:, -1]),
                attention=attention,
                mlcm_attention=mlcm_attention,
                object_logits=object_logits,
                query_category_logits=query_logits,
            )

        # 5. The second look at small objects (model.zoom, not in the paper)
        if self.second_look is not None:
            result = self._look_again(
                result,
                padding_mask,
                raw_words,
                raw_sentence,
                text_pad,
                zoom_image,
                zoom_features,
                zoom_origin,
                zoom_valid,
            )

        # 6. The answer's box read again and corrected (model.refine, not in the paper)
        if self.refiner is not None and detail is not None and colours is not None:
            self._refine(result, detail, colours, objects)
        return result

    def _refine(self, result: GroundingOutput, detail: Tensor, colours: Tensor, objects: list[Tensor] | None) -> None:
        """Step 6 (``model.refine``, :mod:`rsvg.models.refine`): in training the image's annotated objects, moved
        at random, are refined (the loss compares ``refine_boxes`` with ``refine_truth``; the answer stays); at
        inference the answer's box is refined."""
        assert self.refiner is not None
        if self.training:
            if objects is None:
                raise ValueError(
                    "model.refine trains on the image's annotated objects: pass objects (the trainer builds the "
                    "dataset with image_objects=True)"
                )
            table, rows = stack_objects(objects)
            truth = table[:, 1:].to(detail.device, torch.float32)
            rows = rows.to(detail.device)
            result.refine_boxes = self.refiner(detail, colours, rows, jitter_boxes(truth))
            result.refine_truth = truth
            return
        result.unrefined_boxes = result.boxes
        rows = torch.arange(len(result.boxes), device=detail.device)
        result.boxes = self.refiner(detail, colours, rows, result.boxes.detach()).to(result.boxes.dtype)

    def _rank(
        self, result: GroundingOutput, colours: Tensor, words: Tensor, sentence: Tensor, text_pad: Tensor
    ) -> None:
        """Step 4b (``model.rank``, :mod:`rsvg.models.rank`): the first look's best cells ranked again as objects;
        the winner's box replaces the first look's (``colours``: the unfolded colour map). Everything taken from the
        first look is detached."""
        assert self.ranker is not None and result.cell_scores is not None and result.cell_boxes is not None
        first = result.cell_scores.detach()
        top = first.topk(min(self.cfg.rank_candidates, first.shape[1]), 1)
        rows = torch.arange(len(first), device=first.device)
        boxes = result.cell_boxes.detach()[rows[:, None], top.indices]
        categories = None if result.object_logits is None else result.object_logits.detach()[rows[:, None], top.indices]
        scores = self.ranker(boxes, top.values, categories, colours, words, sentence, text_pad)
        result.rank_cells, result.rank_boxes, result.rank_scores = top.indices, boxes, scores
        result.boxes = boxes[rows, scores.argmax(1)].to(result.boxes.dtype)

    def _look_again(
        self,
        result: GroundingOutput,
        padding_mask: Tensor,
        words: Tensor,
        sentence: Tensor,
        text_pad: Tensor,
        zoom_image: Tensor | None,
        zoom_features: Tensor | None,
        zoom_origin: Tensor | None,
        zoom_valid: Tensor | None,
    ) -> GroundingOutput:
        """Step 5 (``model.zoom``, :mod:`rsvg.models.zoom`): in training the second look reads the encoded crops
        around the targets (its loss is added; the first boxes stay); at inference it reads windows of the zoom
        canvas around the small first boxes and its boxes replace them (``first_boxes`` keeps the first look's)."""
        assert self.second_look is not None
        cfg = self.cfg
        training_crops = zoom_features is not None and zoom_origin is not None and zoom_valid is not None
        if training_crops:  # crops around the targets, encoded once (rsvg.engine.feature_cache)
            rows = zoom_valid.nonzero().flatten()  # type: ignore[union-attr]
            origins = zoom_origin[rows]  # type: ignore[index]
        elif zoom_image is not None:  # inference: windows around the small first boxes
            result.first_boxes = result.boxes
            rows = needs_zoom(result.boxes.detach(), cfg.image_size, cfg.zoom_max_side).nonzero().flatten()
            origins = window_origins(result.boxes.detach()[rows], cfg.image_size, cfg.zoom_window)
        else:
            return result
        if len(rows) == 0:
            return result
        if training_crops:
            maps = zoom_features[rows]  # type: ignore[index]
            crop_pad = window_padding(padding_mask[rows], origins, cfg.zoom_window)
        else:
            crops, crop_pad = crop_windows(
                zoom_image[rows],  # type: ignore[index]
                padding_mask[rows],
                origins,
                cfg.zoom_window,
                cfg.zoom_scale,
                self.backbone.mean,
                self.backbone.std,
            )
            maps = self.zoom_map(crops)
        scores, zoom_boxes = self.second_look(
            maps,
            origins,
            cfg.image_size,
            cfg.zoom_window,
            window_token_padding(crop_pad, cfg.zoom_grid),
            words[rows],
            sentence[rows],
            text_pad[rows],
        )
        result.zoom_rows, result.zoom_origins, result.zoom_scores, result.zoom_boxes = rows, origins, scores, zoom_boxes
        result.zoom_geometry = (cfg.image_size, cfg.zoom_window)
        if not training_crops:  # the second look's box replaces the first
            best = zoom_boxes[torch.arange(len(rows), device=rows.device), scores.argmax(1)]
            boxes = result.boxes.clone()
            boxes[rows] = from_window(best, origins, cfg.image_size, cfg.zoom_window).to(boxes.dtype)
            result.boxes = boxes
        return result

    def zoom_map(self, crops: Tensor) -> Tensor:
        """The second look's input from normalised crops: :func:`~rsvg.models.zoom.crop_map`."""
        return crop_map(self.backbone, crops)

    def encode_image(self, image: Tensor) -> Tensor:
        """The visual input ``(B, feature_channels, h, w)`` of the normalised ``image``: :meth:`feature_map` of the
        backbone's maps."""
        return self.feature_map(self.backbone(image), image)

    def feature_map(self, maps: list[Tensor], image: Tensor) -> Tensor:
        """The visual input of the model from the backbone's maps (those of ``backbone.return_levels``, highest
        resolution first) and the normalised image they came from: the stride-32 map, with ``stride16_detail``
        the stride-16 map folded in, with ``rank`` or ``refine`` the colour map (:func:`~rsvg.models.rank.colour_map`)
        last."""
        by_stride = dict(zip(self.backbone.return_levels, maps, strict=True))
        parts = [by_stride[32]]
        if self.cfg.stride16_detail:
            # Space-to-depth: each stride-32 cell also carries its 2x2 stride-16 cells as channels.
            parts.append(F.pixel_unshuffle(by_stride[16], 2))
        if self.cfg.colour_map:
            parts.append(colour_map(image, BACKBONE_STRIDE).to(parts[0].dtype))
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
