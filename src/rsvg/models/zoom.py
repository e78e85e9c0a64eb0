"""The second look (``model.zoom``, not in the paper): small objects grounded again at a finer resolution.

At the lite config's 384-px input an object under 30 px wide in an 800-px scene covers a few input pixels, less
than one stride-32 cell of the backbone; the cells head finds roughly where it is but its box is 2.5× too large
(docs/experiments.md). When the first box is small (longer side at most ``zoom_max_side`` input
pixels), the model takes a second look:

1. a window of ``zoom_window × zoom_window`` input pixels centred on the first box (moved inside the canvas),
   cut from the image letterboxed at ``zoom_scale ×`` the input size (the same layout, each input pixel
   ``zoom_scale`` pixels wide: :func:`rsvg.data.transforms.zoom_letterbox`);
2. the frozen backbone's stride-8 and stride-16 maps of that crop, stride 8 folded into stride 16 as channels
   (:meth:`~rsvg.models.mgvlf.MGVLF.zoom_map`): a ``g × g`` grid, ``g = zoom_window · zoom_scale / 16``;
3. :class:`SecondLook`: the crop's tokens, with their position in the whole image and in the window, attend to
   the query's words in ``zoom_layers`` decoder layers; a cells head picks the target's cell in the window and
   regresses its box, which replaces the first one.

Training uses crops around every referred object no larger than ``zoom_max_side``, its centre moved by up to
``± zoom_jitter`` input pixels (at inference the window is centred on the first box, which is off by about that
much when it is near but not on the object); the crops' maps are computed once (the backbone is frozen).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.heads import CellHead
from rsvg.models.transformer import DecoderLayer, query_memory

ZOOM_STRIDE = 16  # the second look's token grid: stride 16 of the crop
# Crops the backbone reads at once on a CPU. Its depthwise layers are memory-bound there, and a few crops' maps
# stay in the CPU caches while a whole batch's do not (`rsvg bench features` on a zoom config measures both).
CPU_CROPS_AT_ONCE = 2


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


def needs_zoom(boxes: Tensor, image_size: int, max_side: float) -> Tensor:
    """``(B,)`` bool: the normalised boxes whose longer side is at most ``max_side`` input pixels."""
    sides = (boxes[:, 2:] - boxes[:, :2]).amax(-1) * image_size
    return sides <= max_side


def window_origins(boxes: Tensor, image_size: int, window: int) -> Tensor:
    """``(B, 2)`` integer input-pixel corners ``(x0, y0)`` of the windows centred on the normalised boxes, moved
    to lie inside the ``image_size`` canvas."""
    centre = (boxes[:, :2] + boxes[:, 2:]).float() / 2 * image_size
    return (centre - window / 2).round().clamp(0, image_size - window).long()


def to_window(boxes: Tensor, origins: Tensor, image_size: int, window: int) -> Tensor:
    """Boxes normalised to the input → normalised to their windows (``origins`` from :func:`window_origins`)."""
    shift = origins.float().repeat(1, 2)
    return (boxes.float() * image_size - shift) / window


def from_window(boxes: Tensor, origins: Tensor, image_size: int, window: int) -> Tensor:
    """The inverse of :func:`to_window`."""
    shift = origins.float().repeat(1, 2)
    return (boxes.float() * window + shift) / image_size


def window_padding(padding_mask: Tensor, origins: Tensor, window: int) -> Tensor:
    """The input's padding ``(B, S, S)`` inside each window: ``(B, window, window)``."""
    return torch.stack(
        [pad[y0 : y0 + window, x0 : x0 + window] for pad, (x0, y0) in zip(padding_mask, origins.tolist(), strict=True)]
    )


def crop_windows(
    zoom_images: Tensor,
    padding_mask: Tensor,
    origins: Tensor,
    window: int,
    scale: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> tuple[Tensor, Tensor]:
    """Cut the windows out of uint8 zoom canvases ``(B, 3, S·scale, S·scale)`` and normalise them.

    ``padding_mask`` ``(B, S, S)`` is the input's letterbox padding (True = padding): the crops' padding is set
    to 0 after normalisation, as :func:`~rsvg.data.transforms.normalize` does for the input. Returns the crops
    ``(B, 3, w·scale, w·scale)`` and their padding masks at the input resolution ``(B, w, w)``."""
    side = window * scale
    crop = (
        torch.stack(
            [
                image[:, y0 * scale : y0 * scale + side, x0 * scale : x0 * scale + side]
                for image, (x0, y0) in zip(zoom_images, origins.tolist(), strict=True)
            ]
        ).float()
        / 255.0
    )
    m = torch.tensor(mean, dtype=crop.dtype, device=crop.device).reshape(1, -1, 1, 1)
    s = torch.tensor(std, dtype=crop.dtype, device=crop.device).reshape(1, -1, 1, 1)
    mask = window_padding(padding_mask, origins, window)
    fine = mask.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return ((crop - m) / s).masked_fill(fine.unsqueeze(1), 0.0), mask


def crop_map(backbone: nn.Module, crops: Tensor, at_once: int | None = None) -> Tensor:
    """The second look's input from normalised crops ``(B, 3, w·k, w·k)``: the backbone's stride-16 map with
    its stride-8 map folded in as channels (space-to-depth), ``(B, C16 + 4·C8, g, g)``. The backbone (which must
    return both levels) stops after stride 16. It reads ``at_once`` crops per call (default: all on an
    accelerator, :data:`CPU_CROPS_AT_ONCE` on a CPU)."""
    if at_once is None:
        at_once = CPU_CROPS_AT_ONCE if crops.device.type == "cpu" else len(crops)
    if len(crops) > at_once > 0:
        return torch.cat([crop_map(backbone, part, at_once) for part in crops.split(at_once)])
    maps = dict(zip((8, 16), backbone(crops, up_to=16)[-2:], strict=True))
    return torch.cat([maps[16], F.pixel_unshuffle(maps[8], 2)], 1)


def window_token_padding(mask: Tensor, grid: int) -> Tensor:
    """``(B, w, w)`` input-pixel padding of the windows → ``(B, grid²)`` token padding (a token is padding only
    if all its pixels are; a window that is all padding keeps every token, so the softmax stays defined)."""
    valid = F.adaptive_max_pool2d((~mask).unsqueeze(1).float(), (grid, grid)).flatten(1) > 0.5
    valid |= ~valid.any(1, keepdim=True)
    return ~valid


class SecondLook(nn.Module):
    """Text-conditioned cells head on the crop's ``g × g`` map (see the module docstring).

    Each token is the crop map's channels (LayerNorm, linear to D) plus the sine encoding of its centre in the
    whole input (so "on the left" keeps its meaning inside a window) and a learned embedding of its place in
    the window. ``layers`` post-norm decoder layers: self-attention over the window, cross-attention to the
    query's word tokens and sentence token. A :class:`~rsvg.models.heads.CellHead` scores every token and
    regresses a box around its cell (window-normalised)."""

    def __init__(
        self,
        channels: int,
        dim: int,
        text_dim: int,
        heads: int,
        ffn_dim: int,
        layers: int,
        grid: int,
        max_tokens: int,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.visual_norm = nn.LayerNorm(channels)
        self.visual_proj = nn.Linear(channels, dim)
        self.word_norm = nn.LayerNorm(text_dim)
        self.sentence_norm = nn.LayerNorm(text_dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.text_pos = nn.Embedding(max_tokens + 1, dim)
        self.window_pos = nn.Parameter(torch.zeros(1, grid * grid, dim))
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn_dim, 0.0) for _ in range(layers))
        self.head = CellHead(dim, text_dim)
        for p in self.parameters():
            if p.dim() > 1 and p is not self.window_pos:
                nn.init.xavier_uniform_(p)

    def forward(
        self,
        maps: Tensor,
        origins: Tensor,
        image_size: int,
        window: int,
        token_padding: Tensor,
        words: Tensor,
        sentence: Tensor,
        text_padding: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """``maps`` ``(B, C, g, g)``, ``origins`` ``(B, 2)`` input pixels, ``token_padding`` ``(B, g²)``, the text
        encoder's ``words`` ``(B, Nt, b)``, ``sentence`` ``(B, b)`` and ``text_padding`` ``(B, Nt)`` → cell scores
        ``(B, g²)`` and window-normalised boxes ``(B, g², 4)``."""
        g = maps.shape[-1]
        if g != self.grid:
            raise ValueError(f"a {g}x{g} crop map does not match the second look's {self.grid}x{self.grid} grid")
        x = self.visual_proj(self.visual_norm(maps.flatten(2).transpose(1, 2)))
        centres = (torch.arange(g, device=maps.device, dtype=torch.float32) + 0.5) * (window / g)
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")
        xy = torch.stack((cx.flatten(), cy.flatten()), -1)[None] + origins.float()[:, None, :]
        pos = sine_encoding_xy(xy / image_size, x.shape[-1]).to(x.dtype) + self.window_pos
        x = x + pos
        memory, memory_pos, memory_pad, sentence = query_memory(
            words, sentence, text_padding, self.word_norm, self.sentence_norm, self.text_proj, self.text_pos
        )
        for layer in self.layers:
            x, _ = layer(x, pos, token_padding, memory, memory_pos, memory_pad)
        return self.head(x, token_padding, g, g, sentence)
