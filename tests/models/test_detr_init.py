"""The paper config initialised from a DETR checkpoint exactly as the reference does (backbone, input_proj, visual
encoder, fusion encoder: 411 tensors), the rest Xavier; the reference's optimiser groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from rsvg.config import load_config
from rsvg.engine.optim import build_optimizer
from rsvg.models.build import build_model
from rsvg.models.mgvlf import MGVLF

PAPER = "configs/mgvlf_dior.yaml"


def detr_r50_state_dict() -> dict[str, torch.Tensor]:
    """Every tensor of DETR-R50 (facebookresearch/detr, ``models.detr.build`` with the r50 defaults: hidden 256,
    8 heads, FFN 2048, 6 + 6 layers, 100 queries, 91 classes), named and shaped as its ``state_dict``, random values.

    - ``backbone.0.body``: torchvision's ResNet-50 without ``fc``, with FrozenBatchNorm2d (weight, bias,
      running_mean, running_var; no ``num_batches_tracked``): 265 tensors;
    - ``transformer.encoder.layers.{0..5}``: self_attn (in_proj, out_proj), linear1, linear2, norm1, norm2: 72;
    - ``transformer.decoder.layers.{0..5}``: self_attn, multihead_attn, linear1, linear2, norm1..3: 108, and the
      decoder's final ``norm``: 2;
    - ``input_proj`` (Conv2d 2048 → 256, 1x1): 2; ``query_embed`` (100 x 256): 1; ``class_embed`` (92): 2;
      ``bbox_embed.layers.{0,1,2}`` (MLP 256 → 256 → 256 → 4): 6.
    """
    g = torch.Generator().manual_seed(7)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    sd: dict[str, torch.Tensor] = {}
    body = torchvision.models.resnet50(weights=None).state_dict()
    for k, v in body.items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        sd[f"backbone.0.body.{k}"] = rand(*v.shape).abs() + 0.5 if k.endswith("running_var") else rand(*v.shape)
    d, ffn = 256, 2048
    attn = {"in_proj_weight": (3 * d, d), "in_proj_bias": (3 * d,), "out_proj.weight": (d, d), "out_proj.bias": (d,)}
    ffn_norm = {
        "linear1.weight": (ffn, d),
        "linear1.bias": (ffn,),
        "linear2.weight": (d, ffn),
        "linear2.bias": (d,),
        "norm1.weight": (d,),
        "norm1.bias": (d,),
        "norm2.weight": (d,),
        "norm2.bias": (d,),
    }
    for i in range(6):
        for k, shape in attn.items():
            sd[f"transformer.encoder.layers.{i}.self_attn.{k}"] = rand(*shape)
            sd[f"transformer.decoder.layers.{i}.self_attn.{k}"] = rand(*shape)
            sd[f"transformer.decoder.layers.{i}.multihead_attn.{k}"] = rand(*shape)
        for k, shape in ffn_norm.items():
            sd[f"transformer.encoder.layers.{i}.{k}"] = rand(*shape)
            sd[f"transformer.decoder.layers.{i}.{k}"] = rand(*shape)
        sd[f"transformer.decoder.layers.{i}.norm3.weight"] = rand(d)
        sd[f"transformer.decoder.layers.{i}.norm3.bias"] = rand(d)
    sd["transformer.decoder.norm.weight"], sd["transformer.decoder.norm.bias"] = rand(d), rand(d)
    sd["class_embed.weight"], sd["class_embed.bias"] = rand(92, d), rand(92)
    for i, (out, inp) in enumerate([(d, d), (d, d), (4, d)]):
        sd[f"bbox_embed.layers.{i}.weight"], sd[f"bbox_embed.layers.{i}.bias"] = rand(out, inp), rand(out)
    sd["query_embed.weight"] = rand(100, d)
    sd["input_proj.weight"], sd["input_proj.bias"] = rand(d, 2048, 1, 1), rand(d)
    return sd


@pytest.fixture(scope="module")
def detr_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    sd = detr_r50_state_dict()
    assert len(sd) == 458  # DETR-R50's state dict
    path = tmp_path_factory.mktemp("detr") / "detr-r50-e632da11.pth"
    torch.save({"model": sd}, path)
    return path, sd


def paper_model(weights: Path, *extra: str) -> MGVLF:
    cfg = load_config(PAPER, [f"model.backbone_weights={weights}", "model.text_encoder=bert-base-random", *extra])
    torch.manual_seed(0)
    return build_model(cfg.model)


def test_the_paper_config_initialises_what_the_reference_initialises(detr_file):
    path, detr = detr_file
    model = paper_model(path)
    report = model.detr_init
    assert report is not None
    assert report.groups == {
        "backbone": (265, 265),
        "input_proj": (2, 2),
        "visual encoder": (72, 72),
        "fusion encoder": (72, 72),
    }
    assert sum(n for n, _ in report.groups.values()) == 411 and not report.skipped
    assert "fusion encoder 72/72" in report.summary()
    own = model.state_dict()
    torch.testing.assert_close(own["input_proj.weight"], detr["input_proj.weight"], rtol=0, atol=0)
    torch.testing.assert_close(own["backbone.layer3.2.conv2.weight"], detr["backbone.0.body.layer3.2.conv2.weight"])
    for i in (0, 5):
        for part in ("self_attn.in_proj_weight", "linear2.bias", "norm2.weight"):
            source = detr[f"transformer.encoder.layers.{i}.{part}"]
            assert torch.equal(own[f"visual_encoder.layers.{i}.{part}"], source)
            assert torch.equal(own[f"fusion.layers.{i}.{part}"], source)
    # what DETR does not have stays at its Xavier initialisation
    detr_values = {tuple(v.flatten()[:8].tolist()) for v in detr.values() if v.numel() >= 8}
    for name in ("mlcm_decoder.0.cross_attn.in_proj_weight", "fusion_text_proj.weight", "head.fc1.weight"):
        assert tuple(own[name].flatten()[:8].tolist()) not in detr_values, name
    loaded = model.pretrained_parameter_names()
    assert {"input_proj.weight", "fusion.layers.0.linear1.weight", "visual_encoder.layers.5.norm1.bias"} <= loaded
    assert not any(n.startswith(("mlcm_decoder.", "head.", "fusion_text_proj.")) for n in loaded)


def test_fusion_initialisation_can_be_turned_off(detr_file):
    path, detr = detr_file
    model = paper_model(path, "model.detr_fusion=false")
    report = model.detr_init
    assert "fusion encoder" not in report.groups and "detr_fusion" in report.skipped["fusion encoder"]
    assert report.groups["visual encoder"] == (72, 72)
    own = model.state_dict()
    assert not torch.equal(own["fusion.layers.0.linear1.weight"], detr["transformer.encoder.layers.0.linear1.weight"])
    assert "fusion.layers.0.linear1.weight" not in model.pretrained_parameter_names()


def test_a_torchvision_resnet_initialises_only_the_backbone(tmp_path):
    sd = torchvision.models.resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(sd, path)
    model = paper_model(path)
    assert model.detr_init is None
    loaded = model.pretrained_parameter_names()
    assert loaded and all(n.startswith(("backbone.", "text.")) for n in loaded)


def test_reference_optimiser_groups(detr_file):
    path, _ = detr_file
    model = paper_model(path)
    cfg = load_config(PAPER, ["model.text_encoder=bert-base-random"]).train
    assert cfg.lr_groups == "reference"
    names = {id(p): n for n, p in model.named_parameters()}
    opt = build_optimizer(model, cfg, model.pretrained_parameter_names())
    groups = {g["name"]: (g["lr"], {names[id(p)] for p in g["params"]}) for g in opt.param_groups}
    assert list(groups) == ["rest", "visual", "text"]
    assert groups["rest"][0] == 1e-4 and groups["visual"][0] == 1e-5 and groups["text"][0] == 1e-5
    visual, text, rest = groups["visual"][1], groups["text"][1], groups["rest"][1]
    # the whole visual model, new parts included (extra levels, MLCM decoder, its text-memory projection)
    for prefix in ("backbone.", "input_proj.", "extra.", "memory_text_proj.", "mlcm_decoder.", "visual_encoder."):
        assert any(n.startswith(prefix) for n in visual), prefix
    assert all(n.startswith("text.") for n in text) and len(text) > 100
    assert {n.split(".")[0] for n in rest} == {
        "fusion",
        "fusion_visual_proj",
        "fusion_text_proj",
        "fusion_pos",
        "reg_token",
        "head",
    }
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert visual | text | rest == trainable and not (visual & rest)

    # the other grouping: by what was loaded
    loaded_cfg = load_config(PAPER, ["train.lr_groups=loaded"]).train
    opt = build_optimizer(model, loaded_cfg, model.pretrained_parameter_names())
    by_name = {g["name"]: {names[id(p)] for p in g["params"]} for g in opt.param_groups}
    assert "fusion.layers.0.linear1.weight" in by_name["pretrained"]
    assert "mlcm_decoder.0.cross_attn.in_proj_weight" in by_name["new"]
    with pytest.raises(ValueError, match=r"train\.lr_groups"):
        load_config(PAPER, ["train.lr_groups=mine"])


def test_transvg_takes_detr_into_its_visual_branch_alone(detr_file):
    # TransVG's --detr_model loads DETR into its visual model (backbone, input_proj, encoder); its
    # vision-language encoder keeps its own Xavier initialisation
    path, detr = detr_file
    cfg = load_config(
        "configs/transvg_r50.yaml", [f"model.backbone_weights={path}", "model.text_encoder=bert-base-random"]
    )
    torch.manual_seed(0)
    model = build_model(cfg.model)
    report = model.detr_init
    assert report.groups == {"backbone": (265, 265), "input_proj": (2, 2), "visual encoder": (72, 72)}
    assert not report.skipped and "fusion" not in report.summary()
    own = model.state_dict()
    source = detr["transformer.encoder.layers.3.linear1.weight"]
    assert torch.equal(own["visual_encoder.layers.3.linear1.weight"], source)
    assert not torch.equal(own["vl_transformer.layers.3.linear1.weight"], source)
    loaded = model.pretrained_parameter_names()
    assert {"input_proj.weight", "visual_encoder.layers.5.norm1.bias", "backbone.layer4.2.conv3.weight"} <= loaded
    assert not any(n.startswith(("vl_transformer.", "bbox_embed.", "vl_pos_embed.")) for n in loaded)
