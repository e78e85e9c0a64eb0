"""ResNet-50 backbone of MGVLF (and ResNet-101, VLTVG's and TransVG's larger rows), loading torchvision or DETR
weights, and DETR transformer-encoder weights.

The architecture is torchvision's ``resnet50`` with ``FrozenBatchNorm2d`` everywhere (as in DETR and the paper's
code), conv1 + bn1 + layer1 frozen, and no avgpool/fc. Stride-8/16/32 maps are layer2/3/4 (512/1024/2048 channels).
With every stage built it has 23.45M parameters (BatchNorm affine terms are buffers when frozen); ResNet-101 (the
same with 23 blocks in layer3) has 42.39M.

Weights come from a local file (nothing is downloaded), in either format:

* torchvision's ``resnet50`` state dict, e.g. ``resnet50-0676ba61.pth`` or ``resnet50-19c8e357.pth``
  (keys ``conv1.weight``, ``layer1.0.conv1.weight``, ..., ``fc.weight``; the fc is ignored);
* DETR's ``detr-r50-e632da11.pth``, ``{"model": {...}}`` with keys ``backbone.0.body.conv1.weight``, ... (what the
  paper's code starts from). Its transformer encoder can go to the model's visual encoder with
  :func:`load_detr_encoder` / :func:`map_detr_encoder_keys`.

Both expect RGB images normalised with the ImageNet mean/std.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torchvision
from torch import Tensor, nn

from rsvg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rsvg.models.backbones.base import Backbone
from rsvg.models.backbones.frozen_norm import FrozenBatchNorm2d
from rsvg.models.backbones.weights import (
    LoadReport,
    WeightsFormatError,
    load_into,
    random_init_report,
    read_state_dict,
    strip_prefix,
)

__all__ = [
    "DETR_ENCODER_LAYER_KEYS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ResNet50Backbone",
    "ResNet101Backbone",
    "detect_resnet_weights_format",
    "detr_encoder_state_dict",
    "load_detr_encoder",
    "map_detr_encoder_keys",
    "resnet50_weights_hint",
]


_DETR_BACKBONE_PREFIX = "backbone.0.body."
_DETR_ENCODER_PREFIX = "transformer.encoder.layers."

#: The tensors of one DETR encoder layer, named as in ``torch.nn.TransformerEncoderLayer`` (post-norm).
DETR_ENCODER_LAYER_KEYS: tuple[str, ...] = (
    "self_attn.in_proj_weight",
    "self_attn.in_proj_bias",
    "self_attn.out_proj.weight",
    "self_attn.out_proj.bias",
    "linear1.weight",
    "linear1.bias",
    "linear2.weight",
    "linear2.bias",
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
)

# (module name, stride, channels) of the stages that give the returned levels.
_LEVEL_STAGES: tuple[tuple[str, int, int], ...] = (("layer2", 8, 512), ("layer3", 16, 1024), ("layer4", 32, 2048))


#: per depth, torchvision's and DETR's file names
_WEIGHT_FILES = {
    50: ("resnet50-0676ba61.pth (or resnet50-19c8e357.pth", "detr-r50-e632da11.pth"),
    101: ("resnet101-63fe2227.pth (or resnet101-cd907fc2.pth", "detr-r101-2c7b67e5.pth"),
}


def resnet50_weights_hint(path: str | Path | None = None, depth: int = 50) -> str:
    """Which file to put where for pretrained ResNet-50 (or ResNet-``depth``) weights."""
    tv_file, detr_file = _WEIGHT_FILES[depth]
    tv = f"torchvision's {tv_file}, from https://download.pytorch.org/models/)"
    detr = f"DETR's {detr_file} (from https://dl.fbaipublicfiles.com/detr/)"
    if path is None:
        return f"Pass weights=PATH to {tv} or to {detr}"
    return f"Put {tv} at {path}, or {detr}"


def unwrap_checkpoint(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The state dict inside a checkpoint (``{"model": ...}`` or ``{"state_dict": ...}``), ``module.`` removed."""
    for wrapper in ("model", "state_dict"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping):
            obj = inner
            break
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):  # saved from a DistributedDataParallel wrapper
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


def detect_resnet_weights_format(
    obj: Mapping[str, Any], source: str = "weights", depth: int = 50
) -> tuple[Literal["torchvision", "detr"], dict[str, Any]]:
    """Tell a torchvision ``resnet50`` state dict from a DETR checkpoint; return the format and the state dict.

    Raises:
        WeightsFormatError: neither format.
    """
    sd = unwrap_checkpoint(obj)
    if any(k.startswith(_DETR_BACKBONE_PREFIX) for k in sd):
        return "detr", sd
    if "conv1.weight" in sd and any(k.startswith("layer1.") for k in sd):
        return "torchvision", sd
    first = ", ".join(list(sd)[:5]) or "(no keys)"
    raise WeightsFormatError(
        f"{source} is neither a torchvision resnet{depth} state dict (keys conv1.weight, layer1.0.conv1.weight, ...) "
        f"nor a DETR checkpoint (keys backbone.0.body.conv1.weight, ...); its first keys are: {first}. "
        + resnet50_weights_hint(depth=depth)
    )


class ResNet50Backbone(Backbone):
    """torchvision ResNet-50 trunk returning the stride-8/16/32 maps (layer2/3/4) that are asked for.

    Args:
        weights: a torchvision ``resnet50`` state dict or a DETR ``detr-r50`` checkpoint (a file, or already
            loaded); ``None``: random init.
        frozen_bn: ``FrozenBatchNorm2d`` (default) or trainable ``nn.BatchNorm2d``.
        return_levels: strides of the returned maps; stages past the largest are not built.
        frozen_stages: 0 none, 1 conv1+bn1+layer1 (default), 2/3/4 also layer2/3/4.
        strict: raise on missing/unexpected backbone keys in the file instead of only reporting them.
        allow_pickle: read checkpoints that pickle Python objects (trusted files only).
    """

    name = "resnet50"
    depth = 50
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        weights: str | Path | Mapping[str, Any] | None = None,
        *,
        frozen_bn: bool = True,
        return_levels: int | Sequence[int] = (32,),
        frozen_stages: int = 1,
        strict: bool = True,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__(return_levels)
        if not 0 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be in 0..4, got {frozen_stages}")
        # Read and check the file before building, so that a wrong path or file fails at once.
        checkpoint = _read_resnet_checkpoint(weights, allow_pickle, self.depth) if weights is not None else None
        norm_layer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        trunk = torchvision.models.resnet101 if self.depth == 101 else torchvision.models.resnet50
        net = trunk(weights=None, norm_layer=norm_layer)
        self.conv1 = net.conv1
        self.bn1 = net.bn1
        self.relu = net.relu
        self.maxpool = net.maxpool
        self.layer1 = net.layer1
        self._stages: list[tuple[str, int]] = []
        for stage, stride, channels in _LEVEL_STAGES:
            if stride > self.return_levels[-1]:
                break
            self.add_module(stage, getattr(net, stage))
            self._stages.append((stage, stride))
            if stride in self.return_levels:
                self.out_channels.append(channels)
        del net  # avgpool and fc are not kept

        frozen: list[nn.Module] = [self.conv1, self.bn1, self.layer1] if frozen_stages >= 1 else []
        frozen += [getattr(self, stage) for stage, _ in self._stages[: max(frozen_stages - 1, 0)]]
        self.freeze(frozen)

        self.load_report = random_init_report(self)
        if checkpoint is not None:
            self._load_checkpoint(*checkpoint, strict=strict)

    def forward(self, images: Tensor, up_to: int | None = None) -> list[Tensor]:
        """Feature maps of ``return_levels``, highest resolution first; with ``up_to`` only the levels of at most
        that stride (the stages after it are not run)."""
        if up_to is not None and not any(s <= up_to for s in self.return_levels):
            raise ValueError(f"up_to={up_to}: none of the levels {self.return_levels} has a stride <= {up_to}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer1(x)
        outputs: list[Tensor] = []
        for stage, stride in self._stages:
            if up_to is not None and stride > up_to:
                break
            x = getattr(self, stage)(x)
            if stride in self.return_levels:
                outputs.append(x)
        return outputs

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        pairs: list[tuple[nn.Module, str, str]] = [(self, "conv1", "bn1")]
        for stage in ("layer1", *(name for name, _ in self._stages)):
            for block in getattr(self, stage):
                pairs += [(block, f"conv{i}", f"bn{i}") for i in (1, 2, 3)]
                if block.downsample is not None:
                    pairs.append((block.downsample, "0", "1"))
        return pairs

    def load_weights(
        self, weights: str | Path | Mapping[str, Any], *, strict: bool = True, allow_pickle: bool = False
    ) -> LoadReport:
        """Load a torchvision ``resnet50`` state dict or a DETR ``detr-r50`` checkpoint (file or loaded), by name.

        The fc layer, DETR's non-backbone parts and the stages this instance did not build are listed as
        ignored in the returned report (also kept as ``self.load_report``).
        """
        return self._load_checkpoint(*_read_resnet_checkpoint(weights, allow_pickle, self.depth), strict=strict)

    def _load_checkpoint(self, fmt: str, sd: dict[str, Any], source: str, *, strict: bool) -> LoadReport:
        prefix = _DETR_BACKBONE_PREFIX if fmt == "detr" else ""
        body, ignored = strip_prefix(sd, prefix)
        unbuilt = {"fc"} | {stage for stage, _, _ in _LEVEL_STAGES if not hasattr(self, stage)}
        kept: dict[str, Any] = {}
        for key, value in body.items():
            if key.split(".")[0] in unbuilt:  # the classifier, or a stage past the largest requested level
                ignored.append(prefix + key)
            else:  # anything else must match (or is reported as unexpected)
                kept[key] = value
        self.load_report = load_into(self, kept, source=f"{source} ({fmt})", ignored=ignored, strict=strict)
        return self.load_report


class ResNet101Backbone(ResNet50Backbone):
    """torchvision's ResNet-101 trunk, otherwise as :class:`ResNet50Backbone` (the same weight formats: torchvision's
    ``resnet101`` state dict or DETR's ``detr-r101`` checkpoint)."""

    name = "resnet101"
    depth = 101


def _read_resnet_checkpoint(
    weights: str | Path | Mapping[str, Any], allow_pickle: bool, depth: int = 50
) -> tuple[Literal["torchvision", "detr"], dict[str, Any], str]:
    """Read (if a path) and recognise ResNet weights: (format, state dict, description of the source)."""
    if isinstance(weights, Mapping):
        obj, source = weights, "the given state dict"
    else:
        obj = read_state_dict(weights, hint=resnet50_weights_hint(weights, depth), allow_pickle=allow_pickle)
        source = str(weights)
    fmt, sd = detect_resnet_weights_format(obj, source, depth)
    return fmt, sd, source


def detr_encoder_state_dict(source: str | Path | Mapping[str, Any], *, allow_pickle: bool = False) -> dict[str, Tensor]:
    """The transformer-encoder tensors of a DETR checkpoint, under their DETR names.

    Args:
        source: a DETR checkpoint file, or the loaded checkpoint / its ``"model"`` state dict.

    Returns:
        ``{"transformer.encoder.layers.{i}.self_attn.in_proj_weight": tensor, ...}``.

    Raises:
        WeightsFormatError: the checkpoint has no DETR encoder.
    """
    if isinstance(source, Mapping):
        obj: Mapping[str, Any] = source
        where = "the given state dict"
    else:
        obj = read_state_dict(source, hint="DETR's detr-r50-e632da11.pth is expected", allow_pickle=allow_pickle)
        where = str(source)
    sd = unwrap_checkpoint(obj)
    encoder = {k: v for k, v in sd.items() if k.startswith(_DETR_ENCODER_PREFIX)}
    if not encoder:
        raise WeightsFormatError(
            f"{where} has no DETR transformer encoder (keys {_DETR_ENCODER_PREFIX}0.self_attn.in_proj_weight, ...); "
            "expected DETR's detr-r50-e632da11.pth"
        )
    return encoder


def _detr_layer_indices(detr_sd: Mapping[str, Any]) -> list[int]:
    pattern = re.compile(re.escape(_DETR_ENCODER_PREFIX) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in detr_sd if (m := pattern.match(k))})


def map_detr_encoder_keys(detr_sd: Mapping[str, Any], num_layers: int, prefix: str = "layers.") -> dict[str, Tensor]:
    """Rename DETR encoder layers ``0..num_layers-1`` to ``torch.nn.TransformerEncoderLayer``-style names.

    ``transformer.encoder.layers.{i}.linear1.weight`` becomes ``{prefix}{i}.linear1.weight`` (DETR's encoder
    layer and PyTorch's use the same sub-module names: ``self_attn.in_proj_weight/bias``,
    ``self_attn.out_proj.weight/bias``, ``linear1``, ``linear2``, ``norm1``, ``norm2``). Layers past
    ``num_layers`` are left out.

    Args:
        detr_sd: a DETR state dict (or checkpoint, or the output of :func:`detr_encoder_state_dict`).
        num_layers: how many layers to take, from the first.
        prefix: the target name of the layer list, e.g. ``"layers."`` for ``nn.TransformerEncoder``.

    Raises:
        WeightsFormatError: fewer than ``num_layers`` layers, or a layer lacks one of its tensors.
    """
    sd = unwrap_checkpoint(detr_sd)
    available = _detr_layer_indices(sd)
    if num_layers < 0 or available[:num_layers] != list(range(num_layers)):
        raise WeightsFormatError(
            f"asked for {num_layers} DETR encoder layers, the checkpoint has {len(available)} (indices {available})"
        )
    mapped: dict[str, Tensor] = {}
    for i in range(num_layers):
        for suffix in DETR_ENCODER_LAYER_KEYS:
            source_key = f"{_DETR_ENCODER_PREFIX}{i}.{suffix}"
            if source_key not in sd:
                raise WeightsFormatError(f"DETR encoder tensor {source_key} is missing from the checkpoint")
            mapped[f"{prefix}{i}.{suffix}"] = sd[source_key]
        known = {f"{_DETR_ENCODER_PREFIX}{i}.{s}" for s in DETR_ENCODER_LAYER_KEYS}
        extra = [k for k in sd if k.startswith(f"{_DETR_ENCODER_PREFIX}{i}.") and k not in known]
        if extra:
            raise WeightsFormatError(f"DETR encoder layer {i} has tensors with no mapping: {extra}")
    return mapped


def load_detr_encoder(
    encoder: nn.Module,
    source: str | Path | Mapping[str, Any],
    *,
    num_layers: int | None = None,
    prefix: str = "layers.",
    strict: bool = True,
    allow_pickle: bool = False,
) -> LoadReport:
    """Load DETR's encoder layers into ``encoder`` (e.g. an ``nn.TransformerEncoder`` of post-norm layers).

    Args:
        encoder: the module whose ``{prefix}{i}.*`` entries receive DETR layer ``i``.
        source: a DETR checkpoint file or loaded state dict.
        num_layers: how many layers to load; default: as many as ``encoder`` has under ``prefix``.
        prefix: where the layers live inside ``encoder``.
        strict: raise if ``encoder`` has other entries that the checkpoint cannot fill.

    Returns:
        The report; DETR encoder layers beyond ``num_layers`` are listed as ignored.
    """
    detr_sd = detr_encoder_state_dict(source, allow_pickle=allow_pickle)
    if num_layers is None:
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        num_layers = len({m.group(1) for k in encoder.state_dict() if (m := pattern.match(k))})
    mapped = map_detr_encoder_keys(detr_sd, num_layers, prefix)
    ignored = [k for k in detr_sd if not any(k.startswith(f"{_DETR_ENCODER_PREFIX}{i}.") for i in range(num_layers))]
    where = "DETR state dict" if isinstance(source, Mapping) else str(source)
    return load_into(encoder, mapped, source=f"{where} (DETR encoder)", ignored=ignored, strict=strict)
