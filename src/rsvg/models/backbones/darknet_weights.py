"""Reading (and writing) weights in the original Darknet binary format, e.g. pjreddie's ``yolov3.weights``.

A Darknet weights file has no names and no shapes: it is a header, then the arrays of every convolutional layer
of the network's ``.cfg`` file, in cfg order, as little-endian float32:

* header: ``major``, ``minor``, ``revision`` as int32, then ``seen`` (images seen in training): an int64 when
  ``major * 10 + minor >= 2`` (and both are below 1000, as Darknet's ``load_weights_upto`` tests), else an int32.
  So the header is 20 bytes for files written by Darknet since version 0.2 (``yolov3.weights``: 0.2.0) and 16 bytes
  for older ones. (FAOA, ReSC and LBYL-Net always read five int32: the same 20 bytes, not the older 16.)
* per convolution with batch normalisation: BN bias (beta), BN weight (gamma), running mean, running variance
  (``out`` values each), then the convolution weight ``(out, in, k, k)``;
* per convolution without it (YOLO's detection convolutions): the convolution bias, then its weight.

The file can only be read against a known layer list. :func:`yolov3_layout` gives that of ``yolov3.cfg``
(75 convolutions among 107 layers), each mapped to the module of
:class:`~rsvg.models.backbones.darknet.DarkNet53` that holds it, or to ``None`` for the layers rsvg does not
build: per scale the 3x3 convolution and the detection convolution after the feature map the grounding models
use, and the stride-8 scale's 1x1 convolution before them (6,687,485 parameters that FAOA, ReSC and LBYL-Net
compute but never use). Their bytes are stepped over and listed as ignored in the :class:`LoadReport`.

The file size is checked against the layout before anything is read, so a truncated download or a file of
another network is refused with both byte counts; every running variance read must be finite and non-negative,
which a misaligned read (wrong layout or header) would almost surely violate.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rsvg.models.backbones.weights import LoadReport, WeightsFormatError, WeightsNotFoundError, load_into

__all__ = [
    "COCO_CLASSES",
    "DarknetConv",
    "DarknetHeader",
    "DarknetWeights",
    "check_darknet_file",
    "darknet_file_bytes",
    "darknet_weights_hint",
    "load_darknet_weights",
    "read_darknet_header",
    "read_darknet_weights",
    "write_darknet_weights",
    "yolov3_layout",
]

#: Classes of the COCO-trained ``yolov3.weights``; its detection convolutions have 3 * (80 + 5) = 255 outputs.
COCO_CLASSES = 80
#: YOLOv3's anchors per scale: each detection convolution predicts (x, y, w, h, objectness, classes) per anchor.
_ANCHORS_PER_SCALE = 3

_FLOAT = np.dtype("<f4")
_FLOAT_BYTES = 4


def darknet_weights_hint() -> str:
    """Which file to get and where to pass it."""
    return (
        "Download yolov3.weights (248,007,048 bytes, COCO-trained YOLOv3) from the Darknet project "
        "(pjreddie.com/darknet/yolo) and pass its path as model.backbone_weights (build_backbone(weights=PATH))"
    )


@dataclass(frozen=True)
class DarknetHeader:
    """The header of a Darknet weights file."""

    major: int
    minor: int
    revision: int
    seen: int

    @property
    def seen_is_int64(self) -> bool:
        """Whether ``seen`` is stored as an int64 (Darknet's rule on the version numbers)."""
        return self.major * 10 + self.minor >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def num_bytes(self) -> int:
        """Header size: 12 bytes of version, then 8 or 4 bytes of ``seen``."""
        return 12 + (8 if self.seen_is_int64 else 4)

    def to_bytes(self) -> bytes:
        version = struct.pack("<3i", self.major, self.minor, self.revision)
        return version + struct.pack("<q" if self.seen_is_int64 else "<i", self.seen)

    def __str__(self) -> str:
        return f"darknet {self.major}.{self.minor}.{self.revision}, seen {self.seen}"


@dataclass(frozen=True)
class DarknetConv:
    """One convolutional layer of a Darknet network, as its weights file stores it.

    Attributes:
        index: the layer's number in the cfg (Darknet numbers every section after ``[net]`` from 0, so routes
            and shortcuts count too).
        in_channels / out_channels / kernel: the convolution's shape (square kernel).
        batch_norm: whether the layer has batch normalisation (then the convolution has no bias).
        target: the name of the module holding this layer as ``conv`` (and ``bn``) children, or ``None`` when
            the model does not build it (its bytes are stepped over).
    """

    index: int
    in_channels: int
    out_channels: int
    kernel: int
    batch_norm: bool = True
    target: str | None = None

    def arrays(self) -> list[tuple[str, tuple[int, ...]]]:
        """``(name, shape)`` of the arrays this layer stores, in file order; names are relative to ``target``."""
        c = self.out_channels
        weight = ("conv.weight", (c, self.in_channels, self.kernel, self.kernel))
        if self.batch_norm:
            return [("bn.bias", (c,)), ("bn.weight", (c,)), ("bn.running_mean", (c,)), ("bn.running_var", (c,)), weight]
        return [("conv.bias", (c,)), weight]

    @property
    def num_floats(self) -> int:
        """float32 values this layer occupies in the file (parameters and BatchNorm running statistics)."""
        return sum(math.prod(shape) for _, shape in self.arrays())

    @property
    def num_parameters(self) -> int:
        """Trainable values of this layer in a PyTorch module (running statistics are buffers, not counted)."""
        return self.num_floats - (2 * self.out_channels if self.batch_norm else 0)

    def key(self, array: str) -> str:
        """The full name of one of its arrays: ``{target}.{array}``, or ``layer{index}.{array}`` if not built."""
        return f"{self.target}.{array}" if self.target is not None else f"layer{self.index}.{array}"


class _LayoutBuilder:
    """Numbers the cfg's layers while the convolutions are listed."""

    def __init__(self) -> None:
        self.layers: list[DarknetConv] = []
        self.index = 0

    def conv(self, in_ch: int, out_ch: int, kernel: int, target: str | None, batch_norm: bool = True) -> None:
        self.layers.append(DarknetConv(self.index, in_ch, out_ch, kernel, batch_norm, target))
        self.index += 1

    def other(self, count: int = 1) -> None:
        """Layers without weights: ``[shortcut]``, ``[route]``, ``[upsample]``, ``[yolo]``."""
        self.index += count


def yolov3_layout(detection_classes: int = COCO_CLASSES) -> tuple[DarknetConv, ...]:
    """The convolutions of ``yolov3.cfg`` in file order, mapped to :class:`DarkNet53`'s module names.

    Darknet-53 (52 convolutions, layers 0-74): ``stem``, then five stages ``stage{1..5}`` of a stride-2 3x3
    ``down`` convolution and 1, 2, 8, 8, 4 residual blocks ``blocks.{i}.conv1`` (1x1, halves the width) and
    ``conv2`` (3x3) followed by a ``[shortcut]``. The YOLOv3 neck, per scale from stride 32 to 8: four
    convolutions ``neck{s}.conv1..conv4`` (1x1, 3x3, 1x1, 3x3) whose output is the map the grounding models use,
    a 1x1 convolution (``up{s}.reduce`` at strides 32 and 16, unused at stride 8), the head's 3x3 convolution
    and detection convolution (unused), ``[yolo]``, and at strides 32 and 16 a ``[route]`` back to the 1x1, a
    1x1 ``up{s}.lateral`` convolution, ``[upsample]`` and a ``[route]`` concatenating the trunk's next-finer map
    (layers 61 and 36).

    Args:
        detection_classes: classes of the detector that wrote the file (80 for ``yolov3.weights``); its detection
            convolutions have ``3 * (classes + 5)`` outputs. Only their size matters: they are never loaded.
    """
    if detection_classes < 1:
        raise ValueError(f"detection_classes must be positive, got {detection_classes}")
    detection = _ANCHORS_PER_SCALE * (detection_classes + 5)
    b = _LayoutBuilder()
    b.conv(3, 32, 3, "stem")
    in_ch = 32
    for stage, (width, blocks) in enumerate(((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)), start=1):
        b.conv(in_ch, width, 3, f"stage{stage}.down")
        for block in range(blocks):
            b.conv(width, width // 2, 1, f"stage{stage}.blocks.{block}.conv1")
            b.conv(width // 2, width, 3, f"stage{stage}.blocks.{block}.conv2")
            b.other()  # [shortcut] from=-3
        in_ch = width
    # in_ch: the trunk's 1024 channels, then the upsampled path concatenated with the trunk map (768, then 384).
    for stride, width, finer_trunk in ((32, 512, 512), (16, 256, 256), (8, 128, 0)):
        shapes = ((in_ch, width, 1), (width, 2 * width, 3), (2 * width, width, 1), (width, 2 * width, 3))
        for i, (c_in, c_out, k) in enumerate(shapes, start=1):
            b.conv(c_in, c_out, k, f"neck{stride}.conv{i}")
        b.conv(2 * width, width, 1, f"up{stride}.reduce" if finer_trunk else None)
        b.conv(width, 2 * width, 3, None)  # the head's 3x3 convolution
        b.conv(2 * width, detection, 1, None, batch_norm=False)  # the detection convolution
        b.other()  # [yolo]
        if finer_trunk:
            b.other()  # [route] layers=-4: back to up{stride}.reduce
            b.conv(width, width // 2, 1, f"up{stride}.lateral")
            b.other(2)  # [upsample], [route] layers=-1,61 (then -1,36)
            in_ch = width // 2 + finer_trunk
    return tuple(b.layers)


def darknet_file_bytes(layout: Sequence[DarknetConv], header_bytes: int = 20) -> int:
    """The exact size of a weights file holding ``layout`` (``yolov3.weights``: 20 + 4 * 62,001,757)."""
    return header_bytes + _FLOAT_BYTES * sum(layer.num_floats for layer in layout)


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise WeightsNotFoundError(f"Darknet weights file not found: {path}. {darknet_weights_hint()}")


def read_darknet_header(path: str | Path) -> DarknetHeader:
    """Read the header of a Darknet weights file.

    Raises:
        WeightsNotFoundError: the file does not exist.
        WeightsFormatError: the file is shorter than a header.
    """
    path = Path(path).expanduser()
    _check_exists(path)
    with path.open("rb") as f:
        raw = f.read(20)
    if len(raw) < 12:
        raise WeightsFormatError(f"{path} has {len(raw)} bytes: too short for a Darknet weights header")
    major, minor, revision = struct.unpack("<3i", raw[:12])
    header = DarknetHeader(major, minor, revision, 0)
    if len(raw) < header.num_bytes:
        raise WeightsFormatError(f"{path} has {len(raw)} bytes: too short for a Darknet weights header")
    (seen,) = struct.unpack("<q" if header.seen_is_int64 else "<i", raw[12 : header.num_bytes])
    return DarknetHeader(major, minor, revision, seen)


def _size_error(path: Path, header: DarknetHeader, found: int, layout: Sequence[DarknetConv]) -> WeightsFormatError:
    """The error for a file whose size does not fit ``layout``, with what it would fit instead when we can tell."""
    expected = darknet_file_bytes(layout, header.num_bytes)
    floats = (expected - header.num_bytes) // _FLOAT_BYTES
    message = (
        f"{path} has {found:,} bytes but a Darknet weights file of this network has {expected:,} "
        f"({header.num_bytes}-byte header of {header} + {floats:,} float32 for {len(layout)} convolutions): "
        f"it is {'truncated' if found < expected else 'too long'} or holds another network"
    )
    trunk = [layer for layer in layout if layer.target is not None and layer.target.startswith(("stem", "stage"))]
    detections = [layer for layer in layout if not layer.batch_norm]
    if trunk and found == darknet_file_bytes(trunk, header.num_bytes):
        message += "; its size is that of a Darknet-53 trunk without the YOLOv3 neck (such as darknet53.conv.74)"
    elif detections and (found - header.num_bytes) % _FLOAT_BYTES == 0:
        # A YOLOv3 trained for another number of classes differs only in its detection convolutions' outputs.
        per_output = sum(layer.in_channels * layer.kernel**2 + 1 for layer in detections)
        base = (expected - header.num_bytes) // _FLOAT_BYTES - per_output * detections[0].out_channels
        outputs, remainder = divmod((found - header.num_bytes) // _FLOAT_BYTES - base, per_output)
        if remainder == 0 and outputs % _ANCHORS_PER_SCALE == 0 and outputs // _ANCHORS_PER_SCALE > 5:
            classes = outputs // _ANCHORS_PER_SCALE - 5
            message += f"; its size fits a YOLOv3 trained for {classes} classes (pass detection_classes={classes})"
    return WeightsFormatError(message + ". " + darknet_weights_hint())


def check_darknet_file(path: str | Path, layout: Sequence[DarknetConv] | None = None) -> DarknetHeader:
    """Check that ``path`` is a Darknet weights file of exactly ``layout``'s size (default: :func:`yolov3_layout`)
    without reading its arrays; returns its header.

    Raises:
        WeightsNotFoundError: the file does not exist.
        WeightsFormatError: its size does not fit (the message gives both byte counts and, when its size fits
            a trunk-only file or a YOLOv3 of another class count, says so).
    """
    path = Path(path).expanduser()
    layout = yolov3_layout() if layout is None else layout
    header = read_darknet_header(path)
    found = path.stat().st_size
    if found != darknet_file_bytes(layout, header.num_bytes):
        raise _size_error(path, header, found, layout)
    return header


@dataclass
class DarknetWeights:
    """The contents of a Darknet weights file read against a layout.

    Attributes:
        header: the file's header.
        tensors: the arrays of the layers with a ``target``, as ``{target}.{array}`` (e.g.
            ``"stage3.blocks.0.conv1.bn.running_var"``), shaped as the module's tensors.
        skipped: the names (``layer{index}.{array}``) of the arrays of layers without a target, not read.
    """

    header: DarknetHeader
    tensors: dict[str, Tensor] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def read_darknet_weights(path: str | Path, layout: Sequence[DarknetConv] | None = None) -> DarknetWeights:
    """Read a Darknet weights file against ``layout`` (default: :func:`yolov3_layout`).

    The size is checked before reading; the file is memory-mapped, so the bytes of skipped layers are never read.

    Raises:
        WeightsNotFoundError: the file does not exist (the message says what to download and where to pass it).
        WeightsFormatError: its size does not fit the layout exactly, or a running variance is negative or not
            finite (the arrays are not where the layout puts them).
    """
    path = Path(path).expanduser()
    layout = yolov3_layout() if layout is None else layout
    header = check_darknet_file(path, layout)
    result = DarknetWeights(header)
    data = np.memmap(path, dtype=_FLOAT, mode="r", offset=header.num_bytes)
    try:
        offset = 0
        for layer in layout:
            for array, shape in layer.arrays():
                n = math.prod(shape)
                if layer.target is None:
                    result.skipped.append(layer.key(array))
                else:
                    values = np.array(data[offset : offset + n], dtype=np.float32)
                    result.tensors[layer.key(array)] = torch.from_numpy(values).reshape(shape)
                offset += n
    finally:
        del data  # release the mapping (Windows keeps the file locked while it is open)
    bad = [
        k
        for k, v in result.tensors.items()
        if k.endswith("running_var") and not (bool(torch.isfinite(v).all()) and bool((v >= 0).all()))
    ]
    if bad:
        raise WeightsFormatError(
            f"{path}: negative or non-finite BatchNorm variances in {len(bad)} layers (first: {bad[0]}); the file's "
            f"arrays are not laid out as {len(layout)} YOLOv3 convolutions. {darknet_weights_hint()}"
        )
    return result


def load_darknet_weights(
    module: nn.Module,
    path: str | Path,
    layout: Sequence[DarknetConv] | None = None,
    *,
    strict: bool = True,
) -> LoadReport:
    """Read a Darknet weights file and load it into ``module`` by the layout's target names.

    Arrays of layers the module does not have (not built for the requested levels) and of layers without a
    target are listed as ignored in the returned report; every module entry the file provides is loaded.

    Raises:
        WeightsNotFoundError / WeightsFormatError: see :func:`read_darknet_weights`; also (``strict``) module
            entries the layout does not provide, and shapes that differ.
    """
    weights = read_darknet_weights(path, layout)
    own = module.state_dict()
    kept = {k: v for k, v in weights.tensors.items() if k in own}
    ignored = [k for k in weights.tensors if k not in own] + weights.skipped
    return load_into(
        module, kept, source=f"{Path(path).expanduser()} ({weights.header})", ignored=ignored, strict=strict
    )


def write_darknet_weights(
    path: str | Path,
    tensors: Mapping[str, Tensor],
    layout: Sequence[DarknetConv] | None = None,
    *,
    header: DarknetHeader | None = None,
    fill_skipped: Callable[[int], np.ndarray] | None = None,
) -> int:
    """Write ``tensors`` (named as :func:`read_darknet_weights` returns them, e.g. a :class:`DarkNet53`'s state
    dict) as a Darknet weights file in ``layout``'s order; returns the bytes written.

    Darknet runs such a file with the layout's cfg (e.g. ``yolov3.cfg``), and :func:`read_darknet_weights` reads
    it back. ``header`` defaults to version 0.2.0 with ``seen`` 0 (what Darknet writes today). Layers without a
    target get ``fill_skipped(n)`` (``n`` float32 values), zeros by default.

    Raises:
        KeyError: a layer with a target has an array missing from ``tensors``.
        ValueError: an array has the wrong number of values.
    """
    layout = yolov3_layout() if layout is None else layout
    header = DarknetHeader(0, 2, 0, 0) if header is None else header
    written = 0
    with Path(path).expanduser().open("wb") as f:
        written += f.write(header.to_bytes())
        for layer in layout:
            for array, shape in layer.arrays():
                n = math.prod(shape)
                if layer.target is None:
                    values = fill_skipped(n) if fill_skipped is not None else np.zeros(n, dtype=_FLOAT)
                else:
                    values = tensors[layer.key(array)].detach().to("cpu", torch.float32).numpy()
                values = np.ascontiguousarray(values, dtype=_FLOAT).reshape(-1)
                if values.size != n:
                    raise ValueError(f"{layer.key(array)}: {values.size} values, the layout needs {n} ({shape})")
                written += f.write(values.tobytes())
    return written
