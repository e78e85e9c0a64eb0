"""ReSC-base (model.arch: resc): sizes as the reference builds them, shapes, the sub-query rounds, the word weights and
the diversity loss on hand-built cases, the loss, and the lite config memorising a few samples through rsvg train."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers.families import assert_memorised, memorise, submodule_counts
from helpers.models import inputs
from rsvg.config import load_config
from rsvg.models.build import build_model
from rsvg.models.loss import LossConfig
from rsvg.models.registry import model_config_from_dict
from rsvg.models.resc import anchor_set, diversity_loss, word_mask, word_weights
from rsvg.models.yolo import RESC_ANCHORS, build_targets, flatten_outputs, yolo_grounding_loss

#: BERT-base's pooler, which ReSC never reads (rsvg does not build it; the reference's count includes it)
BERT_POOLER = 590_592
#: the parameters the reference's DarkNet computes but never uses (its detection convolutions)
UNUSED_DARKNET = 6_687_485
#: a tiny ReSC on a random lite backbone: 64-px input (an 8x8 stride-8 grid), 12 tokens
TINY = {
    "arch": "resc",
    "backbone": "efficientnet_lite0",
    "pretrained_backbone": False,
    "image_size": 64,
    "max_tokens": 12,
    "emb_size": 16,
}



@pytest.fixture(scope="module")
def paper_model():
    cfg = load_config("configs/resc_bert.yaml", ["model.text_encoder=bert-base-random"]).model
    torch.manual_seed(0)
    return build_model(cfg, load_pretrained=False).eval()


def test_the_paper_config_has_the_references_parameter_counts(paper_model):
    # the reference's own model built at random weights, ReSC-base: visumodel 61,949,149 · textmodel 109,482,240 ·
    # mapping_visu 132,096 · mapping_lang 656,384 · film 7,491,587 · fcn_out 143,149
    assert submodule_counts(paper_model) == {
        "backbone": 61_949_149 - UNUSED_DARKNET,
        "text": 109_482_240 - BERT_POOLER,
        "mapping_visu": 132_096,
        "mapping_lang": 656_384,
        "film": 7_491_587,
        "fcn_out": 143_149,
    }
    # film0/1/2 923,649 each, conv1/conv2 2,360,320 each
    assert submodule_counts(paper_model.film, depth=2) == {
        "rounds.0": 923_649,
        "rounds.1": 923_649,
        "rounds.2": 923_649,
        "convs.0": 2_360_320,
        "convs.1": 2_360_320,
    }


def test_the_head_gives_nine_anchors_on_the_stride_8_grid_and_three_word_attentions(paper_model):
    image, pad, ids, mask = inputs(batch=2, size=256, nt=20)
    with torch.inference_mode():
        head, scores = paper_model.head_outputs(image, ids, mask)
        out = paper_model(image, pad, ids, mask, need_attention=True)
        features = paper_model.encode_image(image)
        stride8 = paper_model.backbone(image)[0]
    assert head.shape == (2, 45, 32, 32) and scores.shape == (2, 3, 20)
    conf, reg = flatten_outputs([head], paper_model.anchors)
    assert conf.shape == (2, 9216) and reg.shape == (2, 9216, 4)
    torch.testing.assert_close(out.cell_scores, conf)
    assert out.boxes.shape == (2, 4) and out.attention.shape == (2, 32, 32)
    torch.testing.assert_close(out.attention.sum((1, 2)), torch.ones(2))
    torch.testing.assert_close(out.extra["word_scores"], scores)
    # the cache holds the stride-8 map alone, 4x4 cells to a stride-32 cell
    assert stride8.shape == (2, 256, 32, 32) and features.shape == (2, 16 * 256, 8, 8)
    assert torch.equal(F.pixel_shuffle(features, 4), stride8)


def test_the_anchors_are_the_coco_set_on_one_grid_largest_first():
    anchors = anchor_set(model_config_from_dict({"arch": "resc"}))
    assert anchors == RESC_ANCHORS and anchors.num_cells(256) == 9216
    # measured at 416 px: on the 32x32 grid of a 256-px input, 373 px is 373 / (416 / 32) cells
    torch.testing.assert_close(anchors.in_cells(0, 256)[0, 0], torch.tensor(373 / 13, dtype=torch.float64))


def test_the_word_mask_leaves_out_cls_sep_and_padding():
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    assert word_mask(mask).long().tolist() == [[0, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]]


def test_word_weights_are_a_tempered_softmax_over_the_words_only():
    scores = torch.tensor([[0.3, 0.1, 0.2, -0.1, 0.25]])  # [CLS], two words, [SEP], padding
    words = word_mask(torch.tensor([[1, 1, 1, 1, 0]]))
    expected = torch.zeros(1, 5)
    expected[0, 1:3] = torch.softmax(torch.tensor([1.0, 2.0]), 0)  # 10 x the scores
    torch.testing.assert_close(word_weights(scores, words), expected)
    assert word_weights(scores, torch.zeros(1, 5, dtype=torch.bool)).sum() == 0  # a query without words


def test_the_diversity_loss_penalises_overlapping_rounds_and_uncovered_words():
    words = word_mask(torch.tensor([[1, 1, 1, 1, 0]]))  # two words, at positions 1 and 2
    word1, word2, even = [0.0, 9.0, 0.0, 0.0, 0.0], [0.0, 0.0, 9.0, 0.0, 0.0], [0.0] * 5

    def terms(*rounds):
        return tuple(float(t) for t in diversity_loss(torch.tensor([rounds]), words))

    # each round on its own word: no overlap, every word covered
    assert terms(word1, word2) == pytest.approx((0.0, 0.0), abs=1e-6)
    # both rounds on word 1: S·Sᵀ is all ones (two off-diagonal 1s), word 2 is left uncovered
    assert terms(word1, word1) == pytest.approx((2.0, 1.0), abs=1e-6)
    # both rounds spread evenly: off-diagonal (0.5·0.5 + 0.5·0.5)² twice, each word covered 0.5 + 0.5
    assert terms(even, even) == pytest.approx((0.5, 0.0), abs=1e-6)
    # one round spread evenly: nothing to overlap with, each word covered half
    assert terms(even) == pytest.approx((0.0, 1.0), abs=1e-6)
    # averaged over the batch
    batch = diversity_loss(torch.tensor([[word1, word1], [word1, word2]]), words.expand(2, -1))
    assert [float(t) for t in batch] == pytest.approx([1.0, 0.5], abs=1e-6)


def test_each_round_scores_the_words_the_earlier_rounds_left():
    torch.manual_seed(0)
    model = build_model(model_config_from_dict(TINY)).eval()
    contexts = []
    for block in model.film.rounds:
        block.register_forward_pre_hook(lambda _, args: contexts.append(args[2].clone()))
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        out = model(image, pad, ids, mask)
    words = word_mask(mask)
    weights = word_weights(out.extra["word_scores"], words[:, None])  # (B, 3, Nt)
    assert torch.equal(contexts[0], torch.ones_like(contexts[0]))
    torch.testing.assert_close(contexts[1], 1 - weights[:, 0])
    torch.testing.assert_close(contexts[2], 1 - weights[:, :2].amax(1))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))


def test_the_fusion_and_the_rounds_are_the_references_options():
    cat = build_model(model_config_from_dict({**TINY, "emb_size": 32, "fusion": "cat", "rounds": 2}))
    # cat: the attention map reads the image summary and the weighted words side by side (2 x 32 -> 16)
    assert cat.film.rounds[0].attn_map.weight.shape == (16, 64) and len(cat.film.convs) == 1
    one = build_model(model_config_from_dict({**TINY, "rounds": 1}))
    assert len(one.film.rounds) == 1 and len(one.film.convs) == 0
    image, pad, ids, mask = inputs()
    with torch.inference_mode():
        assert one(image, pad, ids, mask).extra["word_scores"].shape == (2, 1, 12)


def test_the_rounds_start_from_kaiming_uniform_weights_as_the_reference_inits_them():
    torch.manual_seed(0)
    model = build_model(model_config_from_dict({**TINY, "emb_size": 512, "max_tokens": 12}))
    film = model.film.rounds[0].film.weight  # (1024, 512): gain sqrt(2), bound sqrt(6 / 512)
    assert film.abs().max() <= math.sqrt(6 / 512)
    assert film.std().item() == pytest.approx(math.sqrt(2 / 512), rel=0.01)


def test_the_loss_is_the_yolo_loss_plus_the_weighted_diversity_terms():
    torch.manual_seed(0)
    model = build_model(model_config_from_dict({**TINY, "diversity_weight": 0.5})).train()
    image, pad, ids, mask = inputs()
    box = torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 64.0, 70.0]])  # the second reaches past the input
    out = model(image, pad, ids, mask)
    losses = model.loss(out, {"box": box}, LossConfig())
    # the reference's training loop clamps the box to [0, size - 1] before it builds the target
    targets = build_targets(box.clamp(0, 63), model.anchors, 64)
    yolo = yolo_grounding_loss(out.cell_scores, out.extra["regressions"], targets)
    diversity, coverage = diversity_loss(out.extra["word_scores"], word_mask(mask))
    torch.testing.assert_close(losses["loss"], yolo["loss"] + 0.5 * (diversity + coverage))
    torch.testing.assert_close(losses["diversity"], diversity)
    torch.testing.assert_close(losses["coverage"], coverage)
    assert set(losses) == set(model.loss_terms(LossConfig()))
    assert model_config_from_dict({"arch": "resc"}).diversity_weight == 0.125  # the reference's --w_div


@pytest.fixture(scope="module")
def memorised(tmp_path_factory) -> Path:
    """The lite config (frozen, cached encoders) at 64 px trained on four samples, validated on the same."""
    return memorise(
        tmp_path_factory,
        "configs/resc_lite.yaml",
        [
            "model.image_size=64",
            "model.emb_size=64",
            "train.epochs=60",
            "train.batch_size=4",
            "train.lr=3e-3",
            "train.schedule=constant",
            "train.eval_every=20",
        ],
    )


def test_the_lite_config_memorises_a_few_samples(memorised):
    assert_memorised(memorised)
