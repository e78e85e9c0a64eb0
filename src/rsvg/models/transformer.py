"""Transformer building blocks of MGVLF: attention, post-norm encoder/decoder layers, position encodings.

Layers follow DETR's post-norm design (the reference code's): positions are added to queries and keys only,
never to values, and each sub-layer is ``norm(x + dropout(sublayer(x)))``. Parameter names match
``torch.nn.MultiheadAttention`` / ``torch.nn.TransformerEncoderLayer`` (``self_attn.in_proj_weight``,
``linear1``, ``norm1`` ...) so that DETR's encoder weights map onto them by name.

Attention runs through PyTorch's fused ``scaled_dot_product_attention``; the explicit softmax path is used
when the caller asks for the attention weights (for attention maps) and inside :func:`plain_attention` (the plain
eager reference path that ``rsvg bench model`` compares against; same results, slower).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_PLAIN_ATTENTION = False


@contextmanager
def plain_attention(enabled: bool = True) -> Iterator[None]:
    """Within this block every :class:`MultiheadAttention` computes ``softmax(QK^T/sqrt(d)) V`` explicitly
    instead of calling the fused ``scaled_dot_product_attention`` (the same result up to rounding).

    For benchmarks and checks; the flag is process-wide (not thread-local) and restored on exit.
    """
    global _PLAIN_ATTENTION
    previous = _PLAIN_ATTENTION
    _PLAIN_ATTENTION = enabled
    try:
        yield
    finally:
        _PLAIN_ATTENTION = previous


def plain_attention_enabled() -> bool:
    """Whether attention currently takes the explicit softmax path (see :func:`plain_attention`)."""
    return _PLAIN_ATTENTION


class MultiheadAttention(nn.Module):
    """Multi-head attention with separate query/key/value inputs and a key padding mask (True = ignore)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.dropout = dim, heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Inputs are batch-first ``(B, N, D)``; returns the output and, on request, head-averaged weights."""
        b, nq, d = query.shape
        nk = key.shape[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        h = self.heads
        q = F.linear(query, w_q, b_q).view(b, nq, h, d // h).transpose(1, 2)
        k = F.linear(key, w_k, b_k).view(b, nk, h, d // h).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(b, nk, h, d // h).transpose(1, 2)
        mask = None
        if key_padding_mask is not None:
            # SDPA takes True = attend; broadcast over heads and queries.
            mask = (~key_padding_mask).view(b, 1, 1, nk)
        drop = self.dropout if self.training else 0.0
        weights = None
        if need_weights or _PLAIN_ATTENTION:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // h)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            attn = scores.softmax(-1)
            weights = attn.mean(1) if need_weights else None
            out = F.dropout(attn, drop, self.training) @ v
        elif q.dtype == torch.bfloat16 and q.device.type == "cpu" and torch.is_grad_enabled():
            # the CPU's fused attention differentiates bf16 about 2x slower than fp32 (torch 2.14, AVX-512 BF16):
            # under bf16 autocast in training it runs in fp32, and its output goes on in bf16
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=drop)
            out = out.to(torch.bfloat16)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        out = out.transpose(1, 2).reshape(b, nq, d)
        return self.out_proj(out), weights


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


class EncoderLayer(nn.Module):
    """Post-norm self-attention + FFN (DETR's ``TransformerEncoderLayer``)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, pos: Tensor | None, padding_mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        qk = _with_pos(x, pos)
        attn, weights = self.self_attn(qk, qk, x, padding_mask, need_weights)
        x = self.norm1(x + self.dropout(attn))
        x = self.norm2(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))
        return x, weights


class DecoderLayer(nn.Module):
    """Post-norm self-attention, cross-attention to a memory, FFN (the MLCM decoder layer, paper eq. 4–13)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, heads, dropout)
        self.cross_attn = MultiheadAttention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        pos: Tensor | None,
        x_padding_mask: Tensor | None,
        memory: Tensor,
        memory_pos: Tensor | None,
        memory_padding_mask: Tensor | None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        qk = _with_pos(x, pos)
        attn, _ = self.self_attn(qk, qk, x, x_padding_mask)
        x = self.norm1(x + self.dropout(attn))
        attn, weights = self.cross_attn(
            _with_pos(x, pos), _with_pos(memory, memory_pos), memory, memory_padding_mask, need_weights
        )
        x = self.norm2(x + self.dropout(attn))
        x = self.norm3(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))
        return x, weights


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer`; optionally returns the last layer's attention weights."""

    def __init__(self, layers: int, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn_dim, dropout) for _ in range(layers))

    def forward(
        self, x: Tensor, pos: Tensor | None, padding_mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        weights = None
        for i, layer in enumerate(self.layers):
            x, weights = layer(x, pos, padding_mask, need_weights and i == len(self.layers) - 1)
        return x, weights


def sine_position_encoding(height: int, width: int, dim: int, device: torch.device | None = None) -> Tensor:
    """DETR's normalised 2-D sine encoding of an ``height x width`` grid, flattened to ``(H*W, dim)``.

    Half the channels encode y, half x; each half alternates sin/cos over ``dim/4`` frequencies
    (temperature 10000, coordinates normalised to (0, 2π]).
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4, got {dim}")
    npf = dim // 2
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = y / (y[-1] + eps) * scale
    x = x / (x[-1] + eps) * scale
    dim_t = torch.arange(npf, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    px = x[:, None] / dim_t  # (W, npf)
    py = y[:, None] / dim_t  # (H, npf)
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((py[:, None, :].expand(height, width, npf), px[None, :, :].expand(height, width, npf)), dim=2)
    return pos.reshape(height * width, dim)


def query_memory(
    words: Tensor,
    sentence: Tensor,
    text_padding: Tensor,
    word_norm: nn.LayerNorm,
    sentence_norm: nn.LayerNorm,
    proj: nn.Linear,
    positions: nn.Embedding,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The query as the memory of a head's decoder layers (the second look's, the candidate ranking's): the text
    encoder's ``words`` (B, Nt, T) and ``sentence`` (B, T), each LayerNorm'd, projected to D with a ReLU, the
    sentence last; learned positions (``positions`` holds max_tokens + 1 rows, the last one the sentence's).

    Returns the memory (B, Nt + 1, D), its positions (B, Nt + 1, D), its padding (B, Nt + 1) from ``text_padding``
    (B, Nt), and the normalised sentence (B, T) the heads also match against."""
    words, sentence = word_norm(words), sentence_norm(sentence)
    bsz, nt = words.shape[:2]
    memory = F.relu(proj(torch.cat([words, sentence[:, None]], 1)))
    memory_pos = torch.cat([positions.weight[:nt], positions.weight[-1:]], 0)[None].expand(bsz, -1, -1)
    memory_pad = torch.cat([text_padding, text_padding.new_zeros(bsz, 1)], 1)
    return memory, memory_pos, memory_pad, sentence


def sine_encoding_xy(xy: Tensor, dim: int) -> Tensor:
    """DETR's sine encoding of continuous positions: ``xy`` ``(..., 2)`` in 0..1 → ``(..., dim)`` (half for y,
    half for x, each alternating sin/cos over ``dim/4`` frequencies, temperature 10000)."""
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4, got {dim}")
    npf = dim // 2
    dim_t = torch.arange(npf, dtype=torch.float32, device=xy.device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    scaled = xy.float() * (2 * math.pi)
    px = scaled[..., 0:1] / dim_t
    py = scaled[..., 1:2] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=-1).flatten(-2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=-1).flatten(-2)
    return torch.cat((py, px), -1)
