"""ZSGNet (model.arch: zsgnet): sizes as the reference builds them, its anchors and regressions, the loss on a
hand-built case, the word vectors read from a file, and the lite config memorising a few samples through rsvg
train."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers.families import assert_memorised, memorise, submodule_counts
from rsvg.config import load_config
from rsvg.errors import ConfigError, WeightsNotFoundError
from rsvg.models.build import build_model
from rsvg.models.outputs import GroundingOutput
from rsvg.models.registry import model_config_from_dict
from rsvg.models.word_vectors import read_word_vectors
from rsvg.models.zsgnet import box_iou_yx, cell_centres, decode, encode, zsg_anchors

VOCABULARY = ["the", "ship", "on", "left", "red", "car"]


@pytest.fixture(scope="module")
def paper_model():
    overrides = ["model.word_vectors=random", f"model.vocabulary={VOCABULARY}", "model.pretrained_backbone=false"]
    cfg = load_config("configs/zsgnet_r50.yaml", overrides).model
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_the_paper_config_has_the_references_parameter_counts(paper_model):
    # ZSGNet with ResNet-50 as its reference builds it (TheShadow29/zsgnet-pytorch @ b9881d4372a6, configs/cfg.json,
    # counted at random weights): backbone 33,554,472 (torchvision's resnet50 25,557,032 with its never-used fc
    # 2,049,000, and the FPN 7,997,440), att_reg_box 3,648,557, lstm 440,320: 37,643,349 in all; the spaCy word
    # vectors it reads are not parameters there (here a fixed table of the vocabulary's vectors)
    counts = submodule_counts(paper_model, depth=2)
    backbone = sum(v for k, v in counts.items() if k.startswith("backbone."))
    fpn = sum(v for k, v in counts.items() if k.startswith("neck."))
    head = sum(v for k, v in counts.items() if k.startswith("att_reg_box."))
    assert (backbone, fpn, head, counts["text.rnn"]) == (25_557_032 - 2_049_000, 7_997_440, 3_648_557, 440_320)
    assert backbone + fpn + head + counts["text.rnn"] == 37_643_349 - 2_049_000
    assert counts["text.embedding"] == (len(VOCABULARY) + 2) * 300
    assert not paper_model.text.embedding.weight.requires_grad  # fixed, as spaCy's vectors there
    # every backbone parameter trains, batch norms included
    assert all(p.requires_grad for p in paper_model.backbone.parameters())


def test_the_paper_config_has_17460_anchors_on_six_maps(paper_model):
    tok = paper_model.tokenizer()
    ids, mask = tok.encode("the red ship on the left", 50, True)
    image = torch.rand(1, 3, 300, 300)
    with torch.no_grad():
        out = paper_model(image, torch.zeros(1, 300, 300, dtype=torch.bool), torch.tensor([ids]), torch.tensor([mask]))
    assert out.cell_scores.shape == (1, 17_460) and out.extra["regression"].shape == (1, 17_460, 4)
    sizes = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    assert len(zsg_anchors(sizes, paper_model.cfg)) == 9 * sum(h * w for h, w in sizes) == 17_460
    # the attention logits start at -4 (the output conv's bias) plus what the random weights add
    assert paper_model.att_reg_box[-1].bias[4::5].eq(-4).all() and paper_model.att_reg_box[-1].bias[0::5].eq(0).all()


@pytest.fixture(scope="module")
def vgg_model():
    overrides = ["model.word_vectors=random", f"model.vocabulary={VOCABULARY}", "model.pretrained_backbone=false"]
    cfg = load_config("configs/zsgnet_vgg16.yaml", overrides).model
    torch.manual_seed(0)
    return build_model(cfg)


def test_the_vgg16_config_has_the_references_parameter_counts(vgg_model):
    # ZSGNet with VGG16 as its reference builds it (mdl_to_use ssd_vgg, counted at random weights): backbone
    # 26,810,030 = vgg 20,483,904 + extras 2,459,520 + fproj1-3 525,056 + SSD's never-used loc 534,648 and conf
    # 2,806,902; att_reg_box 3,648,557; lstm 440,320: 30,898,907 in all
    counts = submodule_counts(vgg_model, depth=2)
    trunk = sum(v for k, v in counts.items() if k.startswith("backbone."))
    fproj = sum(counts[f"neck.fproj{i}"] for i in (1, 2, 3))
    head = sum(v for k, v in counts.items() if k.startswith("att_reg_box."))
    assert (trunk, counts["neck.extras"], fproj, head, counts["text.rnn"]) == (
        20_483_904, 2_459_520, 525_056, 3_648_557, 440_320
    )  # fmt: skip
    assert trunk + counts["neck.extras"] + fproj + head + counts["text.rnn"] == 30_898_907 - 534_648 - 2_806_902
    assert all(p.requires_grad for p in vgg_model.backbone.parameters())  # trained whole, as the reference


def test_the_vgg16_model_reads_six_maps_and_every_parameter_learns(vgg_model):
    seen = {}
    handle = vgg_model.neck.fproj1.register_forward_hook(lambda m, args, out: seen.update(conv4_3=args[0]))
    ids, mask = vgg_model.tokenizer().encode("the red ship on the left", 50, True)
    image = torch.rand(2, 3, 300, 300)
    vgg_model.train()
    padding = torch.zeros(2, 300, 300, dtype=torch.bool)
    out = vgg_model(image, padding, torch.tensor([ids] * 2), torch.tensor([mask] * 2))
    handle.remove()
    # 38, 19, 10, 5, 3 and 1 cells: 17,460 anchors, as the ResNet-50 model
    assert out.cell_scores.shape == (2, 17_460)
    # conv4_3 reaches its projection at unit length in every cell
    torch.testing.assert_close(seen["conv4_3"].norm(dim=1), torch.ones(2, 38, 38))
    losses = vgg_model.loss(out, {"box": torch.tensor([[30.0, 40.0, 120.0, 90.0], [150.0, 150.0, 290.0, 200.0]])}, None)
    losses["loss"].backward()
    frozen_vectors = {"text.embedding.weight"}
    no_grad = [n for n, p in vgg_model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad and {n for n, p in vgg_model.named_parameters() if not p.requires_grad} == frozen_vectors
    vgg_model.zero_grad(set_to_none=True)


def test_a_dead_conv4_3_cell_stays_finite(vgg_model):
    conv4_3 = torch.rand(1, 512, 38, 38)
    conv4_3[..., 0, 0] = 0  # every channel zero after the ReLU
    with torch.no_grad():
        maps = vgg_model.neck([conv4_3, torch.rand(1, 1024, 19, 19)])
    assert all(torch.isfinite(m).all() for m in maps)


def test_the_vgg16_model_gives_the_same_boxes_from_its_cached_maps():
    # conv4_3 and conv7 folded into one stride-32 map and unfolded again (what a frozen trunk's feature cache holds)
    options = {"arch": "zsgnet", "backbone": "vgg16", "vocabulary": VOCABULARY, "word_vectors": "random"}
    cfg = model_config_from_dict({**options, "pretrained_backbone": False, "image_size": 288})
    torch.manual_seed(2)
    model = build_model(cfg).eval()
    image = torch.rand(1, 3, 288, 288)
    ids, mask = model.tokenizer().encode("the ship on the left", 50, True)
    args = (torch.zeros(1, 288, 288, dtype=torch.bool), torch.tensor([ids]), torch.tensor([mask]))
    with torch.no_grad():
        direct = model(image, *args)
        features = model.encode_image(image)
        cached = model(None, *args, image_features=features)
    assert features.shape == (1, model.feature_channels, 9, 9) and model.feature_channels == 512 * 16 + 1024 * 4
    torch.testing.assert_close(cached.boxes, direct.boxes)
    torch.testing.assert_close(cached.cell_scores, direct.cell_scores)


def test_the_vgg16_model_needs_a_large_enough_image_and_names_its_weights():
    base = {"arch": "zsgnet", "backbone": "vgg16", "vocabulary": ["the"], "word_vectors": "random"}
    with pytest.raises(ConfigError, match=r"model\.image_size 267 is too small for VGG16's SSD layers.*268 px"):
        model_config_from_dict({**base, "image_size": 267})
    with pytest.raises(WeightsNotFoundError, match=r"vgg16_reducedfc\.pth"):
        build_model(model_config_from_dict(base))


def test_cell_centres_and_anchor_shapes():
    torch.testing.assert_close(cell_centres(2, 4)[0, :, 0], torch.tensor([-0.5, 0.5]))  # y of each row
    torch.testing.assert_close(cell_centres(2, 4)[1, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))  # x
    assert cell_centres(1, 1).eq(0).all()
    cfg = model_config_from_dict({"arch": "zsgnet", "anchor_ratios": [0.5, 2.0], "anchor_scales": [1.0]})
    anchors = zsg_anchors([(2, 2)], cfg)
    assert anchors.shape == (2 * 2 * 2, 4)
    # the first cell (centre -0.5, -0.5), ratio 1/2: 4 cells x sqrt(1/2) high, 4 x sqrt(2) wide, a cell being 1
    h, w = 4 * math.sqrt(0.5), 4 * math.sqrt(2)
    torch.testing.assert_close(anchors[0], torch.tensor([-0.5 - h / 2, -0.5 - w / 2, -0.5 + h / 2, -0.5 + w / 2]))
    torch.testing.assert_close(anchors[1, 2:] - anchors[1, :2], torch.tensor([4 * math.sqrt(2), 4 * math.sqrt(0.5)]))


def test_encode_and_decode_are_inverse():
    torch.manual_seed(1)
    anchors = torch.tensor([[-0.5, -0.5, 0.5, 0.5], [-1.0, 0.0, 0.0, 0.5]])
    boxes = torch.tensor([[-0.2, -0.3, 0.4, 0.1], [0.1, 0.2, 0.9, 0.7]])
    reg = encode(anchors, boxes)
    assert reg.shape == (2, 2, 4)
    for b in range(2):
        torch.testing.assert_close(decode(anchors, reg[b]), boxes[b].expand(2, 4), rtol=1e-5, atol=1e-6)
    # the first box against the first anchor: centre (0.1, -0.1), size (0.6, 0.4) on a 1 x 1 anchor at 0
    torch.testing.assert_close(reg[0, 0], torch.tensor([0.1, -0.1, math.log(0.6), math.log(0.4)]), atol=1e-6, rtol=0)


def test_the_loss_on_a_hand_built_case(paper_model):
    # three anchors in (y1, x1, y2, x2), one image whose box overlaps the first two
    anchors = torch.tensor([[-1.0, -1.0, 0.0, 0.0], [-1.0, -1.0, 0.1, 0.1], [0.0, 0.0, 1.0, 1.0]])
    target_yx = torch.tensor([[-0.95, -0.9, 0.0, 0.05]])
    size = paper_model.image_size
    box_px = ((target_yx[:, [1, 0, 3, 2]] + 1) / 2) * size  # rsvg's (x1, y1, x2, y2) in network pixels
    logits = torch.tensor([[0.3, -1.0, 2.0]])
    regression = torch.tensor([[[0.1, 0.0, -0.2, 0.3], [0.0, 0.5, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    out = GroundingOutput(torch.zeros(1, 4), cell_scores=logits, extra={"regression": regression, "anchors": anchors})
    losses = paper_model.loss(out, {"box": box_px}, None)

    iou = box_iou_yx(target_yx, anchors)[0]
    assert iou[0] > iou[1] > 0.6 and iou[2] == 0  # positives: the first two (over 0.6; the first is the best)
    positive = torch.tensor([1.0, 1.0, 0.0])
    gt = encode(anchors, target_yx)[0]
    box = (F.smooth_l1_loss(regression[0, 0], gt[0], reduction="sum")
           + F.smooth_l1_loss(regression[0, 1], gt[1], reduction="sum")) / 2  # fmt: skip
    p = logits[0].sigmoid()
    weights = torch.where(positive > 0, (1 - p) ** 2 * 0.75, p**2 * 0.25)
    bce = -(positive * torch.log(p) + (1 - positive) * torch.log(1 - p))
    cls = (weights * bce).sum() / 2
    torch.testing.assert_close(losses["box"], box)
    torch.testing.assert_close(losses["cls"], cls)
    torch.testing.assert_close(losses["loss"], box + cls)


def test_the_best_anchor_is_positive_when_none_passes_the_threshold(paper_model):
    anchors = torch.tensor([[-1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    target_yx = torch.tensor([[0.5, 0.5, 0.9, 0.9]])  # IoU 0.16 with the second anchor, 0 with the first
    box_px = ((target_yx[:, [1, 0, 3, 2]] + 1) / 2) * paper_model.image_size
    logits = torch.tensor([[1.0, -1.0]])
    regression = torch.zeros(1, 2, 4)
    out = GroundingOutput(torch.zeros(1, 4), cell_scores=logits, extra={"regression": regression, "anchors": anchors})
    losses = paper_model.loss(out, {"box": box_px}, None)
    gt = encode(anchors, target_yx)[0, 1]
    torch.testing.assert_close(losses["box"], F.smooth_l1_loss(torch.zeros(4), gt, reduction="sum"))
    p = logits[0].sigmoid()
    expected = p[0] ** 2 * 0.25 * -torch.log(1 - p[0]) + (1 - p[1]) ** 2 * 0.75 * -torch.log(p[1])
    torch.testing.assert_close(losses["cls"], expected)


def test_word_vectors_from_glove_and_word2vec_files(tmp_path: Path):
    glove = tmp_path / "vectors.txt"
    glove.write_text("the 1 2 3\nShip 4 5 6\nunused 7 8 9\nleft 0.5 0.25 -1\n")
    table, found = read_word_vectors(glove, ["the", "ship", "left", "red"], 3)
    assert found == 3
    torch.testing.assert_close(table, torch.tensor([[1.0, 2, 3], [4, 5, 6], [0.5, 0.25, -1], [0, 0, 0]]))
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("2 3\nthe 1 1 1\nred 2 2 2\n")
    table, found = read_word_vectors(w2v, ["red", "the"], 3)
    assert found == 2 and table[0].eq(2).all()
    bad = tmp_path / "bad.txt"
    bad.write_text("the 1 2\n")
    with pytest.raises(ConfigError, match=r"bad\.txt, line 1"):
        read_word_vectors(bad, ["the"], 3)


def test_the_word_vectors_are_named_or_refused(tmp_path: Path):
    base = {"arch": "zsgnet", "backbone": "efficientnet_lite0", "pretrained_backbone": False, "image_size": 64,
            "vocabulary": ["the", "ship"], "emb_dim": 3, "lstm_dim": 4, "fpn_dim": 8, "head_convs": 1}  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.word_vectors: ZSGNet reads fixed"):
        build_model(model_config_from_dict(base))
    with pytest.raises(ConfigError, match="is not a file"):
        build_model(model_config_from_dict({**base, "word_vectors": str(tmp_path / "missing.txt")}))
    # a checkpoint keeps the vectors: its config loads where the file is not
    cfg = model_config_from_dict({**base, "word_vectors": str(tmp_path / "missing.txt")})
    build_model(cfg, load_pretrained=False)
    vectors = tmp_path / "v.txt"
    vectors.write_text("ship 1 2 3\n")
    model = build_model(model_config_from_dict({**base, "word_vectors": str(vectors)}))
    torch.testing.assert_close(model.text.embedding.weight[3], torch.tensor([1.0, 2, 3]))  # id 3: "ship"
    assert model.text.embedding.weight[2].eq(0).all() and "1 of the 2 words" in model.init_report()
    learned = build_model(model_config_from_dict({**base, "word_vectors": "learn"}))
    assert learned.text.embedding.weight.requires_grad


@pytest.fixture(scope="module")
def lite_run(tmp_path_factory):
    # its learned embeddings and anchor matching need about 100 epochs on the four samples
    overrides = ["model.image_size=128", "train.epochs=120", "train.batch_size=4", "train.eval_every=20"]
    overrides += ["train.lr=2e-3", "train.schedule=constant"]
    return memorise(tmp_path_factory, "configs/zsgnet_lite.yaml", overrides)


def test_the_lite_config_memorises_a_few_samples(lite_run):
    assert_memorised(lite_run)
