"""Candidate ranking (``model.stages.rank``, not in the paper): the first look's best cells ranked again as objects.

The cells head scores 12×12 cells from the fusion's tokens, which come from a frozen ImageNet backbone behind a
LayerNorm: what an object *is* survives that, what *colour* it has mostly does not, and a query that names an
object's colour, size or neighbour then often lands on another object of the same category.

So the ``rank_candidates`` best cells become candidates, each described by what a cell token cannot say well:

* its box's colours, read from the image itself: a 4×4 grid of the box and a 4×4 grid of the box grown to twice
  its size (the surroundings), from the image's colour map (:mod:`rsvg.models.stages.colours`);
* its box (corners, centre, log size);
* the object head's category probabilities at its cell (``object_head``) and the first look's score, relative to
  the best one.

The candidates attend to each other (relations and relative size need the other objects; their box centres are
the position encodings) and to the query's words in ``rank_layers`` decoder layers, and a score per candidate
(an MLP plus a bilinear match with the sentence, plus the first look's relative score) picks the answer. The
first look's scores, boxes and category logits enter detached: the ranking loss trains only this module (and
the text encoder where that is trainable).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from rsvg.data.categories import DIOR_CLASSES
from rsvg.errors import ConfigError
from rsvg.models.loss import LossConfig
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stage_inputs import CoreFacts
from rsvg.models.stages.base import Stage, StageContext, StageOptions, require_finite_boxes
from rsvg.models.transformer import DecoderLayer, query_memory, sine_encoding_xy

COLOUR_BINS = 4  # each box (and its surroundings) is read as a COLOUR_BINS × COLOUR_BINS grid of colours
GEOMETRY_FEATURES = 8  # x1, y1, x2, y2, cx, cy, log w, log h


def candidate_colours(colours: Tensor, boxes: Tensor) -> Tensor:
    """Each box's colours: ``colours`` (B, 3, H, W) the unfolded colour map, ``boxes`` (B, K, 4) normalised to the
    input → (B, K, 2·3·COLOUR_BINS²): the box's grid, then the grid of the box grown to twice its size. NaN or
    infinite boxes are refused (:class:`~rsvg.errors.NonFiniteError`): ``roi_align`` would crash the process."""
    require_finite_boxes(boxes, "candidate ranking")
    bsz, k, _ = boxes.shape
    height, width = colours.shape[-2:]
    scale = boxes.new_tensor([width, height, width, height])
    pixels = boxes.float() * scale
    centre, half = (pixels[..., :2] + pixels[..., 2:]) / 2, (pixels[..., 2:] - pixels[..., :2]) / 2
    grown = torch.cat([centre - 2 * half, centre + 2 * half], -1)
    rows = torch.arange(bsz, device=boxes.device, dtype=torch.float32).repeat_interleave(k)[:, None]
    colours, feats = colours.float(), []
    for b in (pixels, grown):
        rois = torch.cat([rows, b.reshape(-1, 4)], 1)
        # 2x2 samples per bin of a map already averaged over 4x4 pixels (adaptive sampling: 15x slower on large boxes)
        feats.append(roi_align(colours, rois, COLOUR_BINS, aligned=True, sampling_ratio=2).reshape(bsz, k, -1))
    return torch.cat(feats, -1)


def box_geometry(boxes: Tensor) -> Tensor:
    """``(…, 4)`` normalised boxes → ``(…, GEOMETRY_FEATURES)``: corners, centre and log width/height."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1e-3)
    return torch.cat([boxes, centre, size.log()], -1)


@dataclass
class RankRecord:
    cells: Tensor  # (B, K) the candidate cells, in the first look's order (candidate 0: its best cell)
    boxes: Tensor  # (B, K, 4) their boxes
    scores: Tensor  # (B, K) the ranking's logits


def ranking_targets(boxes: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Which candidate should win: among those whose box is centred in the target, the one with the highest IoU.
    ``boxes`` (B, K, 4) and ``target`` (B, 4) normalised → (index (B,), has_one (B,) bool: some candidate is
    centred in the target; a sample without one has no target)."""
    boxes, t = boxes.float(), target.float()[:, None]
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    inside = ((centre >= t[..., :2]) & (centre <= t[..., 2:])).all(-1)
    low, high = torch.maximum(boxes[..., :2], t[..., :2]), torch.minimum(boxes[..., 2:], t[..., 2:])
    overlap = (high - low).clamp(min=0).prod(-1)
    union = (boxes[..., 2:] - boxes[..., :2]).prod(-1) + (t[..., 2:] - t[..., :2]).prod(-1) - overlap
    iou = overlap / union.clamp(min=1e-12)
    return (iou + 2.0 * inside.float()).argmax(1), inside.any(1)


@dataclass
class RankOptions(StageOptions):
    """``model.stages.rank``: how many of the first look's best cells are ranked, in how many decoder layers."""

    candidates: int = 16
    layers: int = 2
    weights: dict[str, float] = field(default_factory=dict)

    def check(self, stage: str, model: Any) -> None:
        if getattr(model, "head", None) != "cells":
            raise ConfigError(f"model.stages.{stage} ranks the cells head's best cells: it needs model.head: cells")
        if self.candidates < 2:
            raise ConfigError(f"model.stages.{stage}.candidates must be >= 2, got {self.candidates}")
        if self.layers < 1:
            raise ConfigError(f"model.stages.{stage}.layers must be >= 1, got {self.layers}")


class CandidateRanking(Stage):
    """Scores the first look's ``rank_candidates`` best cells as objects against the query (see the module
    docstring); the best candidate's box becomes the answer. Needs ``model.head: cells``."""

    name = "rank"
    feature_parts = ("colours",)
    loss_terms = ("rank",)
    step_key = "reranked"
    step_title = "candidate ranking"
    note_what = "the first look's best cells ranked again as objects, with their colours read from the image"
    note_changed = "chose another candidate than the first look's best cell for"
    note_none = "kept the first look's best cell for every test box."
    options_type = RankOptions
    legacy_options: ClassVar[dict[str, str]] = {"rank_candidates": "candidates", "rank_layers": "layers"}
    legacy_weight = "rank_weight"

    def __init__(self, options: RankOptions, core: CoreFacts) -> None:
        super().__init__(options, core)
        self.candidates = options.candidates
        dim, text_dim = core.dim, core.text_dim
        categories, heads, ffn_dim, layers, max_tokens = (
            len(DIOR_CLASSES),
            core.heads,
            core.ffn_dim,
            options.layers,
            core.max_tokens,
        )
        features = categories + 2 + GEOMETRY_FEATURES + 2 * 3 * COLOUR_BINS**2
        self.categories = categories
        self.input = nn.Sequential(nn.LayerNorm(features), nn.Linear(features, dim))
        self.word_norm = nn.LayerNorm(text_dim)
        self.sentence_norm = nn.LayerNorm(text_dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.text_pos = nn.Embedding(max_tokens + 1, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn_dim, 0.0) for _ in range(layers))
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1, bias=False))
        self.match_visual = nn.Linear(dim, dim, bias=False)
        self.match_text = nn.Linear(text_dim, dim)
        # how much of the first look's score the ranking keeps (learned; starts at all of it)
        self.first_weight = nn.Parameter(torch.ones(()))

    def forward(self, out: GroundingOutput, ctx: StageContext) -> None:
        """Rank the first look's best cells; everything taken from the first look is detached."""
        if out.cell_scores is None or out.cell_boxes is None:
            raise ValueError("the candidate ranking ranks the cells head's best cells: it needs model.head: cells")
        first = out.cell_scores.detach()
        top = first.topk(min(self.candidates, first.shape[1]), 1)
        rows = torch.arange(len(first), device=first.device)
        boxes = out.cell_boxes.detach()[rows[:, None], top.indices]
        objects = out.stages.get("object_head")
        categories = None if objects is None else objects.object_logits.detach()[rows[:, None], top.indices]
        scores = self.score_candidates(
            boxes, top.values, categories, ctx.colours, ctx.words, ctx.sentence, ctx.text_padding
        )
        out.stages[self.name] = RankRecord(top.indices, boxes, scores)
        out.boxes = boxes[rows, scores.argmax(1)].to(out.boxes.dtype)

    def terms(
        self, out: GroundingOutput, target: Tensor, batch: Mapping[str, Any], cfg: LossConfig
    ) -> dict[str, Tensor]:
        """Cross-entropy of the ranking against :func:`ranking_targets`, over the samples that have a target."""
        record: RankRecord = out.stages[self.name]
        best, has_one = ranking_targets(record.boxes, target)
        per_sample = F.cross_entropy(record.scores.float().clamp(min=-1e4), best, reduction="none")
        rank = (per_sample * has_one).sum() / has_one.sum().clamp(min=1)
        return {"rank": rank}

    def changed(self, record: RankRecord) -> Tensor:
        return record.scores.argmax(1).ne(0)  # candidate 0 is the first look's best cell

    def boxes_before(self, record: RankRecord) -> Tensor:
        return record.boxes[:, 0]

    def score_candidates(
        self,
        boxes: Tensor,
        first_scores: Tensor,
        category_logits: Tensor | None,
        colours: Tensor,
        words: Tensor,
        sentence: Tensor,
        text_pad: Tensor,
    ) -> Tensor:
        """``boxes`` (B, K, 4) normalised, ``first_scores`` (B, K) the first look's logits (``-inf`` marks a
        padding cell), ``category_logits`` (B, K, C) or None, ``colours`` (B, 3, H, W) the unfolded colour map,
        raw text features ``words`` (B, Nt, T), ``sentence`` (B, T), ``text_pad`` (B, Nt) → scores (B, K)."""
        valid = torch.isfinite(first_scores)
        relative = torch.where(valid, first_scores - first_scores[:, :1], torch.zeros_like(first_scores)).float()
        probs = relative.masked_fill(~valid, float("-inf")).softmax(1)
        if category_logits is None:
            categories = relative.new_zeros(*relative.shape, self.categories)
        else:
            categories = category_logits.float().sigmoid()
        geometry = box_geometry(boxes.float())
        parts = [categories, relative[..., None], probs[..., None], geometry, candidate_colours(colours, boxes)]
        x = self.input(torch.cat(parts, -1))
        pos = sine_encoding_xy(geometry[..., 4:6], x.shape[-1]).to(x.dtype)  # the boxes' centres

        memory, memory_pos, memory_pad, sentence = query_memory(
            words, sentence, text_pad, self.word_norm, self.sentence_norm, self.text_proj, self.text_pos
        )
        for layer in self.layers:
            x, _ = layer(x, pos, ~valid, memory, memory_pos, memory_pad)

        match = (self.match_visual(x) @ self.match_text(sentence)[..., None])[..., 0] / math.sqrt(x.shape[-1])
        scores = self.score(x)[..., 0] + match + self.first_weight * relative
        return scores.float().masked_fill(~valid, float("-inf"))
