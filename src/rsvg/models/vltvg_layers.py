"""VLTVG's layers: attention with relative positions, the visual-linguistic verification and language-guided
context layer, and one stage of the multi-stage cross-modal decoder (:mod:`rsvg.models.vltvg` assembles them).

Tensors are batch-first ``(B, N, D)``; masks are True on padding, as in :mod:`rsvg.models.transformer`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.transformer import MultiheadAttention

__all__ = ["DecoderStage", "RelativePositionAttention", "VerificationContextLayer", "relative_sine_table"]


def relative_sine_table(span: int, dim: int) -> Tensor:
    """``(2·span + 1, dim)``: the sine encoding of the offsets ``−span … span``, normalised by ``span`` to
    ``[−2π, 2π]``, with sin and cos interleaved as DETR's (VLTVG's ``position_embedding_sine`` with span 20)."""
    offsets = torch.arange(-span, span + 1, dtype=torch.float32)
    angles = offsets / (span + 1e-6) * (2 * math.pi)
    freq = 10000 ** (2 * torch.div(torch.arange(dim, dtype=torch.float32), 2, rounding_mode="floor") / dim)
    table = angles[:, None] / freq
    return torch.stack((table[:, 0::2].sin(), table[:, 1::2].cos()), dim=-1).flatten(1)


class RelativePositionAttention(MultiheadAttention):
    """Self-attention over a ``height × width`` map whose scores also read each key's offset from the query: query
    ``i`` and key ``j`` add ``q_i · W_k,y e(Δy) + q_i · W_k,x e(Δx)``, where ``e`` is a sine encoding of the offset
    (:func:`relative_sine_table`), ``W_k,y`` and ``W_k,x`` the halves of the key projection's input, and the offsets
    count unpadded cells only (as the reference does). The reference hard-codes a 20×20 map (offsets −20 … 20);
    here the table spans the longer side of the map the model is built for, which is the reference's at 640 px."""

    def __init__(self, dim: int, heads: int, dropout: float, span: int) -> None:
        super().__init__(dim, heads, dropout)
        if dim % 4:
            raise ValueError(f"dim must be divisible by 4, got {dim}")
        self.span = span
        self.register_buffer("pos_y", relative_sine_table(span, dim // 2), persistent=False)
        self.register_buffer("pos_x", relative_sine_table(span, dim // 2), persistent=False)

    def forward_map(self, query: Tensor, key: Tensor, value: Tensor, padding: Tensor, grid: tuple[int, int]) -> Tensor:
        """``query``/``key``/``value`` ``(B, h·w, D)`` of one map, ``padding`` ``(B, h·w)``: the attention output."""
        b, n, d = query.shape
        heads, hd = self.heads, d // self.heads
        height, width = grid
        if n != height * width or max(height, width) > self.span:
            raise ValueError(f"a {height}x{width} map does not fit the relative positions (span {self.span})")
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = F.linear(query, w_q, b_q).view(b, n, heads, hd).transpose(1, 2) / math.sqrt(hd)
        k = F.linear(key, w_k, b_k).view(b, n, heads, hd).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(b, n, heads, hd).transpose(1, 2)
        scores = q @ k.transpose(-2, -1)  # (B, heads, n, n)

        # offsets between cells counted over unpadded cells, as indices into the tables
        valid = (~padding).view(b, height, width).to(torch.float32)
        yy = valid.cumsum(1).view(b, n)
        xx = valid.cumsum(2).view(b, n)
        dy = (yy[:, :, None] - yy[:, None, :]).long() + self.span
        dx = (xx[:, :, None] - xx[:, None, :]).long() + self.span
        key_y = (self.pos_y.to(q.dtype) @ w_k[:, : d // 2].t()).view(-1, heads, hd).permute(1, 2, 0)  # (heads, hd, R)
        key_x = (self.pos_x.to(q.dtype) @ w_k[:, d // 2 :].t()).view(-1, heads, hd).permute(1, 2, 0)
        by_y = q @ key_y  # (B, heads, n, R): each query against every offset
        by_x = q @ key_x
        scores = scores + by_y.gather(-1, dy[:, None].expand(-1, heads, -1, -1))
        scores = scores + by_x.gather(-1, dx[:, None].expand(-1, heads, -1, -1))

        scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
        attn = F.dropout(scores.softmax(-1), self.dropout if self.training else 0.0, self.training)
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(out)


class VerificationContextLayer(nn.Module):
    """VLTVG's discriminative feature encoder (``DiscriminativeFeatEncLayer``): each visual cell gathers the words
    that concern it and is scored by how well they match it (the verification score
    ``scale · exp(−(1 − cos(img_proj(v), text_proj(t)))^pow / (2σ²))``); the cells also attend to each other,
    guided by the words (the language-guided context, with relative positions); the output is the visual map and
    beside it the verified context features, ``(B, h·w, 2D)``."""

    def __init__(
        self, dim: int, heads: int, dropout: float, span: int, scale: float, sigma: float, power: float
    ) -> None:
        super().__init__()
        self.img2text_attn = MultiheadAttention(dim, heads, dropout)
        self.text_proj = nn.Linear(dim, dim)
        self.img_proj = nn.Linear(dim, dim)
        self.verify_power = power
        self.verify_scale = nn.Parameter(torch.tensor([float(scale)]))
        self.verify_sigma = nn.Parameter(torch.tensor([float(sigma)]))
        self.img2textcond_attn = MultiheadAttention(dim, heads, dropout)
        self.img2img_attn = RelativePositionAttention(dim, heads, dropout, span)
        self.norm_text_cond_img = nn.LayerNorm(dim)
        self.norm_img = nn.LayerNorm(dim)

    def verification(self, visual: Tensor, words: Tensor, word_pad: Tensor) -> Tensor:
        """``(B, h·w, 1)``: how well the words each cell gathers match it."""
        gathered, _ = self.img2text_attn(visual, words, words, word_pad)
        cosine = (F.normalize(self.img_proj(visual), dim=-1) * F.normalize(self.text_proj(gathered), dim=-1)).sum(
            -1, keepdim=True
        )
        return self.verify_scale * torch.exp(-(1 - cosine).pow(self.verify_power) / (2 * self.verify_sigma**2))

    def forward(
        self, visual: Tensor, padding: Tensor, words: Tensor, word_pad: Tensor, grid: tuple[int, int]
    ) -> Tensor:
        score = self.verification(visual, words, word_pad)
        guide, _ = self.img2textcond_attn(visual, words, words, word_pad)
        qk = visual + guide
        context = self.img2img_attn.forward_map(qk, qk, visual, padding, grid)
        verified = (self.norm_img(visual) + self.norm_text_cond_img(context)) * score
        return torch.cat([visual, verified], -1)


class DecoderStage(nn.Module):
    """One stage of VLTVG's multi-stage cross-modal decoder (``MultiStageDecoderLayer``): the object query gathers
    the words that describe it (a text query, normalised, no residual), the text query gathers the visual cells
    (keys: the verified context features with the map's positions; values: the visual map), then a residual,
    an FFN and post-norms."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, attention_dropout: float, dropout: float) -> None:
        super().__init__()
        self.word_attn = MultiheadAttention(dim, heads, attention_dropout)
        self.img_attn = MultiheadAttention(dim, heads, attention_dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norm = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, query: Tensor, query_pos: Tensor, text_query_pos: Tensor, features: Tensor, padding: Tensor,
        pos: Tensor, words: Tensor, word_pad: Tensor, need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """The new query and, with ``need_weights``, the text query's attention over the cells ``(B, 1, h·w)``
        (averaged over the heads)."""
        values, keys = features.chunk(2, dim=-1)  # the visual map, the verified context features
        text_info, _ = self.word_attn(query + query_pos, words, words, word_pad)
        text_query = self.norm[0](self.dropout(text_info))
        visual_info, weights = self.img_attn(text_query + text_query_pos, keys + pos, values, padding, need_weights)
        query = self.norm[1](query + self.dropout(visual_info))
        return self.norm[2](query + self.dropout(self.ffn(query))), weights
