"""The one-stage grounding head's shared parts: anchors per family, targets, layout, decoding and the loss."""

import math

import pytest
import torch

from rsvg.models.yolo import (
    COCO_ANCHORS,
    FAOA_ANCHORS,
    LBYL_ANCHORS,
    LBYL_LOSS,
    RESC_ANCHORS,
    AnchorSet,
    YoloLossConfig,
    build_targets,
    cell_table,
    decode,
    flatten_outputs,
    kmeans_anchors,
    wh_iou,
    yolo_grounding_loss,
)


def random_outputs(anchor_set: AnchorSet, input_size: int, batch: int = 2, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, len(level) * 5, g, g, generator=gen, dtype=torch.float64)
        for level, g in zip(anchor_set.levels, anchor_set.grids(input_size), strict=True)
    ]


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_anchor_cells_at_256_px():
    assert FAOA_ANCHORS.grids(256) == (8, 16, 32)
    assert FAOA_ANCHORS.num_cells(256) == 3 * (64 + 256 + 1024) == 4032
    assert LBYL_ANCHORS.num_cells(256) == 4032
    assert RESC_ANCHORS.grids(256) == (32,)
    assert RESC_ANCHORS.num_cells(256) == 9 * 1024 == 9216
    assert FAOA_ANCHORS.offsets(256) == (0, 192, 192 + 768)
    with pytest.raises(ValueError, match="multiple"):
        FAOA_ANCHORS.grids(250)


def test_anchor_assignment_and_scaling_per_family():
    # The largest three on the coarsest grid, in the references' reversed order.
    assert FAOA_ANCHORS.anchors[0] == COCO_ANCHORS[-1] == (373.0, 326.0)
    assert [FAOA_ANCHORS.anchors[i] for i in FAOA_ANCHORS.levels[0]] == [(373, 326), (156, 198), (116, 90)]
    assert [FAOA_ANCHORS.anchors[i] for i in FAOA_ANCHORS.levels[2]] == [(33, 23), (16, 30), (10, 13)]
    # FAOA/ReSC: a / (416 / G). At 256 px on the 8×8 grid: 373 · 8 / 416 cells = 373 · 256 / 416 px.
    cells = FAOA_ANCHORS.in_cells(0, 256)
    assert cells[0].tolist() == pytest.approx([373 * 8 / 416, 326 * 8 / 416])
    assert FAOA_ANCHORS.in_pixels(256)[0].tolist() == pytest.approx([373 * 256 / 416, 326 * 256 / 416])
    # The same anchor on FAOA's 32×32 grid and on ReSC's: (10, 13) · 32 / 416.
    assert FAOA_ANCHORS.in_cells(2, 256)[2].tolist() == pytest.approx([10 * 32 / 416, 13 * 32 / 416])
    assert RESC_ANCHORS.in_cells(0, 256)[8].tolist() == pytest.approx([10 * 32 / 416, 13 * 32 / 416])
    assert RESC_ANCHORS.in_cells(0, 256)[0].tolist() == pytest.approx([373 * 32 / 416, 326 * 32 / 416])
    # LBYL-Net: a / (256 / G) = a / stride: the numbers are network pixels.
    assert LBYL_ANCHORS.in_cells(0, 256)[0].tolist() == pytest.approx([373 / 32, 326 / 32])
    assert LBYL_ANCHORS.in_cells(1, 256)[0].tolist() == pytest.approx([59 / 16, 119 / 16])
    assert LBYL_ANCHORS.in_cells(1, 256)[2].tolist() == pytest.approx([30 / 16, 61 / 16])
    assert LBYL_ANCHORS.in_pixels(256)[0].tolist() == pytest.approx([373, 326])


def test_anchor_set_rejects_bad_levels():
    with pytest.raises(ValueError, match="one stride per level"):
        AnchorSet(COCO_ANCHORS, ((0, 1),), (8, 16))
    with pytest.raises(ValueError, match="one level only"):
        AnchorSet(COCO_ANCHORS, ((0, 1), (1, 2)), (8, 16))
    with pytest.raises(ValueError, match="anchors among"):
        AnchorSet(COCO_ANCHORS, ((9,),), (8,))


def test_flat_layout_matches_the_head_channels():
    outputs = random_outputs(FAOA_ANCHORS, 256)
    conf, reg = flatten_outputs(outputs, FAOA_ANCHORS)
    assert conf.shape == (2, 4032) and reg.shape == (2, 4032, 4)
    table = cell_table(FAOA_ANCHORS, 256, torch.float64)
    for index in (0, 5, 191, 192, 192 + 2 * 256 + 3 * 16 + 7, 4031):
        level = 0 if index < 192 else 1 if index < 960 else 2
        local = index - FAOA_ANCHORS.offsets(256)[level]
        g = FAOA_ANCHORS.grids(256)[level]
        a, gj, gi = local // (g * g), (local // g) % g, local % g
        out = outputs[level][1]
        assert conf[1, index] == out[a * 5 + 4, gj, gi]
        assert reg[1, index].tolist() == out[a * 5 : a * 5 + 4, gj, gi].tolist()
        assert table[index, :2].tolist() == [gi, gj]
        assert table[index, 4] == FAOA_ANCHORS.strides[level]
        assert table[index, 2:4].tolist() == FAOA_ANCHORS.in_cells(level, 256)[a].tolist()


def test_targets_by_hand_faoa():
    # A 40×80 box centred at (120, 100) at 256 px. Effective anchors are a · 256/416; the best wh-IoU is with
    # (59, 119) → (36.3, 73.2) px: IoU 2657/3200, against e.g. (156, 198) → 3200/11693.
    box = torch.tensor([[100.0, 60.0, 140.0, 140.0]], dtype=torch.float64)
    t = build_targets(box, FAOA_ANCHORS, 256)
    assert FAOA_ANCHORS.anchors[int(t.anchor)] == (59.0, 119.0)
    assert int(t.level) == 1  # 16×16, stride 16; the level's anchors are (59, 119), (62, 45), (30, 61)
    # In cells: centre (7.5, 6.25), size (2.5, 5); anchor 59 · 16 / 416, 119 · 16 / 416.
    assert int(t.index) == 192 + (0 * 16 + 6) * 16 + 7
    expected = [0.5, 0.25, math.log(2.5 / (59 * 16 / 416) + 1e-16), math.log(5 / (119 * 16 / 416) + 1e-16)]
    assert t.reg[0].tolist() == pytest.approx(expected, rel=1e-12)


def test_targets_by_hand_lbyl_and_resc():
    box = torch.tensor([[100.0, 60.0, 140.0, 140.0]], dtype=torch.float64)
    # LBYL: anchors are pixels; (30, 61) beats (59, 119): 1830/3200 against 3200/7021.
    t = build_targets(box, LBYL_ANCHORS, 256)
    assert LBYL_ANCHORS.anchors[int(t.anchor)] == (30.0, 61.0)
    assert int(t.level) == 1
    assert int(t.index) == 192 + (2 * 16 + 6) * 16 + 7
    assert t.reg[0, 2:].tolist() == pytest.approx([math.log(2.5 / (30 / 16)), math.log(5 / (61 / 16))])
    # ReSC: one 32×32 grid; the anchor index is the head's channel group.
    t = build_targets(box, RESC_ANCHORS, 256)
    assert int(t.anchor) == 3 and RESC_ANCHORS.anchors[3] == (59.0, 119.0)
    assert int(t.index) == (3 * 32 + 12) * 32 + 15  # centre (15, 12.5) cells
    assert t.reg[0, :2].tolist() == pytest.approx([0.0, 0.5])


@pytest.mark.parametrize("anchor_set", [FAOA_ANCHORS, LBYL_ANCHORS], ids=["faoa", "lbyl"])
def test_anchor_choice_equals_the_per_level_choice_in_cells(anchor_set):
    # The references compute the IoU in each level's cell units (LBYL: the best per level, then the level with
    # the largest best); the pixel-unit choice must agree.
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=gen, dtype=torch.float64) * 128
    wh = torch.rand(200, 2, generator=gen, dtype=torch.float64) ** 2 * 250 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    t = build_targets(boxes, anchor_set, 256)
    for b in range(len(boxes)):
        best = []
        for level, g in enumerate(anchor_set.grids(256)):
            ious = wh_iou(wh[b : b + 1] / 256 * g, anchor_set.in_cells(level, 256))[0]
            best.append((float(ious.max()), level, anchor_set.levels[level][int(ious.argmax())]))
        _, level, anchor = max(best, key=lambda x: x[0])
        assert (int(t.level[b]), int(t.anchor[b])) == (level, anchor)


def test_target_on_the_far_edge_stays_in_the_grid():
    box = torch.tensor([[248.0, 248.0, 264.0, 264.0]])  # centre (256, 256): cell 32 of 0..31
    t = build_targets(box, RESC_ANCHORS, 256)
    a = int(t.anchor)
    assert int(t.index) == (a * 32 + 31) * 32 + 31
    assert t.reg[0, :2].tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("anchor_set", [FAOA_ANCHORS, RESC_ANCHORS, LBYL_ANCHORS], ids=["faoa", "resc", "lbyl"])
def test_encode_decode_round_trip(anchor_set):
    boxes = torch.tensor(
        [[100.0, 60.0, 140.0, 140.0], [3.3, 7.1, 250.2, 201.9], [31.0, 90.5, 44.25, 97.0], [0.7, 0.2, 9.9, 12.1]],
        dtype=torch.float64,
    )
    t = build_targets(boxes, anchor_set, 256)
    n = anchor_set.num_cells(256)
    conf = torch.zeros(len(boxes), n, dtype=torch.float64)
    conf[torch.arange(len(boxes)), t.index] = 1.0
    reg = torch.zeros(len(boxes), n, 4, dtype=torch.float64)
    raw = torch.cat([torch.logit(t.reg[:, :2]), t.reg[:, 2:]], 1)
    reg[torch.arange(len(boxes)), t.index] = raw
    out = decode(conf, reg, anchor_set, 256)
    assert out.index.tolist() == t.index.tolist()
    assert out.boxes.shape == (len(boxes), n, 4)
    torch.testing.assert_close(out.box, boxes, rtol=0, atol=1e-9)
    assert out.score.tolist() == [1.0] * len(boxes)


def test_decode_by_hand():
    # One anchor-cell of FAOA's 16×16 grid: anchor (59, 119) (the level's first) at (gi, gj) = (3, 5), raw
    # (0, 0, log 2, 0).
    n = FAOA_ANCHORS.num_cells(256)
    conf = torch.full((1, n), -1.0)
    reg = torch.zeros(1, n, 4)
    index = 192 + (0 * 16 + 5) * 16 + 3
    conf[0, index] = 3.0
    reg[0, index] = torch.tensor([0.0, 0.0, math.log(2.0), 0.0])
    out = decode(conf, reg, FAOA_ANCHORS, 256)
    cx, cy = (0.5 + 3) * 16, (0.5 + 5) * 16
    w, h = 2 * 59 * 256 / 416, 119 * 256 / 416
    assert out.box[0].tolist() == pytest.approx([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rel=1e-6)
    assert int(out.index) == index and float(out.score) == 3.0


def test_loss_by_hand():
    # A 2×2 grid (stride 8 at 16 px) with one anchor: 4 anchor-cells.
    anchor_set = AnchorSet(((8.0, 8.0),), ((0,),), (8,), None)
    boxes = torch.tensor([[2.0, 2.0, 6.0, 10.0], [9.0, 8.0, 15.0, 14.0]])
    t = build_targets(boxes, anchor_set, 16)
    assert t.index.tolist() == [0, 3]  # centres (4, 6) → cell (0, 0); (12, 11) → cell (1, 1)
    # Targets in cells: (0.5, 0.75, log 0.5, log 1); (0.5, 0.375, log 0.75, log 0.75).
    tx, ty = [0.5, 0.5], [0.75, 0.375]
    tw, th = [math.log(0.5), math.log(0.75)], [0.0, math.log(0.75)]
    expected = torch.tensor([[tx[0], ty[0], tw[0], th[0]], [tx[1], ty[1], tw[1], th[1]]])
    torch.testing.assert_close(t.reg, expected, rtol=0, atol=1e-6)
    conf = torch.tensor([[1.0, -0.5, 0.25, 2.0], [0.0, 0.5, -1.0, 1.5]], requires_grad=True)
    raw = [[0.3, -0.2, 0.1, -0.4], [1.2, 0.7, -0.6, 0.2]]  # (tx, ty, tw, th) at the target cells
    reg = torch.zeros(2, 4, 4)
    reg[0, 0], reg[1, 3] = torch.tensor(raw[0]), torch.tensor(raw[1])
    reg.requires_grad_(True)
    losses = yolo_grounding_loss(conf, reg, t)

    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    rows = conf.detach().tolist()
    ce = sum(math.log(sum(math.exp(v) for v in row)) - row[i] for row, i in zip(rows, [0, 3], strict=True)) / 2
    mse = [
        sum((sig(raw[b][0]) - tx[b]) ** 2 for b in range(2)) / 2,
        sum((sig(raw[b][1]) - ty[b]) ** 2 for b in range(2)) / 2,
        sum((raw[b][2] - tw[b]) ** 2 for b in range(2)) / 2,
        sum((raw[b][3] - th[b]) ** 2 for b in range(2)) / 2,
    ]
    assert float(losses["conf"]) == pytest.approx(ce, rel=1e-6)
    assert float(losses["coord"]) == pytest.approx(sum(mse), rel=1e-6)
    assert losses["loss"].item() == pytest.approx(ce + 5 * sum(mse), rel=1e-6)
    assert not losses["conf"].requires_grad and not losses["coord"].requires_grad
    losses["loss"].backward()
    # Only the target cells' regressions get a gradient.
    assert reg.grad[0, 1:].abs().sum() == 0 and reg.grad[1, :3].abs().sum() == 0
    assert reg.grad[0, 0].abs().min() > 0 and conf.grad.abs().min() > 0


def test_lbyl_clamps_the_sigmoid():
    anchor_set = AnchorSet(((8.0, 8.0),), ((0,),), (8,), None)
    t = build_targets(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), anchor_set, 16)  # tx* = ty* = 0.5, tw* = th* ≈ 0
    conf = torch.zeros(1, 4)
    reg = torch.zeros(1, 4, 4)
    reg[0, 0, 0] = 30.0  # σ = 1 − 9e-14
    plain = yolo_grounding_loss(conf, reg, t)
    clamped = yolo_grounding_loss(conf, reg, t, LBYL_LOSS)
    assert float(plain["coord"]) == pytest.approx(0.25, rel=1e-6)
    assert float(clamped["coord"]) == pytest.approx((1 - 1e-4 - 0.5) ** 2, rel=1e-6)
    assert float(clamped["conf"]) == pytest.approx(math.log(4))
    with pytest.raises(ValueError):
        YoloLossConfig(sigmoid_clamp=0.5)


def test_loss_on_head_outputs_runs_end_to_end():
    outputs = [o.float().requires_grad_(True) for o in random_outputs(FAOA_ANCHORS, 256, batch=3)]
    boxes = torch.tensor([[10.0, 20.0, 60.0, 90.0], [0.0, 0.0, 255.0, 255.0], [120.0, 120.0, 126.0, 131.0]])
    conf, reg = flatten_outputs(outputs, FAOA_ANCHORS)
    losses = yolo_grounding_loss(conf, reg, build_targets(boxes, FAOA_ANCHORS, 256))
    losses["loss"].backward()
    assert all(o.grad is not None for o in outputs)
    assert torch.isfinite(losses["loss"])
    assert set(losses) == {"loss", "conf", "coord"}


def test_wh_iou():
    iou = wh_iou(torch.tensor([[4.0, 2.0]]), torch.tensor([[4.0, 2.0], [2.0, 4.0], [8.0, 4.0]]))
    assert iou[0].tolist() == pytest.approx([1.0, 4 / 12, 8 / 32])


def test_kmeans_recovers_clusters_and_is_deterministic():
    gen = torch.Generator().manual_seed(1)
    centres = torch.tensor([[12.0, 10.0], [30.0, 60.0], [90.0, 45.0], [150.0, 160.0]])
    wh = torch.cat([c * (1 + 0.05 * torch.randn(50, 2, generator=gen)) for c in centres])
    wh = wh[torch.randperm(len(wh), generator=gen)]
    anchors = kmeans_anchors(wh, 4, seed=3)
    assert anchors.shape == (4, 2)
    torch.testing.assert_close(anchors, centres, rtol=0.05, atol=0)
    area = anchors[:, 0] * anchors[:, 1]
    assert torch.all(area[1:] >= area[:-1])
    assert torch.equal(kmeans_anchors(wh, 4, seed=3), anchors)
    for seed in range(5):
        torch.testing.assert_close(kmeans_anchors(wh, 4, seed=seed), anchors, rtol=1e-6, atol=0)
    with pytest.raises(ValueError):
        kmeans_anchors(wh[:3], 4)
