"""SSD's VGG16 trunk (ZSGNet's VGG16 row): its sizes, its maps, and its two weight formats (SSD's reduced-fc file and
torchvision's vgg16, whose fc6 and fc7 are decimated into conv6 and conv7)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rsvg.errors import WeightsFormatError, WeightsNotFoundError
from rsvg.models.backbones import available_backbones, build_backbone
from rsvg.models.backbones.vgg import Vgg16ReducedFC
from rsvg.models.zsgnet_config import ssd_map_sizes

# the convolutions' indices in SSD's numbering (and torchvision's vgg16.features up to conv5_3)
CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


@pytest.fixture(scope="module")
def trunk() -> Vgg16ReducedFC:
    torch.manual_seed(0)
    return Vgg16ReducedFC().eval()


def test_the_trunk_has_ssds_layers_and_sizes(trunk):
    # 20,483,904 in all: the measured count of the ZSGNet reference's `vgg` (TheShadow29/zsgnet-pytorch @ b9881d4372a6)
    assert sum(p.numel() for p in trunk.parameters()) == 20_483_904
    convs = {i: m for i, m in enumerate(trunk.layers) if isinstance(m, torch.nn.Conv2d)}
    assert sorted(convs) == [*CONVS, 31, 33]
    assert sum(p.numel() for i in CONVS for p in convs[i].parameters()) == 14_714_688
    assert (convs[31].dilation, convs[31].padding, convs[31].out_channels) == ((6, 6), (6, 6), 1024)
    assert convs[33].kernel_size == (1, 1) and trunk.out_channels == [512, 1024]
    assert "vgg16" in available_backbones()


@pytest.mark.parametrize("side", [268, 300, 301, 320])
def test_the_maps_are_the_sizes_the_config_checks(trunk, side):
    with torch.no_grad():
        conv4_3, conv7 = trunk(torch.rand(1, 3, side, side))
    c4, c7 = ssd_map_sizes(side)[:2]
    assert (conv4_3.shape[1:], conv7.shape[1:]) == ((512, c4, c4), (1024, c7, c7))
    assert conv4_3.min() >= 0 and conv7.min() >= 0  # both after their ReLUs


def test_only_conv4_3_builds_and_runs_less():
    short = Vgg16ReducedFC(return_levels=(8,))
    assert len(short.layers) == 23 and short.out_channels == [512]
    (conv4_3,) = short(torch.rand(1, 3, 64, 64))
    assert conv4_3.shape == (1, 512, 8, 8)
    with pytest.raises(ValueError, match="strides 8 and 16 only"):
        Vgg16ReducedFC(return_levels=(8, 32))


def test_frozen_stages_stop_the_early_convolutions():
    net = Vgg16ReducedFC(frozen_stages=1)
    trains = {i for i, m in enumerate(net.layers) if any(p.requires_grad for p in m.parameters())}
    assert trains == {17, 19, 21, 24, 26, 28, 31, 33}  # conv4_1 onwards
    net = Vgg16ReducedFC(frozen_stages=3)
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="frozen_stages"):
        Vgg16ReducedFC(frozen_stages=4)


def _ssd_file(trunk: Vgg16ReducedFC) -> dict[str, torch.Tensor]:
    """The trunk's tensors under SSD's names, with different values (as a real file would hold)."""
    return {k.removeprefix("layers."): torch.randn_like(v) for k, v in trunk.state_dict().items()}


def test_ssds_reduced_fc_file_loads_as_it_is(trunk, tmp_path: Path):
    sd = _ssd_file(trunk)
    path = tmp_path / "vgg16_reducedfc.pth"
    torch.save(sd, path)
    net = build_backbone("vgg16", weights=path, return_levels=(8, 16), frozen_stages=0)
    for key, value in sd.items():
        torch.testing.assert_close(net.state_dict()[f"layers.{key}"], value, rtol=0, atol=0)
    assert len(net.load_report.loaded) == 30 and not net.load_report.missing
    # every trunk tensor came from the file: they all train at the pretrained rate
    pretrained, new = net.pretrained_and_new_parameters()
    assert len(pretrained) == 30 and not new
    # a whole SSD300 state dict: the trunk under vgg., the rest ignored
    whole = {**{f"vgg.{k}": v for k, v in sd.items()}, "extras.0.weight": torch.zeros(1), "loc.0.bias": torch.zeros(1)}
    net = Vgg16ReducedFC(weights=whole, return_levels=(8,))  # conv5-7 not built: their tensors are ignored
    torch.testing.assert_close(net.layers[21].weight, sd["21.weight"], rtol=0, atol=0)
    assert "31.weight" in net.load_report.ignored


def test_torchvisions_vgg16_loads_with_fc6_and_fc7_decimated(trunk):
    torch.manual_seed(1)
    sd = {f"features.{k}": v for k, v in _ssd_file(trunk).items() if int(k.split(".")[0]) in CONVS}
    sd |= {"classifier.0.weight": torch.randn(4096, 25088), "classifier.0.bias": torch.randn(4096),
           "classifier.3.weight": torch.randn(4096, 4096), "classifier.3.bias": torch.randn(4096),
           "classifier.6.weight": torch.randn(1000, 4096), "classifier.6.bias": torch.randn(1000)}  # fmt: skip
    net = Vgg16ReducedFC(weights=sd)
    torch.testing.assert_close(net.layers[0].weight, sd["features.0.weight"], rtol=0, atol=0)
    fc6, conv6 = sd["classifier.0.weight"], net.layers[31].weight
    assert conv6.shape == (1024, 512, 3, 3)
    # output o, input channel i, tap (a, b) of conv6 is fc6's output 4o at input (i, 3a, 3b) of its 7x7 window
    for o, i, a, b in [(0, 0, 0, 0), (5, 7, 1, 2), (1023, 511, 2, 2), (300, 20, 2, 0)]:
        assert conv6[o, i, a, b] == fc6[4 * o, i * 49 + 3 * a * 7 + 3 * b]
    torch.testing.assert_close(net.layers[31].bias, sd["classifier.0.bias"][::4], rtol=0, atol=0)
    conv7, fc7 = net.layers[33].weight, sd["classifier.3.weight"]
    assert conv7.shape == (1024, 1024, 1, 1) and conv7[7, 9, 0, 0] == fc7[28, 36]
    assert net.load_report.ignored == ["classifier.6.weight", "classifier.6.bias"]


def test_missing_and_foreign_weights_are_named(tmp_path: Path):
    with pytest.raises(WeightsNotFoundError, match=r"vgg16_reducedfc\.pth.*vgg16-397923af\.pth"):
        build_backbone("vgg16", return_levels=(8, 16))
    with pytest.raises(WeightsNotFoundError, match="weights file not found"):
        build_backbone("vgg16", weights=tmp_path / "vgg16_reducedfc.pth", return_levels=(8, 16))
    foreign = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, foreign)
    with pytest.raises(WeightsFormatError, match=r"resnet50\.pth is neither SSD's.*conv1\.weight"):
        build_backbone("vgg16", weights=foreign, return_levels=(8, 16))
    bad_fc6 = {"features.0.weight": torch.zeros(64, 3, 3, 3), "classifier.0.weight": torch.zeros(10, 10),
               "classifier.0.bias": torch.zeros(10)}  # fmt: skip
    with pytest.raises(WeightsFormatError, match=r"fc6.*\(10, 10\)"):
        Vgg16ReducedFC(weights=bad_fc6)
