"""DarkNet-53 with the YOLOv3 neck: the visual backbone of FAOA, ReSC and LBYL-Net.

Those three models build the whole ``yolov3.cfg`` and use the tensors entering its three detection heads: the
output of the fourth convolution of each scale's five-convolution block (FAOA's ``model/darknet.py`` saves the
input of the cfg's ``[yoloconvolutional]`` layer). At a 256-px input they are

* stride 8: ``(B, 256, 32, 32)`` (``neck8``), stride 16: ``(B, 512, 16, 16)`` (``neck16``),
  stride 32: ``(B, 1024, 8, 8)`` (``neck32``).

The network (every convolution is conv without bias + BatchNorm + LeakyReLU(0.1)):

* the **Darknet-53 trunk** (52 convolutions, 40,584,928 parameters): ``stem`` (3x3, 32), then ``stage1..stage5``,
  each a stride-2 3x3 ``down`` convolution and 1, 2, 8, 8, 4 residual blocks (1x1 halving the width, 3x3 back,
  added to the input); stages 3, 4, 5 end at strides 8, 16, 32 with 256, 512, 1024 channels;
* the **YOLOv3 neck**, top-down: ``neck32`` (1x1, 3x3, 1x1, 3x3 on the stride-32 trunk map: 512/1024/512/1024
  channels) gives the stride-32 map; ``up32`` (the cfg's fifth 1x1 convolution to 512, a 1x1 ``lateral`` to 256,
  2x nearest upsampling, concatenation with the stride-16 trunk map: 768 channels) feeds ``neck16`` (256/512), and
  likewise ``up16`` (to 256, to 128, upsample, concatenation with the stride-8 trunk map: 384) feeds ``neck8``
  (128/256).

The reference repositories build all of ``yolov3.cfg``: 61,949,149 parameters (FAOA zyang-ur/onestage_grounding
2fff0943c3bc, ReSC zyang-ur/ReSC 5cb03df88b4f, LBYL-Net svip-lab/LBYLNet 47a0e83b6db6), of which 6,687,485 are
computed but never used: per scale the head's 3x3 convolution and 255-channel detection convolution after the
saved map, and the stride-8 scale's fifth 1x1 convolution. rsvg does not build them: with all three levels this
module has exactly **55,261,664** parameters (BatchNorm affine terms counted; they are buffers when frozen).

What each level needs (the neck runs from coarse to fine, so the finest requested level decides what is built):
stride 32 needs the trunk and ``neck32``; stride 16 also ``up32`` and ``neck16``; stride 8 also ``up16`` and
``neck8``. Any request builds the whole trunk.

Inputs: any size; maps are ``ceil(H / stride)`` by ``ceil(W / stride)`` (3x3 stride-2 convolutions with padding 1).
When a size is not a multiple of 32 the upsampled map is one cell larger than the trunk map it joins and is
cropped at the bottom/right, so cell ``j`` of a finer map always joins cell ``j // 2`` of the coarser one; at
multiples of 32 this is exactly the reference's upsampling.

Normalisation: ``mean``/``std`` are ImageNet's, as FAOA and ReSC normalise their inputs (Darknet itself trained
``yolov3.weights`` on RGB in [0, 1] without normalisation; LBYL-Net feeds BGR with its own statistics: a model
family reproducing those sets its own). Weights: a Darknet ``yolov3.weights`` file
(:mod:`rsvg.models.backbones.darknet_weights`); nothing ships offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rsvg.models.backbones.base import Backbone
from rsvg.models.backbones.darknet_weights import (
    COCO_CLASSES,
    check_darknet_file,
    load_darknet_weights,
    yolov3_layout,
)
from rsvg.models.backbones.frozen_norm import FrozenBatchNorm2d
from rsvg.models.backbones.weights import LoadReport, random_init_report

__all__ = [
    "DARKNET53_PARAMETERS",
    "DARKNET53_TRUNK_PARAMETERS",
    "ConvBNLeaky",
    "DarkNet53",
    "DarknetStage",
    "NeckBlock",
    "ResidualBlock",
    "TopDown",
]

#: Parameters of :class:`DarkNet53` with all three levels: yolov3.cfg's 61,949,149 less the 6,687,485 unused.
DARKNET53_PARAMETERS = 55_261_664
#: Parameters of the Darknet-53 trunk (``stem`` and ``stage1..5``).
DARKNET53_TRUNK_PARAMETERS = 40_584_928

# (output channels, residual blocks) of stage1..stage5; stage i ends at stride 2**i.
_TRUNK_STAGES: tuple[tuple[int, int], ...] = ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))
# Per level: the width of the neck block's 1x1 convolutions (its output has twice as many channels).
_NECK_WIDTH: dict[int, int] = {32: 512, 16: 256, 8: 128}
_LEAKY_SLOPE = 0.1


class ConvBNLeaky(nn.Module):
    """Darknet's convolutional layer with ``batch_normalize=1``: conv (no bias, padding ``k // 2``), BatchNorm,
    LeakyReLU(0.1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, *, frozen_bn: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False)
        self.bn: nn.Module = FrozenBatchNorm2d(out_channels) if frozen_bn else nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), _LEAKY_SLOPE, inplace=True)


class ResidualBlock(nn.Module):
    """1x1 convolution to half the width, 3x3 back, added to the input (Darknet's ``[shortcut]``, linear)."""

    def __init__(self, channels: int, *, frozen_bn: bool) -> None:
        super().__init__()
        self.conv1 = ConvBNLeaky(channels, channels // 2, 1, frozen_bn=frozen_bn)
        self.conv2 = ConvBNLeaky(channels // 2, channels, 3, frozen_bn=frozen_bn)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


class DarknetStage(nn.Module):
    """A stride-2 3x3 ``down`` convolution, then residual ``blocks``."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, *, frozen_bn: bool) -> None:
        super().__init__()
        self.down = ConvBNLeaky(in_channels, out_channels, 3, 2, frozen_bn=frozen_bn)
        self.blocks = nn.Sequential(*(ResidualBlock(out_channels, frozen_bn=frozen_bn) for _ in range(num_blocks)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.down(x))


class NeckBlock(nn.Module):
    """The first four convolutions of a YOLOv3 scale (1x1 to ``width``, 3x3 to ``2 * width``, twice); their
    output is the map the grounding models use."""

    def __init__(self, in_channels: int, width: int, *, frozen_bn: bool) -> None:
        super().__init__()
        self.conv1 = ConvBNLeaky(in_channels, width, 1, frozen_bn=frozen_bn)
        self.conv2 = ConvBNLeaky(width, 2 * width, 3, frozen_bn=frozen_bn)
        self.conv3 = ConvBNLeaky(2 * width, width, 1, frozen_bn=frozen_bn)
        self.conv4 = ConvBNLeaky(width, 2 * width, 3, frozen_bn=frozen_bn)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv4(self.conv3(self.conv2(self.conv1(x))))


class TopDown(nn.Module):
    """From a scale's map to the next finer scale's input: the scale's fifth 1x1 convolution (``reduce``, to
    ``width``), a 1x1 ``lateral`` convolution (to ``width // 2``), 2x nearest upsampling, and concatenation with
    the finer trunk map (upsampled path first, as the cfg's ``[route] layers=-1,61``)."""

    def __init__(self, width: int, *, frozen_bn: bool) -> None:
        super().__init__()
        self.reduce = ConvBNLeaky(2 * width, width, 1, frozen_bn=frozen_bn)
        self.lateral = ConvBNLeaky(width, width // 2, 1, frozen_bn=frozen_bn)

    def forward(self, x: Tensor, finer: Tensor) -> Tensor:
        up = F.interpolate(self.lateral(self.reduce(x)), scale_factor=2.0, mode="nearest")
        height, width = finer.shape[-2:]
        return torch.cat([up[..., :height, :width], finer], 1)


class DarkNet53(Backbone):
    """Darknet-53 trunk + YOLOv3 neck returning the stride-8/16/32 maps that are asked for (256/512/1024 channels).

    Args:
        weights: a Darknet weights file (``yolov3.weights``); ``None``: random initialisation (PyTorch's default
            for convolutions, BatchNorm at identity), for shape, parameter and speed checks.
        frozen_bn: ``FrozenBatchNorm2d`` with the loaded statistics (default, as the other backbones) or trainable
            ``nn.BatchNorm2d`` (eps 1e-5, momentum 0.1): FAOA, ReSC and LBYL-Net train their Darknet with ordinary
            BatchNorm in training mode, so ``frozen_bn=False`` reproduces them.
        return_levels: strides of the returned maps (8, 16, 32); the neck past the finest is not built.
        frozen_stages: how much of the trunk does not train: 0 nothing (what the references do), 1 (default, as
            the other backbones) ``stem``, ``stage1`` and ``stage2`` (everything before the stride-8 stage),
            2/3/4 also ``stage3``/``stage4``/``stage5`` (4 = the whole trunk). The neck is never frozen by it;
            :meth:`freeze` freezes everything.
        strict: raise when the file does not provide a module entry (with a correct file it always does).
        detection_classes: classes of the YOLOv3 that wrote ``weights`` (80 for ``yolov3.weights``); only the
            size of its unused detection convolutions depends on it.
    """

    name = "darknet53"
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        frozen_bn: bool = True,
        return_levels: int | Sequence[int] = (32,),
        frozen_stages: int = 1,
        strict: bool = True,
        detection_classes: int = COCO_CLASSES,
    ) -> None:
        super().__init__(return_levels)
        if not 0 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be in 0..4, got {frozen_stages}")
        if weights is not None:  # a missing or wrong-sized file fails at once, before 55M parameters are built
            check_darknet_file(weights, yolov3_layout(detection_classes))
        self.stem = ConvBNLeaky(3, 32, 3, frozen_bn=frozen_bn)
        in_channels = 32
        for index, (channels, blocks) in enumerate(_TRUNK_STAGES, start=1):
            self.add_module(f"stage{index}", DarknetStage(in_channels, channels, blocks, frozen_bn=frozen_bn))
            in_channels = channels
        finest = self.return_levels[0]
        self.neck32 = NeckBlock(1024, _NECK_WIDTH[32], frozen_bn=frozen_bn)
        if finest <= 16:
            self.up32 = TopDown(_NECK_WIDTH[32], frozen_bn=frozen_bn)
            self.neck16 = NeckBlock(_NECK_WIDTH[32] // 2 + 512, _NECK_WIDTH[16], frozen_bn=frozen_bn)
        if finest <= 8:
            self.up16 = TopDown(_NECK_WIDTH[16], frozen_bn=frozen_bn)
            self.neck8 = NeckBlock(_NECK_WIDTH[16] // 2 + 256, _NECK_WIDTH[8], frozen_bn=frozen_bn)
        self.out_channels = [2 * _NECK_WIDTH[s] for s in self.return_levels]

        frozen: list[nn.Module] = [self.stem, self.stage1, self.stage2] if frozen_stages >= 1 else []
        frozen += [getattr(self, f"stage{i}") for i in range(3, frozen_stages + 2)]
        self.freeze(frozen)

        self.load_report = random_init_report(self)
        if weights is not None:
            self.load_weights(weights, strict=strict, detection_classes=detection_classes)

    def trunk_modules(self) -> list[nn.Module]:
        """The Darknet-53 trunk: ``stem`` and ``stage1..stage5``."""
        return [self.stem, *(getattr(self, f"stage{i}") for i in range(1, len(_TRUNK_STAGES) + 1))]

    def forward(self, images: Tensor, up_to: int | None = None) -> list[Tensor]:
        """Feature maps of ``return_levels``, highest resolution first; with ``up_to`` only the levels of at most
        that stride. The neck stops at the finest level returned; the trunk always runs to stride 32."""
        levels = [s for s in self.return_levels if up_to is None or s <= up_to]
        if not levels:
            raise ValueError(f"up_to={up_to}: none of the levels {self.return_levels} has a stride <= {up_to}")
        x = self.stage2(self.stage1(self.stem(images)))
        c8 = self.stage3(x)
        c16 = self.stage4(c8)
        maps = {32: self.neck32(self.stage5(c16))}
        if levels[0] <= 16:
            maps[16] = self.neck16(self.up32(maps[32], c16))
        if levels[0] <= 8:
            maps[8] = self.neck8(self.up16(maps[16], c8))
        return [maps[s] for s in levels]

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        return [(m, "conv", "bn") for m in self.modules() if isinstance(m, ConvBNLeaky)]

    def load_weights(
        self, path: str | Path, *, strict: bool = True, detection_classes: int = COCO_CLASSES
    ) -> LoadReport:
        """Load a Darknet ``yolov3.weights`` file (also kept as ``self.load_report``).

        The arrays of the layers rsvg never builds (6,687,485 values of the detection heads) and of the neck
        parts this instance did not build are listed as ignored in the report.

        Raises:
            WeightsNotFoundError: no such file (the message says what to download).
            WeightsFormatError: the file's size does not fit ``yolov3.cfg`` (with both byte counts), or its
                contents are misaligned.
        """
        self.load_report = load_darknet_weights(self, path, yolov3_layout(detection_classes), strict=strict)
        return self.load_report
