"""DarkNet-53 + YOLOv3 neck (the FAOA/ReSC/LBYL-Net backbone) and the Darknet weights reader.

The weights tests write files in the real ``yolov3.weights`` layout: one full-size file (248 MB, about a second
to write and read) from a random model, with random values in the layers rsvg steps over; size errors use sparse
files of the right length, which cost nothing to create since the size is checked before anything is read.
Header versions and misalignment are checked on a small layout through the same reader.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from rsvg.models.backbones import available_backbones, build_backbone
from rsvg.models.backbones.darknet import (
    DARKNET53_PARAMETERS,
    DARKNET53_TRUNK_PARAMETERS,
    ConvBNLeaky,
    DarkNet53,
)
from rsvg.models.backbones.darknet_weights import (
    DarknetConv,
    DarknetHeader,
    darknet_file_bytes,
    read_darknet_header,
    read_darknet_weights,
    write_darknet_weights,
    yolov3_layout,
)
from rsvg.models.backbones.weights import WeightsFormatError, WeightsNotFoundError

ALL_LEVELS = (8, 16, 32)
CHANNELS = {8: 256, 16: 512, 32: 1024}
# Reference facts (the reference's own model built at random weights): the whole yolov3.cfg and its never-used part.
YOLOV3_PARAMETERS = 61_949_149
UNUSED_PARAMETERS = 6_687_485
YOLOV3_WEIGHTS_BYTES = 248_007_048  # 20-byte header + 62,001,757 float32


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise_norms(model: nn.Module, seed: int) -> None:
    """Give every BatchNorm non-trivial affine terms and statistics, so that loading them is visible."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | FrozenBatchNorm2d):
                c = m.running_mean.numel()
                m.weight.copy_(1 + 0.1 * torch.randn(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))


@pytest.fixture(scope="module")
def full_model() -> DarkNet53:
    """All three levels, trainable BatchNorm (the references' setting), random weights and statistics, eval mode."""
    torch.manual_seed(0)
    model = DarkNet53(frozen_bn=False, return_levels=ALL_LEVELS, frozen_stages=0)
    randomise_norms(model, seed=1)
    return model.eval()


@pytest.fixture(scope="module")
def weights_file(full_model: DarkNet53, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``full_model`` written as a full-size yolov3.weights; the 7 layers rsvg skips hold random values."""
    path = tmp_path_factory.mktemp("darknet") / "yolov3.weights"
    rng = np.random.default_rng(2)
    written = write_darknet_weights(
        path, full_model.state_dict(), fill_skipped=lambda n: rng.standard_normal(n, dtype=np.float32)
    )
    assert written == path.stat().st_size == YOLOV3_WEIGHTS_BYTES
    return path


def sparse_file(path: Path, size: int, header: DarknetHeader | None = None) -> Path:
    """A file of ``size`` bytes: a Darknet header, then zeros (sparse on disk)."""
    with path.open("wb") as f:
        f.write((header or DarknetHeader(0, 2, 0, 0)).to_bytes())
        f.truncate(size)
    return path


# -- the yolov3.cfg layout -------------------------------------------------------------------------


def test_layout_matches_yolov3_cfg() -> None:
    layout = yolov3_layout()
    assert len(layout) == 75  # yolov3.cfg's convolutional layers
    assert layout[-1].index == 105  # ... the last one is layer 105, before the final [yolo] (106)
    assert sum(layer.num_parameters for layer in layout) == YOLOV3_PARAMETERS
    skipped = [layer for layer in layout if layer.target is None]
    assert sum(layer.num_parameters for layer in skipped) == UNUSED_PARAMETERS
    # Per scale the head's 3x3 and detection convolutions; at stride 8 also the 1x1 before them.
    assert [(s.index, s.in_channels, s.out_channels, s.kernel, s.batch_norm) for s in skipped] == [
        (80, 512, 1024, 3, True),
        (81, 1024, 255, 1, False),
        (92, 256, 512, 3, True),
        (93, 512, 255, 1, False),
        (103, 256, 128, 1, True),
        (104, 128, 256, 3, True),
        (105, 256, 255, 1, False),
    ]
    trunk = [layer for layer in layout if layer.index < 75]
    assert len(trunk) == 52 and sum(layer.num_parameters for layer in trunk) == DARKNET53_TRUNK_PARAMETERS
    # The routes of yolov3.cfg concatenate the trunk's layers 61 and 36: the ends of stage4 and stage3.
    by_index = {layer.index: layer.target for layer in layout}
    assert by_index[59] == "stage4.blocks.7.conv1" and by_index[60] == "stage4.blocks.7.conv2"
    assert by_index[34] == "stage3.blocks.7.conv1" and by_index[35] == "stage3.blocks.7.conv2"
    assert {layer.in_channels for layer in layout if layer.target in ("neck16.conv1", "neck8.conv1")} == {768, 384}
    assert darknet_file_bytes(layout) == YOLOV3_WEIGHTS_BYTES
    assert darknet_file_bytes(trunk) == 162_482_580  # the size of Darknet's darknet53.conv.74
    # Another class count changes only the detection convolutions: 3 * (20 + 5) = 75 outputs.
    assert [layer.out_channels for layer in yolov3_layout(20) if not layer.batch_norm] == [75, 75, 75]


# -- the module ----------------------------------------------------------------------------------------


def test_parameter_counts(full_model: DarkNet53) -> None:
    assert n_params(full_model) == DARKNET53_PARAMETERS == YOLOV3_PARAMETERS - UNUSED_PARAMETERS
    assert sum(n_params(m) for m in full_model.trunk_modules()) == DARKNET53_TRUNK_PARAMETERS
    # Every module entry is one of the layout's arrays (what makes a strict load of yolov3.weights possible).
    layout_keys = {layer.key(a) for layer in yolov3_layout() if layer.target for a, _ in layer.arrays()}
    own = {k for k in full_model.state_dict() if not k.endswith("num_batches_tracked")}
    assert own == layout_keys
    assert sum(isinstance(m, ConvBNLeaky) for m in full_model.modules()) == 75 - 7
    # Frozen BatchNorm keeps its affine terms as buffers: the same numbers, fewer nn.Parameters.
    frozen = DarkNet53(return_levels=ALL_LEVELS)
    norms = [m for m in frozen.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(norms) == 68 and not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert n_params(frozen) + sum(m.weight.numel() + m.bias.numel() for m in norms) == DARKNET53_PARAMETERS


@pytest.mark.parametrize(("size", "batch"), [((256, 256), 1), ((64, 64), 2), ((70, 45), 1)])
def test_forward_shapes(full_model: DarkNet53, size: tuple[int, int], batch: int) -> None:
    assert full_model.out_channels == [256, 512, 1024] and full_model.strides == [8, 16, 32]
    h, w = size
    with torch.inference_mode():
        outputs = full_model(torch.randn(batch, 3, h, w))
    assert [tuple(o.shape) for o in outputs] == [
        (batch, CHANNELS[s], math.ceil(h / s), math.ceil(w / s)) for s in ALL_LEVELS
    ]
    assert all(torch.isfinite(o).all() for o in outputs)


def test_mean_std_and_channels_last(full_model: DarkNet53) -> None:
    assert full_model.mean == (0.485, 0.456, 0.406) and full_model.std == (0.229, 0.224, 0.225)
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        expected = full_model(images)
        model = full_model.to(memory_format=torch.channels_last)
        try:
            got = model(images.to(memory_format=torch.channels_last))
        finally:
            full_model.to(memory_format=torch.contiguous_format)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("levels", "built", "not_built"),
    [
        ((32,), ["neck32"], ["up32", "neck16", "up16", "neck8"]),
        ((16, 32), ["neck32", "up32", "neck16"], ["up16", "neck8"]),
        ((8,), ["neck32", "up32", "neck16", "up16", "neck8"], []),
    ],
)
def test_neck_is_built_down_to_the_finest_level(
    full_model: DarkNet53, levels: tuple[int, ...], built: list[str], not_built: list[str]
) -> None:
    model = DarkNet53(return_levels=levels, frozen_bn=False, frozen_stages=0)
    assert all(hasattr(model, name) for name in ["stem", "stage5", *built])
    assert not any(hasattr(model, name) for name in not_built)
    assert model.out_channels == [CHANNELS[s] for s in levels]
    expected_params = DARKNET53_TRUNK_PARAMETERS + sum(n_params(getattr(full_model, name)) for name in built)
    assert n_params(model) == expected_params
    # With the same weights, each map equals the full model's map of that level.
    model.load_state_dict({k: v for k, v in full_model.state_dict().items() if k in model.state_dict()})
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        full = dict(zip(ALL_LEVELS, full_model(images), strict=True))
        got = model.eval()(images)
    for level, out in zip(levels, got, strict=True):
        torch.testing.assert_close(out, full[level])
    if levels == (16, 32):  # up_to=16 keeps the stride-16 map only (the neck stops there)
        with torch.inference_mode():
            (only_16,) = model(images, up_to=16)
        torch.testing.assert_close(only_16, full[16])


def test_up_to_returns_the_finer_levels_and_stops(full_model: DarkNet53) -> None:
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        every = full_model(images)
        to_16 = full_model(images, up_to=16)
        assert len(full_model(images, up_to=32)) == 3
    assert len(to_16) == 2  # strides 8 and 16, as the zoom stage reads them
    for a, b in zip(to_16, every[:2], strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="up_to"):
        full_model(images, up_to=4)


# -- freezing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frozen_stages", "frozen"),
    [
        (0, []),
        (1, ["stem", "stage1", "stage2"]),
        (2, ["stem", "stage1", "stage2", "stage3"]),
        (4, ["stem", "stage1", "stage2", "stage3", "stage4", "stage5"]),
    ],
)
def test_frozen_stages(frozen_stages: int, frozen: list[str]) -> None:
    model = DarkNet53(return_levels=(32,), frozen_bn=False, frozen_stages=frozen_stages)
    for name, module in model.named_children():
        assert all(p.requires_grad != (name in frozen) for p in module.parameters()), name
    model.train()
    assert all(not getattr(model, name).training for name in frozen)
    assert model.neck32.training and model.stage5.training == ("stage5" not in frozen)
    before = model.stem.bn.running_mean.clone()
    (out,) = model(torch.randn(2, 3, 32, 32))
    # Frozen BatchNorm stays in eval mode: its statistics do not move in training mode.
    assert torch.equal(model.stem.bn.running_mean, before) == bool(frozen)
    if frozen_stages == 4:  # the whole trunk frozen: gradients reach the neck only
        out.mean().backward()
        assert all(p.grad is None for m in model.trunk_modules() for p in m.parameters())
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.neck32.parameters())
    with pytest.raises(ValueError, match="frozen_stages"):
        DarkNet53(frozen_stages=5)


# -- Darknet weights files -------------------------------------------------------------------------


def test_full_size_yolov3_weights_round_trip(full_model: DarkNet53, weights_file: Path) -> None:
    model = build_backbone("darknet53", weights=weights_file, return_levels=ALL_LEVELS, frozen_bn=False)
    report = model.load_report
    assert report.source.startswith(str(weights_file)) and "0.2.0" in report.source
    own = full_model.state_dict()
    assert sorted(report.loaded) == sorted(k for k in own if not k.endswith("num_batches_tracked"))
    assert not report.missing and not report.unexpected
    # The 7 skipped layers: 4 with BatchNorm (5 arrays each), 3 detection convolutions (bias and weight).
    assert len(report.ignored) == 4 * 5 + 3 * 2
    assert {k.split(".")[0] for k in report.ignored} == {f"layer{i}" for i in (80, 81, 92, 93, 103, 104, 105)}
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, own[key], rtol=0, atol=0, msg=key)
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        for a, b in zip(model.eval()(images), full_model(images), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    pretrained, new = model.pretrained_and_new_parameters()
    assert not new and {n for n, _ in pretrained} == {n for n, p in model.named_parameters() if p.requires_grad}


def test_partial_model_ignores_the_neck_it_did_not_build(weights_file: Path, full_model: DarkNet53) -> None:
    model = DarkNet53(weights_file, return_levels=(32,))  # frozen BatchNorm: statistics go to buffers
    report = model.load_report
    assert not report.missing
    assert any(k.startswith("neck8.") for k in report.ignored) and any(k.startswith("up16.") for k in report.ignored)
    torch.testing.assert_close(model.neck32.conv4.bn.running_var, full_model.neck32.conv4.bn.running_var)
    torch.testing.assert_close(model.stage5.blocks[3].conv2.conv.weight, full_model.stage5.blocks[3].conv2.conv.weight)


def test_fold_frozen_batchnorm_keeps_outputs(weights_file: Path) -> None:
    model = DarkNet53(weights_file, return_levels=ALL_LEVELS).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        before = model(images)
    assert model.fold_frozen_batchnorm() == 68
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    with torch.inference_mode():
        after = model(images)
    for a, b in zip(after, before, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    assert model.fold_frozen_batchnorm() == 0


def small_layout() -> list[DarknetConv]:
    """Three layers: BatchNorm conv, a skipped detection conv, another BatchNorm conv."""
    return [
        DarknetConv(0, 3, 4, 3, True, "a"),
        DarknetConv(1, 4, 6, 1, False, None),
        DarknetConv(3, 4, 2, 1, True, "b"),
    ]


def small_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in small_layout():
        if layer.target is not None:
            for array, shape in layer.arrays():
                tensors[layer.key(array)] = torch.rand(shape, generator=gen)
    return tensors


@pytest.mark.parametrize(
    ("header", "header_bytes"),
    [(DarknetHeader(0, 2, 0, 5_000_000_000), 20), (DarknetHeader(0, 1, 0, 123), 16), (DarknetHeader(1, 0, 3, 9), 20)],
)
def test_both_header_versions(tmp_path: Path, header: DarknetHeader, header_bytes: int) -> None:
    path = tmp_path / "small.weights"
    tensors = small_tensors()
    skipped = np.arange(6 * 4 + 6, dtype=np.float32) - 100  # negative: read as variances, they would be refused
    size = write_darknet_weights(path, tensors, small_layout(), header=header, fill_skipped=lambda n: skipped[:n])
    assert size == path.stat().st_size == darknet_file_bytes(small_layout(), header_bytes)
    assert read_darknet_header(path) == header
    result = read_darknet_weights(path, small_layout())
    assert result.header == header and result.header.num_bytes == header_bytes
    assert result.skipped == ["layer1.conv.bias", "layer1.conv.weight"]
    assert result.tensors.keys() == tensors.keys()
    for key, value in tensors.items():
        torch.testing.assert_close(result.tensors[key], value, rtol=0, atol=0)
    # The references read the header as five int32: for version >= 0.2 that is the same 20 bytes.
    if header_bytes == 20:
        words = struct.unpack("<5i", path.read_bytes()[:20])
        assert words[:3] == (header.major, header.minor, header.revision)
        assert words[3] + (words[4] << 32) == header.seen


def test_misaligned_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "shifted.weights"
    tensors = small_tensors()
    tensors["b.bn.running_var"] = -tensors["b.bn.running_var"]
    write_darknet_weights(path, tensors, small_layout())
    with pytest.raises(WeightsFormatError, match=r"shifted\.weights.*variances"):
        read_darknet_weights(path, small_layout())


@pytest.mark.parametrize(("delta", "word"), [(-4, "truncated"), (4, "too long"), (-YOLOV3_WEIGHTS_BYTES + 15, "")])
def test_wrong_size_names_file_and_byte_counts(tmp_path: Path, delta: int, word: str) -> None:
    path = sparse_file(tmp_path / "yolov3.weights", YOLOV3_WEIGHTS_BYTES + delta)
    with pytest.raises(WeightsFormatError, match=r"yolov3\.weights") as info:
        build_backbone("darknet53", weights=path, return_levels=(32,))
    message = str(info.value)
    if word:
        assert word in message and f"{YOLOV3_WEIGHTS_BYTES + delta:,} bytes" in message
        assert f"{YOLOV3_WEIGHTS_BYTES:,}" in message
    else:
        assert "too short for a Darknet weights header" in message


def test_size_errors_say_what_the_file_looks_like(tmp_path: Path) -> None:
    trunk_only = sparse_file(tmp_path / "darknet53.conv.74", 162_482_580)
    with pytest.raises(WeightsFormatError, match=r"darknet53\.conv\.74.*trunk without the YOLOv3 neck"):
        DarkNet53(trunk_only)
    dior = sparse_file(tmp_path / "yolov3_dior.weights", darknet_file_bytes(yolov3_layout(20)))
    with pytest.raises(WeightsFormatError, match="detection_classes=20"):
        DarkNet53(dior)
    model = DarkNet53(dior, detection_classes=20)  # a YOLOv3 trained on 20 classes reads with the right layout
    assert model.load_report.loaded and not model.load_report.missing
    assert not model.neck32.conv4.conv.weight.any()  # the sparse file's zeros


def test_missing_file_and_no_offline_weights(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "yolov3.weights"
    with pytest.raises(WeightsNotFoundError, match=r"nowhere.yolov3\.weights.*model\.backbone_weights"):
        build_backbone("darknet53", weights=missing)
    with pytest.raises(WeightsNotFoundError, match=r"yolov3\.weights.*pretrained=False"):
        build_backbone("darknet53")
    with pytest.raises(WeightsNotFoundError, match=r"nowhere"):
        read_darknet_weights(missing)
    assert "darknet53" in available_backbones()
    model = build_backbone("DarkNet-53", pretrained=False, return_levels=(32,))
    assert isinstance(model, DarkNet53) and model.load_report.source == "random init"
    assert not model.load_report.loaded and model.load_report.missing
