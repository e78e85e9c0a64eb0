"""TransVG (model.arch: transvg): sizes as the reference builds them, the token order and positions, text trimming,
the loss on a hand-built case, the reference's optimiser groups, and the lite config memorising a few samples
through rsvg train."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou

from helpers.families import assert_memorised, memorise, submodule_counts
from helpers.models import inputs
from rsvg.config import load_config
from rsvg.engine.optim import build_optimizer
from rsvg.models.build import build_model
from rsvg.models.loss import LossConfig, attention_loss, to_centre_size
from rsvg.models.outputs import GroundingOutput
from rsvg.models.registry import model_config_from_dict

#: BERT-base's pooler, which TransVG builds and never reads (rsvg does not build it)
BERT_POOLER = 590_592
#: a tiny TransVG on a random lite backbone: 64-px input (2x2 tokens), 12 tokens
TINY = {
    "arch": "transvg",
    "backbone": "efficientnet_lite0",
    "pretrained_backbone": False,
    "image_size": 64,
    "max_tokens": 12,
    "hidden_dim": 32,
    "heads": 4,
    "ffn_dim": 64,
    "visual_encoder_layers": 1,
    "vl_layers": 2,
    "dropout": 0.0,
}


@pytest.fixture(scope="module")
def paper_model():
    cfg = load_config("configs/transvg_r50.yaml", ["model.text_encoder=bert-base-random"]).model
    torch.manual_seed(0)
    return build_model(cfg, load_pretrained=False).eval()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(model_config_from_dict(TINY)).eval()


def test_the_paper_config_has_the_references_parameter_counts(paper_model):
    # TransVG R50 as its reference builds it (djiajunustc/TransVG @ c8624277018f, train.sh's arguments, counted
    # at random weights): visumodel 31,869,888 (CNN 23,454,912, DETR encoder 7,890,432, input_proj 524,544),
    # textmodel 109,482,240, vl_pos_embed 107,776, reg_token 256, visu_proj 65,792, text_proj 196,864,
    # vl_transformer 7,890,432, bbox_embed 132,612: 149,745,860 in all
    counts = submodule_counts(paper_model)
    assert counts == {
        "backbone": 23_454_912,
        "input_proj": 524_544,
        "visual_encoder": 7_890_432,
        "text": 109_482_240 - BERT_POOLER,
        "visu_proj": 65_792,
        "text_proj": 196_864,
        "reg_token": 256,
        "vl_pos_embed": 107_776,
        "vl_transformer": 7_890_432,
        "bbox_embed": 132_612,
    }
    assert sum(counts.values()) == 149_745_860 - BERT_POOLER
    # conv1 and layer1 do not train, as in DETR's backbone (its batch norms are frozen buffers)
    assert sum(p.numel() for p in paper_model.parameters() if not p.requires_grad) == 222_400
    assert paper_model.vl_pos_embed.num_embeddings == 1 + 20 + 400  # [REG], 20 words, 20x20 cells
    assert paper_model.text.word_layers == 1  # BERT's last layer


def test_the_r101_variant_has_the_references_count():
    # TransVG R101 (its reference's count): 168,685,764, of which the CNN 42,394,816
    cfg = load_config(
        "configs/transvg_r50.yaml", ["model.text_encoder=bert-base-random", "model.backbone=resnet101"]
    ).model
    counts = submodule_counts(build_model(cfg, load_pretrained=False))
    assert counts["backbone"] == 42_394_816 and sum(counts.values()) == 168_685_764 - BERT_POOLER


def test_forward_shapes_and_the_reg_tokens_attention(tiny):
    image, pad, ids, mask = inputs()
    out = tiny(image, pad, ids, mask, need_attention=True)
    assert out.boxes.shape == (2, 4) and out.attention.shape == (2, 2, 2)
    assert (out.boxes[:, 2:] >= out.boxes[:, :2]).all()
    # the [REG] token's attention over the visual cells: none on the first image's padded bottom row
    assert out.attention[0, 1].abs().max() == 0 and out.attention[0, 0].sum() > 0
    assert out.score() is not None and out.score().shape == (2,)


def test_text_trimmed_to_the_longest_query_gives_the_same_boxes(tiny):
    # the collate trims the batch's text to its longest query: each word keeps its own learned position and the
    # visual tokens keep theirs, so the answer does not depend on how much padding the batch carries
    image, pad, ids, mask = inputs()
    full = tiny(image, pad, ids, mask).boxes
    longest = int(mask.sum(1).max())
    trimmed = tiny(image, pad, ids[:, :longest], mask[:, :longest]).boxes
    torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-6)


def test_the_loss_is_l1_on_centre_and_size_plus_giou(tiny):
    pred = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.9, 0.7]])
    target_px = torch.tensor([[0.2, 0.1, 0.6, 0.5], [0.25, 0.35, 0.85, 0.95]]) * tiny.image_size
    cfg = LossConfig(l1_weight=1.0, giou_weight=1.0, smooth_l1_beta=0.0)
    losses = tiny.loss(GroundingOutput(pred), {"box": target_px}, cfg)
    target = target_px / tiny.image_size
    l1 = (to_centre_size(pred) - to_centre_size(target)).abs().sum(1).mean()
    giou = (1 - torch.diag(generalized_box_iou(pred, target))).mean()
    torch.testing.assert_close(losses["l1"], l1)
    torch.testing.assert_close(losses["giou"], giou)
    torch.testing.assert_close(losses["loss"], l1 + giou)
    # L1 on centre and size is not L1 on the corners: the first box differs in centre only
    assert not torch.isclose(l1, F.l1_loss(pred, target, reduction="none").sum(1).mean())
    assert tiny.loss_terms(cfg) == ("loss", "l1", "giou")


def test_the_references_optimiser_groups(paper_model):
    cfg = load_config("configs/transvg_r50.yaml", ["model.text_encoder=bert-base-random"]).train
    names = {id(p): n for n, p in paper_model.named_parameters()}
    opt = build_optimizer(paper_model, cfg, paper_model.pretrained_parameter_names())
    groups = {g["name"]: (g["lr"], {names[id(p)].split(".")[0] for p in g["params"]}) for g in opt.param_groups}
    assert groups == {
        "rest": (1e-4, {"visu_proj", "text_proj", "reg_token", "vl_pos_embed", "vl_transformer", "bbox_embed"}),
        "visual": (1e-5, {"backbone", "input_proj", "visual_encoder"}),
        "text": (1e-5, {"text"}),
    }


def test_word_features_are_the_last_layer(tiny):
    _, _, ids, mask = inputs()
    words, _ = tiny.text(ids, mask)
    out = tiny.text.model(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(words, out.last_hidden_state)


def test_bad_options_are_named():
    cases = (({"vl_layers": 0}, "vl_layers"), ({"hidden_dim": 30}, "hidden_dim"), ({"dropout": 1.0}, "dropout"))
    for bad, name in cases:
        with pytest.raises(Exception, match=f"model.{name}"):
            model_config_from_dict({**TINY, **bad})


def test_the_lite_options_read_the_centre_from_where_reg_looks():
    # positions_in_tokens, reg_from_query and reg_centre_from_attention (not TransVG's; the lite config's)
    torch.manual_seed(0)
    options = {"positions_in_tokens": True, "reg_from_query": True, "reg_centre_from_attention": True}
    model = build_model(model_config_from_dict({**TINY, "image_size": 96, **options})).eval()
    assert model.reg_query_proj is not None
    image, pad, ids, mask = inputs(size=96)
    out = model(image, pad, ids, mask, need_attention=True)
    # the centre is [REG]'s attention-weighted mean of the 3x3 cells' centres, moved by less than one cell
    a = out.attention.flatten(1)
    a = a / a.sum(-1, keepdim=True)
    centres = (torch.arange(3) + 0.5) / 3
    expected_x = (a.reshape(-1, 3, 3) * centres).sum((1, 2))
    expected_y = (a.reshape(-1, 3, 3) * centres[:, None]).sum((1, 2))
    cx, cy = (out.boxes[:, 0] + out.boxes[:, 2]) / 2, (out.boxes[:, 1] + out.boxes[:, 3]) / 2
    assert ((cx - expected_x).abs() < 1 / 3).all() and ((cy - expected_y).abs() < 1 / 3).all()
    # the same boxes without asking for the attention (the model asks for it itself)
    torch.testing.assert_close(model(image, pad, ids, mask).boxes, out.boxes)
    # the [REG] token starts from the query: another sentence feature, another answer
    words, sentence = model.text(ids, mask)
    other = model(image, pad, ids, mask, text_features=(words, sentence + 1.0)).boxes
    assert not torch.allclose(other, out.boxes)
    # loss.reg_attention_weight adds the cross-entropy of [REG]'s attention against the target's cells
    target_px = torch.tensor([[10.0, 5.0, 40.0, 30.0], [50.0, 60.0, 90.0, 95.0]])
    cfg = LossConfig(reg_attention_weight=0.5)
    assert model.needs_attention(cfg) and not model.needs_attention(LossConfig())
    losses = model.loss(out, {"box": target_px}, cfg)
    torch.testing.assert_close(losses["attention"], attention_loss(out.attention, target_px / 96))
    plain = model.loss(out, {"box": target_px}, LossConfig())
    torch.testing.assert_close(losses["loss"], plain["loss"] + 0.5 * losses["attention"])
    assert model.loss_terms(cfg) == ("loss", "l1", "giou", "attention")


@pytest.fixture(scope="module")
def lite_run(tmp_path_factory):
    overrides = ["model.image_size=128", "train.epochs=60", "train.batch_size=4", "train.eval_every=20"]
    overrides += ["train.lr=2e-3", "train.warmup_steps=5"]
    return memorise(tmp_path_factory, "configs/transvg_lite.yaml", overrides)


def test_the_lite_config_memorises_a_few_samples(lite_run):
    assert_memorised(lite_run)
