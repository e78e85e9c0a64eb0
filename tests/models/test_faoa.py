"""FAOA (model.arch: faoa): sizes as the reference builds them, shapes, the coordinate channels, the loss on the
head's output, and the lite config memorising a few samples through rsvg train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.families import assert_memorised, memorise, submodule_counts
from helpers.models import inputs
from rsvg.config import load_config
from rsvg.models.build import build_model
from rsvg.models.faoa import anchor_set, answer_map
from rsvg.models.loss import LossConfig
from rsvg.models.onestage_layers import coord_map
from rsvg.models.registry import model_config_from_dict
from rsvg.models.yolo import build_targets, flatten_outputs, yolo_grounding_loss

#: BERT-base's pooler, which FAOA never reads (rsvg does not build it; the reference's count includes it)
BERT_POOLER = 590_592
#: the parameters the reference's DarkNet computes but never uses (its detection convolutions)
UNUSED_DARKNET = 6_687_485



@pytest.fixture(scope="module")
def paper_model():
    cfg = load_config("configs/faoa_bert.yaml", ["model.text_encoder=bert-base-random"]).model
    torch.manual_seed(0)
    return build_model(cfg, load_pretrained=False).eval()


def test_the_paper_config_has_the_references_parameter_counts(paper_model):
    # the reference's own model built at random weights, FAOA-BERT: visumodel 61,949,149 · textmodel 109,482,240 ·
    # mapping_visu 920,576 · mapping_lang 658,432 · fcn_emb 9,458,688 · fcn_out 406,317
    assert submodule_counts(paper_model) == {
        "backbone": 61_949_149 - UNUSED_DARKNET,
        "text": 109_482_240 - BERT_POOLER,
        "mapping_visu": 920_576,
        "mapping_lang": 658_432,
        "fcn_emb": 9_458_688,
        "fcn_out": 406_317,
    }
    no_coord = build_model(
        load_config("configs/faoa_bert_nocoord.yaml", ["model.text_encoder=minilm"]).model, load_pretrained=False
    )
    assert submodule_counts(no_coord)["fcn_emb"] == 9_446_400  # 3 grids x 8 coordinate channels x 512 fewer


def test_the_lstm_variant_has_the_references_counts_and_learns_its_vocabulary():
    from rsvg.data.records import GroundingSample
    from rsvg.models.anchor_fit import fit_one_stage

    cfg = load_config("configs/faoa_lstm.yaml", ["model.backbone=efficientnet_lite0"]).model
    queries = ["the red car on the left", "The ship, left of the red car", "a car"]
    samples = [
        GroundingSample(i, str(i), Path(f"{i}.jpg"), Path("a.xml"), 0, 800, 800, "ship", (0, 0, 40 + i, 50), q)
        for i, q in enumerate(queries * 3)
    ]
    fitted, said = fit_one_stage(cfg, samples)
    # most frequent first, ties alphabetical (the 4 times over the three queries, car 3, left and red 2, ...)
    assert fitted.vocabulary == ["the", "car", "left", "red", "a", "of", "on", "ship"] and "8 words" in said
    model = build_model(fitted, load_pretrained=False)
    counts = submodule_counts(model)
    # the reference's own model built at random weights, FAOA-LSTM: text 4,465,152 + 512·V (V words, here + pad
    # and unknown); mapping_lang 789,504 (from the BiLSTM's 1024)
    assert counts["text"] == 4_465_152 + 512 * (8 + 2) and counts["mapping_lang"] == 789_504
    ids, mask = model.tokenizer().encode("The RED boat", 5)
    assert ids == [2, 5, 1, 0, 0] and mask == [1, 1, 1, 0, 0]  # the, red, unknown, padding
    with pytest.raises(ValueError, match=r"model\.freeze_text_encoder: false"):
        load_config("configs/faoa_lstm.yaml", ["model.freeze_text_encoder=true"])


def test_the_head_gives_three_grids_of_three_anchors(paper_model):
    image, pad, ids, mask = inputs(batch=2, size=256, nt=20)
    with torch.inference_mode():
        outputs = paper_model.head_outputs(image, ids, mask)
        out = paper_model(image, pad, ids, mask, need_attention=True)
    assert [tuple(o.shape) for o in outputs] == [(2, 15, 8, 8), (2, 15, 16, 16), (2, 15, 32, 32)]
    conf, reg = flatten_outputs(outputs, paper_model.anchors)
    assert conf.shape == (2, 4032) and reg.shape == (2, 4032, 4)
    torch.testing.assert_close(out.cell_scores, conf)
    assert out.boxes.shape == (2, 4) and out.attention.shape == (2, 32, 32)
    torch.testing.assert_close(out.attention.sum((1, 2)), torch.ones(2))


def test_the_coordinate_channels_are_the_references():
    c = coord_map(1, 2, 2)[0]
    # cell (row 0, column 1) of a 2x2 map: rows [-1, 0], columns [0, 1]
    assert c[:, 0, 1].tolist() == [-1.0, 0.0, 0.0, 1.0, -0.5, 0.5, 0.5, 0.5]
    assert coord_map(3, 4, 4).shape == (3, 8, 4, 4)


def test_the_anchors_are_the_coco_set_on_the_grids_largest_first():
    cfg = model_config_from_dict({"arch": "faoa"})
    anchors = anchor_set(cfg)
    assert anchors.anchors[0] == (373.0, 326.0) and anchors.strides == (32, 16, 8)
    # measured at 416 px: on the 8x8 grid of a 256-px input, 373 px is 373 / (416 / 8) cells
    torch.testing.assert_close(anchors.in_cells(0, 256)[0, 0], torch.tensor(373 / 52, dtype=torch.float64))


def test_the_loss_is_the_yolo_loss_at_the_target_anchor_cell():
    cfg = model_config_from_dict(
        {
            "arch": "faoa",
            "backbone": "efficientnet_lite0",
            "pretrained_backbone": False,
            "image_size": 64,
            "max_tokens": 12,
            "emb_size": 16,
        }
    )
    torch.manual_seed(0)
    model = build_model(cfg).train()
    image, pad, ids, mask = inputs()
    box = torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 30.0]])
    out = model(image, pad, ids, mask)
    losses = model.loss(out, {"box": box}, LossConfig())
    expected = yolo_grounding_loss(out.cell_scores, out.extra["regressions"], build_targets(box, model.anchors, 64))
    torch.testing.assert_close(losses["loss"], expected["loss"])
    assert set(losses) == set(model.loss_terms(LossConfig()))


def test_answer_map_spreads_each_grids_share_over_the_finest_cells():
    cfg = model_config_from_dict({"arch": "faoa"})
    anchors = anchor_set(cfg)
    conf = torch.full((1, anchors.num_cells(64)), -1e4)
    conf[0, 0] = 0.0  # anchor 0 of the coarsest grid's cell (0, 0): one cell of a 2x2 grid
    att = answer_map(conf, anchors, 64)
    assert att.shape == (1, 8, 8) and torch.allclose(att[0, :4, :4], torch.full((4, 4), 1 / 16))
    assert att[0, 4:].sum() == 0 and att[0, :, 4:].sum() == 0


def test_kmeans_anchors_come_from_the_training_boxes_and_are_kept_in_the_config():
    from rsvg.data.records import GroundingSample
    from rsvg.errors import ConfigError
    from rsvg.models.anchor_fit import fit_anchors

    sizes = [(20, 10), (22, 11), (60, 40), (64, 44), (200, 120), (210, 130)] * 3  # three clusters, 800x800 images
    samples = [
        GroundingSample(i, str(i), Path(f"{i}.jpg"), Path("a.xml"), 0, 800, 800, "ship", (10, 10, 10 + w, 10 + h), "")
        for i, (w, h) in enumerate(sizes)
    ]
    cfg = model_config_from_dict({"arch": "faoa", "anchors": "kmeans"})
    fitted, message = fit_anchors(cfg, samples)
    assert fitted.anchor_imsize == 256 and len(fitted.anchor_boxes) == 9 and message.startswith("anchors (k-means")
    assert fit_anchors(fitted, samples)[0] == fitted  # the same again: a resumed run fits the same anchors
    # every anchor is one of the training sizes at 256 px (800 -> 256: x 0.32), or the mean of some of them
    assert all(6 <= w <= 70 and 3 <= h <= 42 for w, h in fitted.anchor_boxes)
    assert model_config_from_dict(fitted.to_dict()) == fitted  # kept in the checkpoint's config
    coco, said = fit_anchors(model_config_from_dict({"arch": "faoa"}), samples)
    assert coco.anchor_boxes[0] == [10.0, 13.0] and "COCO" in said
    with pytest.raises(ConfigError, match="kmeans finds 9 anchors among the training split's boxes, and it has 3"):
        fit_anchors(cfg, samples[:3])


@pytest.fixture(scope="module")
def memorised(tmp_path_factory) -> Path:
    """The lite config (frozen, cached encoders) at 64 px trained on four samples, validated on the same."""
    return memorise(
        tmp_path_factory,
        "configs/faoa_lite.yaml",
        [
            "model.image_size=64",
            "model.emb_size=64",
            "train.epochs=80",
            "train.batch_size=4",
            "train.lr=3e-3",
            "train.eval_every=40",
        ],
    )


def test_the_lite_config_memorises_a_few_samples(memorised):
    assert_memorised(memorised)
