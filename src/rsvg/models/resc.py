"""ReSC-base: one-stage visual grounding by recursive sub-query construction (Yang et al., ECCV 2020), one of the
natural-image methods the paper benchmarks on DIOR-RSVG (Table II).

As its reference implementation builds it (zyang-ur/ReSC @ 5cb03df88b4f: ``model/grounding_model.py:
grounding_model_multihop``, ``model/modulation.py: FiLMedConvBlock_multihop, FiLMedConvBlock_context,
mask_softmax``, ``model/loss.py: diverse_loss``; the counts below are the reference's own model built at random
weights, at the default 512 width, 3 rounds, product fusion):

1. **Visual.** DarkNet-53 with YOLOv3's neck; only its stride-8 map is read (32×32 at 256 px; the neck has already
   brought the coarser levels into it), through a 1×1 conv-BN-ReLU to ``emb_size`` and L2-normalised over its
   channels (``mapping_visu``, 132,096 parameters).
2. **Text.** Every token's feature (the mean of the text encoder's last four layers, frozen by default) through
   Linear-ReLU-Dropout-Linear-ReLU and L2-normalised; padding tokens are zero (``mapping_lang``, 656,384 from
   BERT's 768).
3. **Sub-queries** (``film``, 7,491,587). Each round (:class:`WordAttentionFiLM`, 923,649) scores the words from
   the product of the visual map's mean, the word features and a context score, turns the scores into weights
   over the words (:func:`word_weights`), and their weighted sum (the sub-query) into a FiLM scale and shift
   (tanh of one Linear to ``2 · emb_size``) that modulate a 1×1 convolution of the visual map and its 8
   coordinate channels (instance-normalised, then ReLU), added back to the map. The first round's context score
   is 1 for every word; round ``k`` follows a 3×3 conv-BN-ReLU (2,360,320 each) and scores the words with
   ``1 − max`` of the earlier rounds' weights, so that it looks at words not yet used.
4. **Answer.** A 1×1 conv-BN-ReLU then a 1×1 conv to 9 anchors × (tx, ty, tw, th, conf) on the stride-8 grid
   (``fcn_out``, 143,149); the box of the best-scoring of the 9,216 anchor-cells (:mod:`rsvg.models.yolo`). The
   loss is FAOA's (cross-entropy over the confidences plus 5 × the MSE of the regression at the target
   anchor-cell) plus ``diversity_weight`` × (the rounds' overlap + the words no round covers)
   (:func:`diversity_loss`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.loss import LossConfig
from rsvg.models.onestage_layers import ConvBNReLU, coord_map
from rsvg.models.onestage_model import OneStageModel
from rsvg.models.outputs import GroundingOutput
from rsvg.models.resc_config import ReSCConfig
from rsvg.models.text_encoder import TextEncoder
from rsvg.models.yolo import AnchorSet

__all__ = [
    "STRIDE",
    "ReSC",
    "SubQueryModulation",
    "WordAttentionFiLM",
    "anchor_set",
    "diversity_loss",
    "word_mask",
    "word_weights",
]

#: the one backbone level ReSC reads (a feature cache stores it folded into a stride-32 map, each cell carrying its
#: 4×4 stride-8 cells as channels: :meth:`~rsvg.models.onestage_model.OneStageModel.encode_image`)
STRIDE = 8
#: the reference's ``mask_softmax`` multiplies the word scores by 10 before the softmax
TEMPERATURE = 10.0


def anchor_set(cfg: ReSCConfig) -> AnchorSet:
    """All 9 anchors of ``cfg`` on the one stride-8 grid: ``anchor_boxes`` (smallest first, as YOLOv3 lists them)
    reversed, measured at ``anchor_imsize`` px (with the defaults, :data:`rsvg.models.yolo.RESC_ANCHORS`)."""
    boxes = tuple((float(w), float(h)) for w, h in reversed(cfg.anchor_boxes))
    return AnchorSet(boxes, (tuple(range(len(boxes))),), (STRIDE,), float(cfg.anchor_imsize))


def word_mask(attention_mask: Tensor) -> Tensor:
    """``(B, Nt)`` bool: the query's words, i.e. its tokens without [CLS] (the first), [SEP] (the last) and the
    padding, the tokens the reference's ``mask_softmax`` and ``diverse_loss`` weigh."""
    words = attention_mask.bool().clone()
    last = (words.sum(1) - 1).clamp(min=0)
    words[:, 0] = False
    words[torch.arange(len(words), device=words.device), last] = False
    return words


def word_weights(scores: Tensor, words: Tensor) -> Tensor:
    """``(..., Nt)`` float32: the reference's ``mask_softmax`` of the word scores ``(..., Nt)``: a softmax of
    ``10 · scores`` over all tokens, kept on ``words`` (:func:`word_mask`) and renormalised (sum 1, or 0 for a
    query without words)."""
    weights = (scores.float() * TEMPERATURE).softmax(-1) * words.float()
    return weights / (weights.sum(-1, keepdim=True) + 1e-8)


def diversity_loss(scores: Tensor, words: Tensor) -> tuple[Tensor, Tensor]:
    """The reference's ``diverse_loss`` of the rounds' word scores ``(B, R, Nt)``, as two terms averaged over the
    batch. With ``S`` the rounds' word weights ``(B, R, Nt)`` (:func:`word_weights`): ``diversity`` = Σ of the
    squared off-diagonal entries of ``S·Sᵀ`` (rounds that weigh the same words), ``coverage`` = Σ over the words
    of ``1 − clamp(Σ_rounds S, 0, 1)`` (words no round weighs). The reference adds them."""
    weights = word_weights(scores, words[:, None])
    overlap = weights @ weights.transpose(1, 2)  # (B, R, R)
    off_diagonal = overlap * (1 - torch.eye(overlap.shape[1], device=overlap.device))
    diversity = off_diagonal.pow(2).sum() / len(scores)
    coverage = ((1 - weights.sum(1).clamp(0, 1)) * words.float()).sum() / len(scores)
    return diversity, coverage


class WordAttentionFiLM(nn.Module):
    """One sub-query round (the reference's ``FiLMedConvBlock_context``, ``cont_map`` and ``baseline`` off).

    ``attn_map`` and ``attn_score`` are the reference's kernel-1 ``Conv1d`` over the tokens, as Linear layers (the
    same numbers); ``film`` is its ``gamme_decode``; ``conv`` its ``conv1`` (with bias); ``norm`` its ``bn1``, an
    ``InstanceNorm2d`` without parameters. Their weights start as the reference's ``init_modules`` sets them
    (Kaiming-uniform, torch's default gain for it), their biases at torch's defaults."""

    def __init__(self, emb_size: int, fusion: str = "prod", coordmap: bool = True) -> None:
        super().__init__()
        self.fusion = fusion
        self.attn_map = nn.Linear(emb_size * (2 if fusion == "cat" else 1), emb_size // 2)
        self.attn_score = nn.Linear(emb_size // 2, 1)
        self.film = nn.Linear(emb_size, 2 * emb_size)
        self.conv = nn.Conv2d(emb_size + (8 if coordmap else 0), emb_size, 1)
        self.norm = nn.InstanceNorm2d(emb_size)
        for layer in (self.attn_map, self.attn_score, self.film, self.conv):
            nn.init.kaiming_uniform_(layer.weight)

    def forward(
        self, visual: Tensor, word_features: Tensor, context: Tensor, words: Tensor, coord: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """``visual`` (B, D, H, W), ``word_features`` (B, Nt, D), ``context`` (B, Nt) the score each token's
        feature is scaled by, ``words`` (B, Nt) :func:`word_mask`, ``coord`` (B, 8, H, W) → the modulated map
        (B, D, H, W) and the word scores (B, Nt), before :func:`word_weights`."""
        summary = visual.mean((2, 3))[:, None, :].expand_as(word_features)
        weighted = word_features * context[..., None].to(word_features.dtype)
        fused = summary * weighted if self.fusion == "prod" else torch.cat([summary, weighted], -1)
        scores = self.attn_score(torch.tanh(self.attn_map(fused))).squeeze(-1)
        sub_query = (word_weights(scores, words)[..., None] * word_features.float()).sum(1)
        gamma, beta = torch.tanh(self.film(sub_query)).chunk(2, -1)
        x = self.norm(self.conv(visual if coord is None else torch.cat([visual, coord], 1)))
        x = F.relu(gamma[..., None, None].to(x.dtype) * x + beta[..., None, None].to(x.dtype))
        return visual + x, scores


class SubQueryModulation(nn.Module):
    """The rounds (the reference's ``FiLMedConvBlock_multihop``, ``intmd`` off): ``rounds[0]`` on the visual map
    with every word's context score 1, then per later round a 3×3 conv-BN-ReLU (``convs[k − 1]``) and ``rounds[k]``
    with the context score 1 − clamp(the largest of the earlier rounds' word weights, 0, 1)."""

    def __init__(self, emb_size: int, rounds: int, fusion: str = "prod", coordmap: bool = True) -> None:
        super().__init__()
        self.rounds = nn.ModuleList(WordAttentionFiLM(emb_size, fusion, coordmap) for _ in range(rounds))
        self.convs = nn.ModuleList(ConvBNReLU(emb_size, emb_size, 3) for _ in range(rounds - 1))

    def forward(
        self, visual: Tensor, word_features: Tensor, words: Tensor, coord: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """→ the last round's map (B, D, H, W) and every round's word scores (B, R, Nt)."""
        context = word_features.new_ones(word_features.shape[:2])
        x, score = self.rounds[0](visual, word_features, context, words, coord)
        scores = [score]
        for conv, block in zip(self.convs, self.rounds[1:], strict=True):
            used = torch.stack([word_weights(s, words) for s in scores], 1).amax(1).clamp(0, 1)
            x, score = block(conv(x), word_features, 1 - used, words, coord)
            scores.append(score)
        return x, torch.stack(scores, 1)


class ReSC(OneStageModel):
    """The one-stage grounding model with sub-queries; ``cfg`` chooses the reference's options
    (:mod:`rsvg.models.resc_config`)."""

    arch = "resc"
    clamp_targets = True  # the reference's training loop clamps the box to the input before build_target

    def __init__(self, cfg: ReSCConfig, backbone: nn.Module, text_encoder: TextEncoder) -> None:
        super().__init__()
        if tuple(backbone.return_levels) != (STRIDE,):
            raise ValueError(f"ReSC reads the backbone's stride-{STRIDE} map only, got levels {backbone.return_levels}")
        self.cfg = cfg
        self.backbone = backbone
        self.text = text_encoder
        self.read_levels(backbone)
        self.anchors = anchor_set(cfg)
        e = cfg.emb_size
        self.mapping_visu = ConvBNReLU(self.level_channels[STRIDE], e)
        self.mapping_lang = nn.Sequential(
            nn.Linear(text_encoder.hidden_size, e),
            nn.ReLU(),
            nn.Dropout(cfg.text_dropout),
            nn.Linear(e, e),
            nn.ReLU(),
        )
        self.film = SubQueryModulation(e, cfg.rounds, cfg.fusion, cfg.coordmap)
        self.fcn_out = nn.Sequential(ConvBNReLU(e, e // 2), nn.Conv2d(e // 2, len(self.anchors.anchors) * 5, 1))

    # ------------------------------------------------------------------------------------------------------------
    def grid_outputs(
        self,
        image: Tensor | None,
        input_ids: Tensor,
        attention_mask: Tensor,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """The one grid's output, and for the diversity loss each round's word scores ``(B, R, Nt)`` and the
        tokens they weigh ``(B, Nt)``."""
        head, scores = self.head_outputs(image, input_ids, attention_mask, image_features, text_features)
        return [head], {"word_scores": scores, "words": word_mask(attention_mask)}

    def head_outputs(
        self,
        image: Tensor | None,
        input_ids: Tensor,
        attention_mask: Tensor,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The head's raw output ``[B, 45, G, G]`` (9 anchors × tx, ty, tw, th, conf) on the stride-8 grid and the
        rounds' word scores ``(B, R, Nt)``."""
        visual = F.normalize(self.mapping_visu(self.visual_maps(image, image_features)[0]), p=2, dim=1)
        raw, _ = self.text(input_ids, attention_mask) if text_features is None else text_features
        # every token of the last four layers, averaged (the encoder's word features); a frozen encoder's are
        # detached as the reference's (its --tunebert is freeze_text_encoder: false). The reference maps the first
        # (number of tokens) and leaves the padding at zero
        tokens = F.normalize(self.mapping_lang(raw.detach() if self.text.frozen else raw), p=2, dim=-1)
        tokens = tokens * attention_mask[..., None].to(tokens.dtype)
        b, _, h, w = visual.shape
        coord = coord_map(b, h, w, visual.device).to(visual.dtype) if self.cfg.coordmap else None
        x, scores = self.film(visual, tokens, word_mask(attention_mask), coord)
        return self.fcn_out(x), scores

    # --- loss ----------------------------------------------------------------------------------------------------
    def loss_terms(self, cfg: LossConfig) -> tuple[str, ...]:
        return ("loss", "conf", "coord", "diversity", "coverage")

    def loss(self, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig) -> dict[str, Tensor]:
        """The reference's loss: :func:`~rsvg.models.yolo.yolo_grounding_loss` (cross-entropy over all
        anchor-cells' confidences against the target anchor-cell, plus 5 × the regression's MSE there) on the box
        clamped to ``[0, image_size − 1]`` as its training loop does, plus ``diversity_weight`` × the
        :func:`diversity_loss` terms (returned unweighted)."""
        terms = super().loss(out, batch, cfg)
        diversity, coverage = diversity_loss(out.extra["word_scores"], out.extra["words"])
        terms["loss"] = terms["loss"] + self.cfg.diversity_weight * (diversity + coverage)
        return {**terms, "diversity": diversity.detach(), "coverage": coverage.detach()}
