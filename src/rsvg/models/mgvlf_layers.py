"""The parts of MGVLF (:mod:`rsvg.models.mgvlf`) that are not shared with other families.

* :class:`ExtraLevels` — the reference's conv6..conv8, the coarser levels ``F2..F4`` of the MLCM memory;
* :func:`visual_padding_mask`, :func:`mlcm_attention_map` — the token padding and the paper's Fig. 6 map;
* the answers read from the fusion's output, one class per ``model.head`` choice, each a shared box head
  (:mod:`rsvg.models.heads`) that also knows where in the fusion's tokens it reads: :class:`RegAnswer` (the
  paper), :class:`AttentionRegAnswer` (``reg_centre_from_attention``), :class:`CellsAnswer` (``head: cells``);
* the options that are not in the paper, as parts chosen when the model is built: :class:`ChannelNorm`
  (``visual_norm``), :func:`add_positions` / :func:`keep_tokens` (``positions_in_tokens``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.heads import AttentionBoxHead, BoxHead, CellHead
from rsvg.models.outputs import GroundingOutput

__all__ = [
    "AttentionRegAnswer",
    "CellsAnswer",
    "ChannelNorm",
    "ExtraLevels",
    "RegAnswer",
    "add_positions",
    "build_answer",
    "keep_tokens",
    "mlcm_attention_map",
    "visual_padding_mask",
]


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
        for reduce, down in self.blocks:
            x = _centre_tap_on_a_point(down, reduce(x))
            outs.append(x)
        return outs


def _centre_tap_on_a_point(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``. Over a 1×1 map a 3×3 convolution with padding 1 reads only its centre tap (the others see
    padding), so it is computed as that 1×1 convolution: the same numbers and gradients (zero for the other taps).
    It also avoids oneDNN's deterministic bf16 weight gradient of the padded form, which is not finite on such a map
    (PyTorch 2.14 on CPU); small inputs (e.g. 64 px) shrink to 1×1 here."""
    if x.shape[-2:] == (1, 1) and conv.kernel_size == (3, 3) and conv.padding == (1, 1):
        return F.conv2d(x, conv.weight[:, :, 1:2, 1:2], conv.bias)
    return conv(x)


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


class ChannelNorm(nn.LayerNorm):
    """``model.visual_norm``: LayerNorm over the channels of a ``(B, C, H, W)`` map."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def add_positions(tokens: Tensor, positions: Tensor) -> Tensor:
    """``model.positions_in_tokens``: the position encoding added to the tokens themselves."""
    return tokens + positions


def keep_tokens(tokens: Tensor, positions: Tensor) -> Tensor:
    """The paper: positions reach only the attention's queries and keys, the tokens stay as they are."""
    return tokens


# --- the answers: the fusion's output (B, h*w + Nt + 1, D) is [visual tokens; word tokens; REG] --------------
class RegAnswer(BoxHead):
    """The paper's localisation: the box MLP on the [REG] token's output."""

    def wants_weights(self, need_attention: bool) -> bool:
        """Whether the fusion must return its last layer's attention weights."""
        return need_attention

    def answer(
        self, out: Tensor, weights: Tensor | None, padding: Tensor, grid: tuple[int, int], sentence: Tensor,
        need_attention: bool,
    ) -> GroundingOutput:
        """The answer from the fusion's output ``out`` and attention ``weights`` (when asked for)."""
        h, w = grid
        # the [REG] token's attention over the visual tokens
        reg_weights = weights[:, -1, : h * w] if weights is not None else None
        boxes = self.boxes(out[:, -1], reg_weights, grid)
        attention = reg_weights.reshape(-1, h, w) if need_attention and reg_weights is not None else None
        return GroundingOutput(boxes, attention=attention)

    def boxes(self, reg: Tensor, reg_weights: Tensor | None, grid: tuple[int, int]) -> Tensor:
        return self(reg)


class AttentionRegAnswer(AttentionBoxHead, RegAnswer):
    """``model.reg_centre_from_attention``: the box's centre where the [REG] token looks
    (:class:`~rsvg.models.heads.AttentionBoxHead`)."""

    def wants_weights(self, need_attention: bool) -> bool:
        return True

    def boxes(self, reg: Tensor, reg_weights: Tensor | None, grid: tuple[int, int]) -> Tensor:
        assert reg_weights is not None
        return self(reg, reg_weights, *grid)


class CellsAnswer(CellHead):
    """``model.head: cells``: every visual token scores itself; the best cell's box is the answer."""

    def wants_weights(self, need_attention: bool) -> bool:
        return False

    def answer(
        self, out: Tensor, weights: Tensor | None, padding: Tensor, grid: tuple[int, int], sentence: Tensor,
        need_attention: bool,
    ) -> GroundingOutput:
        h, w = grid
        scores, cell_boxes = self(out[:, : h * w], padding, h, w, sentence)
        result = GroundingOutput(scores.new_empty(0), cell_boxes=cell_boxes)
        result.choose_cell(scores, grid, need_attention)
        return result


def build_answer(head: str, reg_centre_from_attention: bool, dim: int, text_dim: int) -> nn.Module:
    """The answer part ``model.head`` (and ``reg_centre_from_attention``) chooses."""
    if head == "cells":
        return CellsAnswer(dim, text_dim)
    return AttentionRegAnswer(dim) if reg_centre_from_attention else RegAnswer(dim)

