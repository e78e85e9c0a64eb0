"""The localisation heads: the paper's [REG] box MLP and the cells head (``model.head: cells``, not in the paper)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def corners(cx: Tensor, cy: Tensor, w: Tensor, h: Tensor) -> Tensor:
    """``(..., 4)`` boxes ``(x1, y1, x2, y2)`` from centres and sizes."""
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1)


class BoxHead(nn.Module):
    """MLP(D → D → 4) with a ReLU; sigmoid ``(cx, cy, w, h)`` → ``(x1, y1, x2, y2)`` (never inverted)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, 4)

    def forward(self, x: Tensor) -> Tensor:
        cx, cy, w, h = self.fc2(F.relu(self.fc1(x))).float().sigmoid().unbind(-1)
        return corners(cx, cy, w, h)


def box_from_attention(raw: Tensor, attention: Tensor, height: int, width: int) -> Tensor:
    """``(B, 4)`` boxes ``(x1, y1, x2, y2)`` whose centre is the ``attention``-weighted mean of the ``height × width``
    cells' centres (``attention`` (B, h·w), renormalised), moved by the raw outputs ``raw`` (B, 4) ``(ox, oy, tw,
    th)`` by at most one cell (``tanh``), and whose size is ``sigmoid(tw, th)``. The centre loss then reaches the
    attention directly instead of only through the values it mixes."""
    a = attention.float()
    a = a / a.sum(-1, keepdim=True).clamp(min=1e-12)
    gy, gx = torch.meshgrid(
        (torch.arange(height, device=raw.device, dtype=torch.float32) + 0.5) / height,
        (torch.arange(width, device=raw.device, dtype=torch.float32) + 0.5) / width,
        indexing="ij",
    )
    centre_x, centre_y = (a * gx.flatten()).sum(-1), (a * gy.flatten()).sum(-1)
    ox, oy, tw, th = raw.float().unbind(-1)
    return corners(centre_x + torch.tanh(ox) / width, centre_y + torch.tanh(oy) / height, tw.sigmoid(), th.sigmoid())


class AttentionBoxHead(BoxHead):
    """``model.reg_centre_from_attention`` (not in the paper): the [REG] box's centre is the attention-weighted mean
    of the visual cells' centres, plus an MLP offset of at most one cell; its size comes from the MLP, as in
    :class:`BoxHead` (:func:`box_from_attention`)."""

    def forward(self, x: Tensor, attention: Tensor, height: int, width: int) -> Tensor:  # type: ignore[override]
        """``x`` (B, D) the [REG] output, ``attention`` (B, h*w) its attention over the visual tokens."""
        return box_from_attention(self.fc2(F.relu(self.fc1(x))), attention, height, width)


class CellHead(nn.Module):
    """``head: cells`` (not in the paper): per visual token a score and a box anchored on the token's cell.

    Scores are logits over the cells (padding cells get ``-inf``): an MLP of the token plus a bilinear match of
    the token with the sentence feature (``(W_v x)·(W_s s)/√D``), which makes "does this cell show what the
    query says" a direct term rather than one the fusion layers must first learn to write into the token.

    A cell ``(i, j)`` of an ``h × w`` grid predicts the centre ``((j + 2σ(tx) - 0.5) / w, (i + 2σ(ty) - 0.5) / h)``
    (from half a cell before it to half a cell after it) and the size ``(e^tw / w, e^th / h)`` clamped to the
    input (one cell at initialisation): valid boxes by construction.
    """

    def __init__(self, dim: int, text_dim: int) -> None:
        super().__init__()
        # no biases where they would add the same constant to every cell (the softmax ignores it)
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1, bias=False))
        self.match_visual = nn.Linear(dim, dim, bias=False)
        self.match_text = nn.Linear(text_dim, dim)
        self.box = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4))

    def forward(
        self,
        tokens: Tensor,
        padding: Tensor,
        height: int,
        width: int,
        sentence: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """``tokens`` (B, h*w, D), ``padding`` (B, h*w), ``sentence`` (B, text_dim) → scores (B, h*w) and boxes
        (B, h*w, 4)."""
        match = (self.match_visual(tokens) @ self.match_text(sentence).unsqueeze(-1)).squeeze(-1)
        scores = self.score(tokens).squeeze(-1) + match / math.sqrt(tokens.shape[-1])
        scores = scores.float().masked_fill(padding, float("-inf"))
        tx, ty, tw, th = self.box(tokens).float().unbind(-1)
        grid_y, grid_x = torch.meshgrid(
            torch.arange(height, device=tokens.device, dtype=torch.float32),
            torch.arange(width, device=tokens.device, dtype=torch.float32),
            indexing="ij",
        )
        cx = (grid_x.flatten() + 2 * tx.sigmoid() - 0.5) / width
        cy = (grid_y.flatten() + 2 * ty.sigmoid() - 0.5) / height
        w = (tw.clamp(max=math.log(width)).exp() / width).clamp(max=1.0)
        h = (th.clamp(max=math.log(height)).exp() / height).clamp(max=1.0)
        return scores, corners(cx, cy, w, h)
