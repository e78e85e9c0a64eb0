"""The base class every visual backbone derives from (:class:`Backbone`) and the levels it can return.

The concrete backbones (:mod:`~rsvg.models.backbones.resnet`, :mod:`~rsvg.models.backbones.efficientnet_lite`)
subclass :class:`Backbone`, and the package (:mod:`rsvg.models.backbones`, which describes the contract and
builds backbones by name) imports them, so the base class sits in a module of its own below both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from rsvg.models.backbones.weights import LoadReport

__all__ = ["BACKBONE_STRIDE", "LEVEL_STRIDES", "Backbone", "parse_return_levels"]


#: The strides of the levels a backbone can return (C3, C4, C5).
LEVEL_STRIDES: tuple[int, ...] = (8, 16, 32)
#: The stride of the coarsest level, whose cells are the models' visual tokens.
BACKBONE_STRIDE = 32


def parse_return_levels(return_levels: int | Sequence[int]) -> tuple[int, ...]:
    """Validate requested levels (strides 8, 16, 32) and return them sorted, highest resolution first."""
    levels = (return_levels,) if isinstance(return_levels, int) else tuple(return_levels)
    if not levels:
        raise ValueError("return_levels is empty: ask for at least one of the strides 8, 16, 32")
    bad = [lv for lv in levels if lv not in LEVEL_STRIDES]
    if bad:
        raise ValueError(f"return_levels {bad} not supported: levels are named by stride, one of {LEVEL_STRIDES}")
    return tuple(sorted(set(levels)))


class Backbone(nn.Module):
    """Base class of the visual backbones (the contract: :mod:`rsvg.models.backbones`).

    Subclasses set ``name``, ``mean``, ``std``, ``out_channels`` and ``load_report``, build only the stages up to
    ``max(self.return_levels)``, and call :meth:`freeze` on the modules that must not train.
    """

    name: str = "backbone"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __init__(self, return_levels: int | Sequence[int]) -> None:
        super().__init__()
        self.return_levels: tuple[int, ...] = parse_return_levels(return_levels)
        self.strides: list[int] = list(self.return_levels)
        self.out_channels: list[int] = []
        self.load_report: LoadReport = LoadReport(source="random init")
        self._frozen_modules: list[nn.Module] = []

    def forward(self, images: Tensor, up_to: int | None = None) -> list[Tensor]:
        """Feature maps of ``return_levels``, highest resolution first: ``[(B, C_i, ceil(H/s_i), ceil(W/s_i))]``;
        with ``up_to`` only those of stride at most ``up_to``, and the network stops there."""
        raise NotImplementedError

    def freeze(self, modules: Iterable[nn.Module] | None = None) -> None:
        """Stop training ``modules`` (default: the whole backbone): no gradients, and kept in eval mode (BatchNorm
        statistics stay fixed)."""
        if modules is None:
            self.requires_grad_(False)
            modules = list(self.children())
        for module in modules:
            module.requires_grad_(False)
            module.eval()
            self._frozen_modules.append(module)

    def train(self, mode: bool = True) -> Backbone:
        """Switch train/eval mode; frozen parts always stay in eval mode."""
        super().train(mode)
        for module in self._frozen_modules:
            module.eval()
        return self

    def pretrained_and_new_parameters(
        self,
    ) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
        """Trainable parameters split into (loaded from pretrained weights, not loaded), as ``(name, param)``.

        The paper trains the first group with lr 1e-5 and the second with 1e-4. Frozen parameters are in neither.
        """
        pretrained: list[tuple[str, nn.Parameter]] = []
        new: list[tuple[str, nn.Parameter]] = []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (pretrained if self.load_report.is_loaded(name) else new).append((name, param))
        return pretrained, new

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        """``(parent, conv_name, norm_name)`` for every convolution whose output goes straight into a norm layer
        (what :meth:`fold_frozen_batchnorm` folds). Subclasses list them explicitly."""
        raise NotImplementedError

    @torch.no_grad()
    def fold_frozen_batchnorm(self) -> int:
        """Fold every ``FrozenBatchNorm2d`` into the convolution before it (in place); returns how many.

        A frozen BatchNorm is a per-channel affine map, so ``bn(conv(x))`` equals one convolution with scaled
        weights and a bias: the same features up to float rounding, without two element-wise passes over each
        map. For inference and feature caching only: the parameter names change (convolutions gain a bias, the
        norms become ``Identity``), so a folded backbone's state dict is not a checkpoint, and a convolution that
        was trainable stops matching its un-folded training parameters.
        """
        folded = 0
        for parent, conv_name, norm_name in self.conv_bn_pairs():
            conv, norm = getattr(parent, conv_name), getattr(parent, norm_name)
            if not isinstance(norm, FrozenBatchNorm2d):
                continue
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
            shift = norm.bias - norm.running_mean * scale
            if conv.bias is not None:
                shift = shift + conv.bias * scale
            conv.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter(shift, requires_grad=False)
            setattr(parent, norm_name, nn.Identity())
            folded += 1
        return folded

    def extra_repr(self) -> str:
        return f"return_levels={self.return_levels}, out_channels={self.out_channels}"
