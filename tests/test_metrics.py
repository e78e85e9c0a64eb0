"""Box ops and the seven metrics against hand-computed values."""

import json

import numpy as np
import pytest
import torch

from rsvg.boxes import box_area, clip_boxes, intersection_union, paired_iou
from rsvg.metrics import METRIC_NAMES, grounding_metrics


def test_iou_without_plus_one():
    # 10x10 box vs the same box shifted by 5 in x: I = 5*10 = 50, U = 100 + 100 - 50 = 150.
    iou = paired_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])
    assert iou[0] == pytest.approx(50 / 150)


def test_iou_identical_and_disjoint_and_contained():
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [2, 2, 4, 4]], dtype=float)
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=float)
    np.testing.assert_allclose(paired_iou(pred, gt), [1.0, 0.0, 4 / 100])


def test_degenerate_boxes_are_defined():
    pred = np.array(
        [
            [5, 5, 5, 15],  # zero width
            [10, 10, 0, 0],  # inverted
            [0, 0, 0, 0],  # a point
            [-50, -50, -40, -40],  # outside the image, still a valid box
        ],
        dtype=float,
    )
    gt = np.array([[0, 0, 10, 20], [0, 0, 10, 10], [0, 0, 0, 0], [-45, -50, -35, -40]], dtype=float)
    iou = paired_iou(pred, gt)
    np.testing.assert_allclose(iou, [0.0, 0.0, 0.0, 50 / 150])
    np.testing.assert_allclose(box_area(pred), [0, 0, 0, 100])
    inter, union = intersection_union(pred, gt)
    assert (inter >= 0).all() and (union >= 0).all()


def test_accepts_tensors_and_checks_shapes():
    iou = paired_iou(torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([[0.0, 0, 2, 4]]))
    assert iou[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same shape"):
        paired_iou(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        paired_iou(np.zeros((2, 3)), np.zeros((2, 3)))


def test_clip_boxes():
    np.testing.assert_allclose(clip_boxes([[-5, 10, 900, 700]], 800, 600), [[0, 10, 800, 600]])


def test_seven_metrics_hand_computed():
    gt = np.array([[0, 0, 10, 10]] * 5, dtype=float)
    # IoUs: 1.0, 0.5 exactly (not counted at 0.5: strict >), 0.75, 0.0, 0.64 (8x8 inside 10x10).
    pred = np.array(
        [[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 7.5], [20, 20, 30, 30], [1, 1, 9, 9]],
        dtype=float,
    )
    rep = grounding_metrics(pred, gt)
    v = rep.overall.values
    assert rep.overall.count == 5
    assert v["Pr@0.5"] == pytest.approx(60.0)  # 1.0, 0.75, 0.64
    assert v["Pr@0.6"] == pytest.approx(60.0)
    assert v["Pr@0.7"] == pytest.approx(40.0)  # 1.0, 0.75
    assert v["Pr@0.8"] == pytest.approx(20.0)
    assert v["Pr@0.9"] == pytest.approx(20.0)
    assert v["meanIoU"] == pytest.approx((1 + 0.5 + 0.75 + 0 + 0.64) / 5 * 100)
    inter = 100 + 50 + 75 + 0 + 64
    union = 100 + 100 + 100 + 200 + 100
    assert v["cumIoU"] == pytest.approx(inter / union * 100)


def test_cum_iou_weights_large_boxes():
    # One big perfect box and one small miss: cumIoU is dominated by the big box, meanIoU is not.
    gt = np.array([[0, 0, 100, 100], [0, 0, 1, 1]], dtype=float)
    pred = np.array([[0, 0, 100, 100], [5, 5, 6, 6]], dtype=float)
    v = grounding_metrics(pred, gt).overall.values
    assert v["meanIoU"] == pytest.approx(50.0)
    assert v["cumIoU"] == pytest.approx(10000 / 10002 * 100)


def test_per_category_and_outputs():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    pred = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10]], dtype=float)
    rep = grounding_metrics(pred, gt, ["ship", "vehicle", "vehicle"])
    assert rep.per_category["ship"].values["Pr@0.5"] == pytest.approx(100.0)
    assert rep.per_category["vehicle"].values["Pr@0.5"] == pytest.approx(50.0)
    assert rep.per_category["vehicle"].count == 2
    data = json.loads(rep.to_json())
    assert data["unit"] == "percent"
    assert set(data["overall"]["values"]) == set(METRIC_NAMES)
    table = rep.table()
    assert "vehicle" in table and "cumIoU" in table and "66.67" in table
    with pytest.raises(ValueError, match="categories"):
        grounding_metrics(pred, gt, ["ship"])


def test_empty_input_gives_nan_not_crash():
    rep = grounding_metrics(np.zeros((0, 4)), np.zeros((0, 4)))
    assert rep.overall.count == 0
    assert all(np.isnan(x) for x in rep.overall.values.values())
