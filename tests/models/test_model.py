"""The grounding model: sizes, shapes, masks, gradients, variants, boxes valid by construction."""

import pytest
import torch
import torch.nn.functional as F

from helpers.models import TINY, inputs, model_config
from rsvg.config import load_config
from rsvg.models.build import build_model
from rsvg.models.heads import CellHead
from rsvg.models.loss import LossConfig
from rsvg.models.mgvlf import visual_padding_mask
from rsvg.models.mgvlf_config import MGVLFConfig as ModelConfig


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(ModelConfig(**TINY)).eval()


def test_paper_config_matches_the_reference_size():
    cfg = load_config("configs/mgvlf_dior.yaml").model
    cfg.text_encoder = "bert-base-random"
    model = build_model(cfg, load_pretrained=False)

    def count(*mods):
        return sum(p.numel() for m in mods if m is not None for p in m.parameters())

    mlcm = count(
        model.input_proj,
        model.extra,
        model.memory_text_proj,
        model.memory_text_pos,
        model.mlcm_decoder,
        model.visual_encoder,
    )
    fusion = count(model.fusion_visual_proj, model.fusion_text_proj, model.fusion_pos, model.fusion) + 256
    expected = {  # the reference implementation's sizes, millions of parameters
        "total": (count(model), 152.7),
        "resnet50": (count(model.backbone), 23.45),
        "bert": (count(model.text), 109.48),
        "mlcm": (mlcm, 11.42),
        "fusion": (fusion, 8.27),
        "head": (count(model.head), 0.07),
    }
    for name, (got, want) in expected.items():
        tol = 0.01 if name != "head" else 0.05  # the head's 0.07M is rounded to two decimals
        assert abs(got / 1e6 - want) / want < tol, f"{name}: {got / 1e6:.3f}M vs {want}M"


def test_shapes_and_valid_boxes(tiny_model):
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        out = tiny_model(image, pad, ids, mask, need_attention=True)
    assert out.boxes.shape == (2, 4)
    assert (out.boxes[:, 2] >= out.boxes[:, 0]).all() and (out.boxes[:, 3] >= out.boxes[:, 1]).all()
    assert out.attention.shape == (2, 2, 2)
    mass = out.attention.sum((1, 2))  # visual share of the [REG] token's attention (the rest goes to words)
    assert ((mass > 0) & (mass <= 1 + 1e-6)).all()
    assert (out.attention[0, 1, :] == 0).all()  # the padded bottom row gets no attention


# the lite config's options beyond the paper
LITE_OPTIONS = {
    "stride16_detail": True,
    "positions_in_tokens": True,
    "visual_norm": True,
    "text_norm": True,
    "head": "cells",
}


def test_mlcm_attention_map_is_a_distribution_over_unpadded_cells(tiny_model):
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        out = tiny_model(image, pad, ids, mask, need_attention=True)
        assert tiny_model(image, pad, ids, mask).mlcm_attention is None  # only on request
    m = out.mlcm_attention
    assert m.shape == (2, 2, 2)
    torch.testing.assert_close(m.sum((1, 2)), torch.ones(2))
    assert (m[0, 1] == 0).all() and (m >= 0).all()  # the padded row of the first image gets none
    for variant in ({"mlcm": False}, {"memory": ["words", "sentence"]}):  # no MLCM, or no visual memory
        other = build_model(ModelConfig(**{**TINY, **variant})).eval()
        with torch.inference_mode():
            assert other(image, pad, ids, mask, need_attention=True).mlcm_attention is None


@pytest.mark.parametrize("options", [{}, LITE_OPTIONS], ids=["paper", "lite-options"])
def test_padded_text_changes_nothing(options):
    torch.manual_seed(0)
    tiny_model = build_model(ModelConfig(**TINY, **options)).eval()
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        ref = tiny_model(image, pad, ids, mask).boxes
        ids2 = ids.clone()
        ids2[mask == 0] = 777  # garbage in padded positions
        other = tiny_model(image, pad, ids2, mask).boxes
        trimmed = tiny_model(image, pad, ids[:, :9], mask[:, :9]).boxes  # padding trimmed to the longest query
    torch.testing.assert_close(other, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trimmed, ref, rtol=1e-5, atol=1e-6)


def test_query_changes_the_box(tiny_model):
    image, pad, ids, mask = inputs()
    ids2 = ids.clone()
    ids2[:, 1:4] = torch.tensor([2000, 2001, 2002])
    with torch.inference_mode():
        assert not torch.allclose(tiny_model(image, pad, ids, mask).boxes, tiny_model(image, pad, ids2, mask).boxes)


def test_cells_head_picks_the_best_unpadded_cell_and_shows_its_scores():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, head="cells")).eval()
    assert isinstance(model.head, CellHead)
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        out = model(image, pad, ids, mask, need_attention=True)
    assert out.cell_scores.shape == (2, 4) and out.cell_boxes.shape == (2, 4, 4)
    best = out.cell_scores.argmax(1)
    torch.testing.assert_close(out.boxes, out.cell_boxes[torch.arange(2), best])
    assert (out.cell_scores[0, 2:] == float("-inf")).all() and best[0] < 2  # the padded row never wins
    torch.testing.assert_close(out.attention.sum((1, 2)), torch.ones(2))
    assert (out.attention[0, 1] == 0).all()
    assert (out.boxes[:, 2:] > out.boxes[:, :2]).all()


def test_cells_head_boxes_are_anchored_on_their_cells():
    head = CellHead(8, 5)
    torch.nn.init.zeros_(head.box[2].weight)
    torch.nn.init.zeros_(head.box[2].bias)
    scores, boxes = head(torch.randn(1, 6, 8), torch.zeros(1, 6, dtype=torch.bool), 2, 3, torch.randn(1, 5))
    # zero outputs: every cell predicts itself (centre at the cell's centre, one cell wide and high)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(boxes[0, i * 3 + j], torch.tensor([j / 3, i / 2, (j + 1) / 3, (i + 1) / 2]))
    assert scores.shape == (1, 6)


def test_stride16_detail_folds_the_finer_map_into_each_token():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, stride16_detail=True)).eval()
    c16, c32 = model.backbone.out_channels
    assert model.feature_channels == c32 + 4 * c16
    image = inputs()[0]
    with torch.inference_mode():
        s16, s32 = model.backbone(image)
        feats = model.encode_image(image)
    assert feats.shape == (2, c32 + 4 * c16, 2, 2)
    torch.testing.assert_close(feats[:, :c32], s32)
    # channel c32 + 4c + 2dy + dx of token (i, j) is the stride-16 cell (2i + dy, 2j + dx) of channel c
    for c, dy, dx, i, j in [(0, 0, 0, 0, 0), (5, 1, 0, 1, 1), (c16 - 1, 1, 1, 0, 1)]:
        torch.testing.assert_close(feats[:, c32 + 4 * c + 2 * dy + dx, i, j], s16[:, c, 2 * i + dy, 2 * j + dx])


def test_visual_padding_mask_marks_only_fully_padded_cells():
    pad = torch.zeros(1, 64, 64, dtype=torch.bool)
    pad[0, 40:, :] = True  # rows 40..63: cell row 1 (32..63) is partly image -> valid
    assert not visual_padding_mask(pad, 2, 2).any()
    pad[0, 32:, :] = True
    assert visual_padding_mask(pad, 2, 2).tolist() == [[False, False, True, True]]


@pytest.mark.parametrize("options", [{}, LITE_OPTIONS], ids=["paper", "lite-options"])
def test_gradients_reach_every_trainable_part(options):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, **options)).train()
    image, pad, ids, mask = inputs()
    out = model(image, pad, ids, mask)
    box = torch.tensor([[0.1, 0.1, 0.4, 0.3], [0.5, 0.5, 0.9, 0.8]]) * 64  # network pixels
    model.loss(out, {"box": box}, LossConfig())["loss"].backward()
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
    ]
    assert missing == [], missing
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any(n.startswith("backbone.") for n in frozen)  # the stem stays frozen, as in the paper


@pytest.mark.parametrize(
    ("variant", "decoder", "extra"),
    [
        ({"mlcm": False}, 0, False),  # (a) baseline
        ({"memory": ["visual"]}, 1, True),  # (b)
        ({"memory": ["visual", "sentence"]}, 1, True),  # (c)
        ({"memory": ["visual", "words"]}, 1, True),  # (d)
        ({"memory": ["words", "sentence"]}, 1, False),  # (e)
    ],
)
def test_ablation_variants_build_and_run(variant, decoder, extra):
    model = build_model(ModelConfig(**{**TINY, **variant})).eval()
    assert len(model.mlcm_decoder) == decoder
    assert (model.extra is not None) == extra
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        assert model(image, pad, ids, mask).boxes.shape == (2, 4)


def test_variant_configs_load():
    for name, mlcm, memory in [
        ("ablation_a_transvg", False, ["visual", "words", "sentence"]),
        ("ablation_b_visual", True, ["visual"]),
        ("ablation_c_visual_sentence", True, ["visual", "sentence"]),
        ("ablation_d_visual_words", True, ["visual", "words"]),
        ("ablation_e_text", True, ["words", "sentence"]),
    ]:
        cfg = load_config(f"configs/{name}.yaml")
        assert (cfg.model.mlcm, cfg.model.memory) == (mlcm, memory)
        assert cfg.model.image_size == 640 and cfg.train.batch_size == 8 and cfg.train.epochs == 150


def test_bad_model_options_are_named():
    with pytest.raises(ValueError, match="memory"):
        ModelConfig(memory=["pixels"])
    with pytest.raises(ValueError, match="multiple of 32"):
        ModelConfig(image_size=100)
    with pytest.raises(ValueError, match="unknown model options"):
        ModelConfig.from_dict({"hidden": 3})
    with pytest.raises(ValueError, match=r"model\.head must be reg or cells"):
        ModelConfig(head="dense")


def test_object_head_adds_the_category_agreement_to_the_cell_scores():
    torch.manual_seed(0)
    model = build_model(model_config(**TINY, **LITE_OPTIONS, stages={"object_head": {}})).eval()
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        out = model(image, pad, ids, mask)
        model.stages["object_head"].prior_scale.fill_(0.0)
        without = model(image, pad, ids, mask)
        model.stages["object_head"].prior_scale.fill_(1.0)
    record = out.stages["object_head"]
    assert record.object_logits.shape == (2, 4, 20) and record.query_category_logits.shape == (2, 20)
    # log sum_c P(c | query) * P(cell holds a c)
    agreement = (record.query_category_logits.log_softmax(-1)[:, None] + F.logsigmoid(record.object_logits)).logsumexp(
        -1
    )
    valid = out.cell_scores > float("-inf")
    torch.testing.assert_close((out.cell_scores - without.cell_scores)[valid], agreement[valid])
    assert (agreement <= 0).all()


def test_object_head_trains_every_part_with_its_loss():
    torch.manual_seed(0)
    model = build_model(model_config(**TINY, **LITE_OPTIONS, stages={"object_head": {}})).train()
    image, pad, ids, mask = inputs()
    target = torch.tensor([[0.1, 0.1, 0.4, 0.3], [0.5, 0.5, 0.9, 0.8]])
    box = target * 64  # the batch's boxes and objects are in network pixels
    objects = [torch.cat([torch.tensor([[18.0]]), box[:1]], 1), torch.cat([torch.tensor([[13.0]]), box[1:]], 1)]
    out = model(image, pad, ids, mask)
    batch = {"box": box, "objects": objects, "category_index": torch.tensor([18, 13])}
    losses = model.loss(out, batch, LossConfig())
    losses["loss"].backward()
    assert {"object", "category"} <= set(losses)
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
    ]
    assert missing == [], missing


REG_FIXES = {"reg_from_query": True, "reg_centre_from_attention": True}


def test_the_reg_centre_is_where_the_reg_token_looks():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, **REG_FIXES)).eval()
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        out = model(image, pad, ids, mask, need_attention=True)
    attention = out.attention.flatten(1)
    attention = attention / attention.sum(1, keepdim=True)
    centres = torch.tensor([0.25, 0.75])  # the 2x2 grid's cell centres
    cx = (attention.reshape(-1, 2, 2) * centres[None, None, :]).sum((1, 2))
    cy = (attention.reshape(-1, 2, 2) * centres[None, :, None]).sum((1, 2))
    box_cx, box_cy = (out.boxes[:, 0] + out.boxes[:, 2]) / 2, (out.boxes[:, 1] + out.boxes[:, 3]) / 2
    assert ((box_cx - cx).abs() <= 0.5 + 1e-6).all() and ((box_cy - cy).abs() <= 0.5 + 1e-6).all()  # <= one cell
    assert (out.boxes[:, 2:] > out.boxes[:, :2]).all()
    # padding cells get no attention: sample 0's bottom row is padding
    assert out.attention[0, 1].sum() == 0


def test_the_reg_token_starts_from_the_query_only_with_the_option():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, reg_from_query=True)).eval()
    assert model.reg_query_proj is not None
    assert build_model(ModelConfig(**TINY)).reg_query_proj is None  # the paper: one learned token for every query
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        before = model(image, pad, ids, mask).boxes
        model.reg_query_proj.weight.zero_()
        model.reg_query_proj.bias.zero_()
        after = model(image, pad, ids, mask).boxes
    assert not torch.allclose(before, after)


def test_reg_attention_loss_trains_the_reg_fixes_end_to_end():
    from rsvg.models.loss import LossConfig, attention_loss

    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY, **REG_FIXES)).train()
    image, pad, ids, mask = inputs()
    box = torch.tensor([[0.1, 0.1, 0.4, 0.3], [0.5, 0.5, 0.9, 0.8]]) * 64
    cfg = LossConfig(reg_attention_weight=0.5)
    with pytest.raises(ValueError, match="need_attention"):
        model.loss(model(image, pad, ids, mask), {"box": box}, cfg)
    out = model(image, pad, ids, mask, need_attention=True)
    losses = model.loss(out, {"box": box}, cfg)
    assert set(losses) == set(model.loss_terms(cfg)) == {"loss", "l1", "giou", "attention"}
    torch.testing.assert_close(losses["attention"], attention_loss(out.attention, box / 64))
    losses["loss"].backward()
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)
    ]
    assert missing == [], missing


def test_the_lite_reg_configs_are_the_papers_model_with_the_reg_fixes():
    paper = load_config("configs/mgvlf_lite_reg.yaml")
    baseline = load_config("configs/mgvlf_lite_reg_baseline.yaml")
    m = paper.model
    assert m.head == "reg" and m.mlcm and m.stages == {}
    assert m.reg_from_query and m.reg_centre_from_attention and paper.loss.reg_attention_weight > 0
    assert not baseline.model.mlcm
    assert baseline.model.to_dict() | {"mlcm": True} == m.to_dict() and baseline.loss == paper.loss
    assert baseline.train == paper.train and (paper.train.epochs, paper.train.lr) == (20, 5e-4)  # same budget
    model = build_model(m, load_pretrained=False)
    channels = model.level_channels
    assert model.stage_list() == [] and model.feature_channels == channels[32] + 4 * channels[16]  # no stage maps
    # the paper configs keep the paper's [REG] token
    dior = load_config("configs/mgvlf_dior.yaml")
    assert not (dior.model.reg_from_query or dior.model.reg_centre_from_attention or dior.loss.reg_attention_weight)


def test_extra_levels_over_a_point_read_the_centre_tap_alone():
    # a 3x3 padded convolution over a 1x1 map is its centre tap: the same output and gradients as the full conv
    from rsvg.models.mgvlf_layers import ExtraLevels

    torch.manual_seed(0)
    levels = ExtraLevels(8, 4, 6, levels=3, padding=1)
    x = torch.randn(2, 8, 2, 2)
    outs = levels(x)
    assert [tuple(o.shape[-2:]) for o in outs] == [(1, 1), (1, 1), (1, 1)]
    expected, y = [], x
    for block in levels.blocks:
        y = block(y)
        expected.append(y)
    for got, want in zip(outs, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    grads = torch.autograd.grad(sum(o.sum() for o in outs), list(levels.parameters()))
    want_grads = torch.autograd.grad(sum(o.sum() for o in expected), list(levels.parameters()))
    for g, w in zip(grads, want_grads, strict=True):
        assert torch.allclose(g, w, atol=1e-6)
