"""VGG16 with its fully connected layers turned into convolutions: the trunk of the SSD300 detector (Liu et al.,
ECCV 2016), which ZSGNet's VGG16 row reads.

The trunk is VGG16's thirteen 3×3 convolutions with ReLUs and five poolings, where the third pooling rounds up (a
300-px image gives maps of 150, 75, 38, 19) and the fifth is a 3×3 pooling of stride 1; then ``conv6`` (3×3, 1024
channels, dilation 6) and ``conv7`` (1×1, 1024), each with a ReLU: SSD's reduced fc6 and fc7. It returns
``conv4_3`` after its ReLU at stride 8 (512 channels) and ``conv7`` after its ReLU at stride 16 (1024 channels).
At 300 px that is 38×38 and 19×19. It has 20,483,904 parameters (14,714,688 in the thirteen convolutions,
4,719,616 in conv6 and 1,049,600 in conv7). The layers are kept at SSD's indices (``layers.0`` is conv1_1,
``layers.21`` conv4_3, ``layers.31`` conv6, ``layers.33`` conv7).

Weights come from a local file (nothing is downloaded), in either format:

* SSD's ``vgg16_reducedfc.pth`` (what ssd.pytorch and the ZSGNet reference load), keys ``0.weight`` ...
  ``33.bias``, or a whole SSD300 state dict (keys ``vgg.0.weight`` ...; its other parts are ignored);
* torchvision's ``vgg16`` ImageNet state dict (``vgg16-397923af.pth``): the thirteen convolutions load as they are,
  and conv6 and conv7 are made from the classifier's fc6 and fc7 by decimation, as the SSD paper describes it:
  every 4th output (and, for fc7, every 4th input) channel, and for fc6 every 3rd tap of its 7×7 window, which the
  dilation of 6 spreads back over the same extent.

VGG16 has no batch norm: ``frozen_bn`` changes nothing, and :meth:`conv_bn_pairs` is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from torch import Tensor, nn

from rsvg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from rsvg.models.backbones.base import Backbone
from rsvg.models.backbones.resnet import unwrap_checkpoint
from rsvg.models.backbones.weights import (
    LoadReport,
    WeightsFormatError,
    load_into,
    random_init_report,
    read_state_dict,
)

__all__ = ["Vgg16ReducedFC", "detect_vgg_weights_format", "vgg16_weights_hint"]

# VGG16's convolutions by output channels, "M" a 2x2 pooling, "C" one that rounds up (SSD's third)
_PLAN: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512)
#: the index of conv4_3's ReLU: layers[:_CONV4_3_END] give the stride-8 map
_CONV4_3_END = 23
#: the index where conv4 (the stride-8 stage) starts: everything before it is frozen by frozen_stages=1
_CONV4_START = 17
#: conv6 and conv7, as SSD numbers them
_CONV6, _CONV7 = 31, 33


def vgg16_weights_hint(path: str | Path | None = None) -> str:
    """Which file to put where for a pretrained VGG16 trunk."""
    files = (
        "SSD's vgg16_reducedfc.pth (what the ZSGNet reference loads, from the ssd.pytorch project) or torchvision's "
        "vgg16-397923af.pth (from https://download.pytorch.org/models/)"
    )
    return f"Put {files} at {path}" if path is not None else f"Pass weights=PATH to {files}"


def _trunk_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    for item in _PLAN:
        if item in ("M", "C"):
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=item == "C"))
        else:
            assert isinstance(item, int)
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    layers += [
        nn.MaxPool2d(3, 1, padding=1),  # pool5
        nn.Conv2d(512, 1024, 3, padding=6, dilation=6),  # conv6
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, 1),  # conv7
        nn.ReLU(inplace=True),
    ]
    return layers


def detect_vgg_weights_format(
    obj: Mapping[str, Any], source: str = "weights"
) -> tuple[Literal["ssd", "torchvision"], dict[str, Any]]:
    """Tell SSD's reduced-fc VGG16 from torchvision's ``vgg16``; return the format and the trunk's tensors (SSD's
    names, an SSD300 model's ``vgg.`` prefix removed).

    Raises:
        WeightsFormatError: neither format.
    """
    sd = unwrap_checkpoint(obj)
    if "features.0.weight" in sd:
        return "torchvision", sd
    if "vgg.0.weight" in sd:
        sd = {k.removeprefix("vgg."): v for k, v in sd.items() if k.startswith("vgg.")}
    if "0.weight" in sd and f"{_CONV7}.weight" in sd:
        return "ssd", sd
    first = ", ".join(list(sd)[:5]) or "(no keys)"
    raise WeightsFormatError(
        f"{source} is neither SSD's reduced-fc VGG16 (keys 0.weight ... 33.weight) nor torchvision's vgg16 state "
        f"dict (keys features.0.weight ..., classifier.0.weight); its first keys are: {first}. " + vgg16_weights_hint()
    )


def _from_torchvision(sd: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The trunk's tensors from torchvision's ``vgg16`` (SSD's indices); the keys left out (fc8)."""
    out = {k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")}
    fc6_w, fc6_b = sd.get("classifier.0.weight"), sd.get("classifier.0.bias")
    fc7_w, fc7_b = sd.get("classifier.3.weight"), sd.get("classifier.3.bias")
    if fc6_w is not None and fc6_b is not None:
        if tuple(fc6_w.shape) != (4096, 512 * 7 * 7):
            raise WeightsFormatError(f"classifier.0.weight (fc6) is {tuple(fc6_w.shape)}, not VGG16's (4096, 25088)")
        out[f"{_CONV6}.weight"] = fc6_w.reshape(4096, 512, 7, 7)[::4, :, ::3, ::3].contiguous()
        out[f"{_CONV6}.bias"] = fc6_b[::4].contiguous()
    if fc7_w is not None and fc7_b is not None:
        if tuple(fc7_w.shape) != (4096, 4096):
            raise WeightsFormatError(f"classifier.3.weight (fc7) is {tuple(fc7_w.shape)}, not VGG16's (4096, 4096)")
        out[f"{_CONV7}.weight"] = fc7_w[::4, ::4, None, None].contiguous()
        out[f"{_CONV7}.bias"] = fc7_b[::4].contiguous()
    ignored = [k for k in sd if k.startswith("classifier.") and not k.startswith(("classifier.0.", "classifier.3."))]
    return out, ignored


class Vgg16ReducedFC(Backbone):
    """SSD's VGG16 trunk returning ``conv4_3`` (stride 8) and ``conv7`` (stride 16), those asked for.

    Args:
        weights: SSD's ``vgg16_reducedfc.pth`` or torchvision's ``vgg16`` state dict (a file, or already loaded);
            ``None``: random init (PyTorch's default initialisation of each layer).
        frozen_bn: accepted for the common signature; VGG16 has no batch norm.
        return_levels: strides 8 and/or 16 (it has no stride-32 map); with only 8, conv5 to conv7 are not built.
        frozen_stages: 0 none, 1 everything before conv4 (conv1 to conv3), 2 also conv4, 3 also conv5 to conv7.
        strict: raise on missing or unexpected trunk keys in the file instead of only reporting them.
        allow_pickle: read checkpoints that pickle Python objects (trusted files only).
    """

    name = "vgg16"
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(
        self,
        weights: str | Path | Mapping[str, Any] | None = None,
        *,
        frozen_bn: bool = True,
        return_levels: int | Sequence[int] = (8, 16),
        frozen_stages: int = 0,
        strict: bool = True,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__(return_levels)
        if 32 in self.return_levels:
            raise ValueError("VGG16's SSD trunk has maps at strides 8 and 16 only, not 32")
        if not 0 <= frozen_stages <= 3:
            raise ValueError(f"frozen_stages must be in 0..3, got {frozen_stages}")
        checkpoint = _read_vgg_checkpoint(weights, allow_pickle) if weights is not None else None
        layers = _trunk_layers()
        if self.return_levels[-1] == 8:
            layers = layers[:_CONV4_3_END]
        self.layers = nn.Sequential(*layers)
        self.out_channels = [{8: 512, 16: 1024}[s] for s in self.return_levels]
        bounds = [0, _CONV4_START, _CONV4_3_END, len(self.layers)]
        self.freeze([self.layers[i] for i in range(bounds[frozen_stages])])
        self.load_report = random_init_report(self)
        if checkpoint is not None:
            self._load_checkpoint(*checkpoint, strict=strict)

    def forward(self, images: Tensor, up_to: int | None = None) -> list[Tensor]:
        """``conv4_3`` and/or ``conv7`` after their ReLUs, those in ``return_levels``; with ``up_to`` 8, only
        ``conv4_3`` (the later layers are not run)."""
        if up_to is not None and up_to < 8:
            raise ValueError(f"up_to={up_to}: none of the levels {self.return_levels} has a stride <= {up_to}")
        x = self.layers[:_CONV4_3_END](images)
        outputs = [x] if 8 in self.return_levels else []
        if 16 in self.return_levels and (up_to is None or up_to >= 16):
            outputs.append(self.layers[_CONV4_3_END:](x))
        return outputs

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        return []

    def load_weights(
        self, weights: str | Path | Mapping[str, Any], *, strict: bool = True, allow_pickle: bool = False
    ) -> LoadReport:
        """Load SSD's reduced-fc VGG16 or torchvision's ``vgg16`` (file or loaded) into the trunk; torchvision's
        fc6 and fc7 are decimated into conv6 and conv7 (see the module docstring)."""
        return self._load_checkpoint(*_read_vgg_checkpoint(weights, allow_pickle), strict=strict)

    def _load_checkpoint(self, fmt: str, sd: dict[str, Any], source: str, *, strict: bool) -> LoadReport:
        trunk, ignored = _from_torchvision(sd) if fmt == "torchvision" else (sd, [])
        kept = {}
        for key, value in trunk.items():
            index = key.split(".")[0]
            if index.isdigit() and int(index) >= len(self.layers):  # conv5 to conv7 when only conv4_3 is asked for
                ignored.append(key)
            else:  # anything else must match (or is reported as unexpected)
                kept[f"layers.{key}"] = value
        self.load_report = load_into(self, kept, source=f"{source} ({fmt})", ignored=ignored, strict=strict)
        return self.load_report


def _read_vgg_checkpoint(
    weights: str | Path | Mapping[str, Any], allow_pickle: bool
) -> tuple[Literal["ssd", "torchvision"], dict[str, Any], str]:
    """Read (if a path) and recognise VGG16 weights: (format, state dict, description of the source)."""
    if isinstance(weights, Mapping):
        obj, source = weights, "the given state dict"
    else:
        obj = read_state_dict(weights, hint=vgg16_weights_hint(weights), allow_pickle=allow_pickle)
        source = str(weights)
    fmt, sd = detect_vgg_weights_format(obj, source)
    return fmt, sd, source
