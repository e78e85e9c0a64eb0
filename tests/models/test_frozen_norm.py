"""The frozen BatchNorm keeps its input's precision and is torchvision's arithmetic in fp32."""

from __future__ import annotations

import torch
from torchvision.ops import FrozenBatchNorm2d as TorchvisionFrozenBatchNorm2d

from rsvg.models.backbones.frozen_norm import FrozenBatchNorm2d
from rsvg.models.backbones.resnet import ResNet50Backbone


def _norms(channels: int = 8) -> tuple[FrozenBatchNorm2d, TorchvisionFrozenBatchNorm2d]:
    gen = torch.Generator().manual_seed(0)
    ours, theirs = FrozenBatchNorm2d(channels, eps=1e-3), TorchvisionFrozenBatchNorm2d(channels, eps=1e-3)
    state = {
        "weight": torch.randn(channels, generator=gen),
        "bias": torch.randn(channels, generator=gen),
        "running_mean": torch.randn(channels, generator=gen),
        "running_var": torch.rand(channels, generator=gen) + 0.1,
    }
    ours.load_state_dict(state)
    theirs.load_state_dict(state)
    return ours, theirs


def test_fp32_is_torchvisions_arithmetic_bit_for_bit() -> None:
    ours, theirs = _norms()
    x = torch.randn(2, 8, 5, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ours(x), theirs(x))
    assert ours.state_dict().keys() == theirs.state_dict().keys()


def test_bf16_input_stays_bf16_within_its_rounding() -> None:
    ours, theirs = _norms()
    x = torch.randn(2, 8, 5, 5, generator=torch.Generator().manual_seed(1)).bfloat16()
    assert theirs(x).dtype == torch.float32  # torchvision's: promoted by its fp32 scale
    out = ours(x)
    assert out.dtype == torch.bfloat16
    ref = theirs(x)
    assert torch.allclose(out.float(), ref, rtol=2e-2, atol=2e-2 * float(ref.abs().max()))


def test_resnet_under_bf16_autocast_gives_bf16_maps() -> None:
    torch.manual_seed(0)
    net = ResNet50Backbone(return_levels=(32,)).eval()
    assert all(type(m) is FrozenBatchNorm2d for m in net.modules() if isinstance(m, TorchvisionFrozenBatchNorm2d))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        maps = net(torch.randn(1, 3, 64, 64))
    assert maps[-1].dtype == torch.bfloat16
