"""Candidate ranking (``model.rank``, not in the paper): the first look's best cells ranked again as objects.

The cells head scores 12×12 cells from the fusion's tokens, which come from a frozen ImageNet backbone behind a
LayerNorm: what an object *is* survives that, what *colour* it has mostly does not, and a query that names an
object's colour, size or neighbour then lands on another object of the same category (on the synthetic demo data
20 % of all test answers, 46 % of the relation expressions, were another object of the asked category).

So the ``rank_candidates`` best cells become candidates, each described by what a cell token cannot say well:

* its box's colours, read from the image itself: a 4×4 grid of the box and a 4×4 grid of the box grown to twice
  its size (the surroundings), from the colour map :func:`colour_map` (the normalised image averaged over
  ``COLOUR_STRIDE`` pixels, which rides along in the visual feature map so feature caches hold it);
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

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from rsvg.models.transformer import DecoderLayer, query_memory
from rsvg.models.zoom import sine_encoding_xy

COLOUR_STRIDE = 4  # input pixels averaged into one pixel of the colour map
COLOUR_BINS = 4  # each box (and its surroundings) is read as a COLOUR_BINS × COLOUR_BINS grid of colours
GEOMETRY_FEATURES = 8  # x1, y1, x2, y2, cx, cy, log w, log h


def colour_channels(cell_stride: int) -> int:
    """Channels the colour map adds to a stride-``cell_stride`` feature map (folded space-to-depth)."""
    return 3 * (cell_stride // COLOUR_STRIDE) ** 2


def colour_map(image: Tensor, cell_stride: int) -> Tensor:
    """The normalised image ``(B, 3, S, S)`` averaged over ``COLOUR_STRIDE``-pixel squares and folded into the
    stride-``cell_stride`` grid: ``(B, colour_channels(cell_stride), S/cell_stride, S/cell_stride)``."""
    pooled = F.avg_pool2d(image.float(), COLOUR_STRIDE)
    return F.pixel_unshuffle(pooled, cell_stride // COLOUR_STRIDE).to(image.dtype)


def unfold_colour_map(folded: Tensor, cell_stride: int) -> Tensor:
    """Inverse of the folding in :func:`colour_map`: ``(B, 3, S/COLOUR_STRIDE, S/COLOUR_STRIDE)``."""
    return F.pixel_shuffle(folded, cell_stride // COLOUR_STRIDE)


def candidate_colours(colours: Tensor, boxes: Tensor) -> Tensor:
    """Each box's colours: ``colours`` (B, 3, H, W) the unfolded colour map, ``boxes`` (B, K, 4) normalised to the
    input → (B, K, 2·3·COLOUR_BINS²): the box's grid, then the grid of the box grown to twice its size."""
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


class CandidateRanker(nn.Module):
    """Scores ``K`` candidate objects against the query (see the module docstring)."""

    def __init__(
        self,
        dim: int,
        text_dim: int,
        heads: int,
        ffn_dim: int,
        layers: int,
        max_tokens: int,
        categories: int,
    ) -> None:
        super().__init__()
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

    def forward(
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
