"""The training loss: paper eq. 15 and the optional attention supervision."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou, sigmoid_focal_loss

from rsvg.models.loss import (
    LossConfig,
    attention_loss,
    cell_targets,
    centre_cells,
    grounding_loss,
    model_loss,
    object_loss,
    object_targets,
)
from rsvg.models.mgvlf import GroundingOutput


def test_paper_loss_is_smooth_l1_plus_giou():
    pred = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.4, 0.9]])
    target = torch.tensor([[0.0, 0.1, 0.6, 0.5], [0.3, 0.3, 0.4, 0.9]])
    out = grounding_loss(pred, target)
    l1 = F.smooth_l1_loss(pred, target, reduction="none").sum(-1).mean()
    giou = (1 - generalized_box_iou(pred, target).diagonal()).mean()
    torch.testing.assert_close(out["l1"], l1)
    torch.testing.assert_close(out["giou"], giou)
    torch.testing.assert_close(out["loss"], l1 + giou)
    assert "attention" not in out
    weighted = grounding_loss(pred, target, LossConfig(l1_weight=2.0, giou_weight=0.5, smooth_l1_beta=0.0))
    torch.testing.assert_close(weighted["loss"], 2 * (pred - target).abs().sum(-1).mean() + 0.5 * giou)


def test_cell_targets_share_each_box_among_the_cells_it_touches():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 0.5, 0.5],  # exactly cell (0, 0) of a 2x2 grid
            [0.6, 0.6, 0.7, 0.7],  # a small box inside cell (1, 1)
            [0.25, 0.0, 0.75, 0.5],  # half in cell (0, 0), half in cell (0, 1)
        ]
    )
    t = cell_targets(boxes, 2, 2)
    torch.testing.assert_close(t[0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(t[1], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(t[2], torch.tensor([[0.5, 0.5], [0.0, 0.0]]))
    torch.testing.assert_close(t.sum((1, 2)), torch.ones(3))


def test_attention_loss_is_lowest_on_the_target():
    box = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    on_target = torch.tensor([[[0.9, 0.03], [0.03, 0.03]]])
    uniform = torch.full((1, 2, 2), 0.25)
    elsewhere = torch.tensor([[[0.03, 0.9], [0.03, 0.03]]])
    losses = [float(attention_loss(a, box)) for a in (on_target, uniform, elsewhere)]
    assert losses == sorted(losses) and losses[0] == pytest.approx(-torch.log(torch.tensor(0.9)).item(), rel=1e-5)


def test_attention_term_is_added_with_its_weight_and_needs_the_map():
    pred = torch.tensor([[0.1, 0.2, 0.5, 0.6]])
    target = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    attention = torch.tensor([[[0.5, 0.2], [0.2, 0.1]]])
    cfg = LossConfig(attention_weight=0.5)
    out = grounding_loss(pred, target, cfg, attention)
    torch.testing.assert_close(out["attention"], attention_loss(attention, target))
    torch.testing.assert_close(out["loss"], grounding_loss(pred, target)["loss"] + 0.5 * out["attention"])
    with pytest.raises(ValueError, match="attention map"):
        grounding_loss(pred, target, cfg)
    with pytest.raises(ValueError, match=r"loss\.attention_weight"):
        LossConfig(attention_weight=-1)


def test_centre_cells():
    boxes = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.6, 0.1, 0.9, 0.3], [0.9, 0.9, 1.0, 1.0]])
    assert centre_cells(boxes, 2, 3).tolist() == [0, 2, 5]


def test_cells_loss_trains_the_centre_cell_and_its_box():
    target = torch.tensor([[0.6, 0.1, 0.9, 0.3]])  # centre (0.75, 0.2): cell (0, 2) of a 2x3 grid
    scores = torch.tensor([[0.0, 1.0, 2.0, 0.0, float("-inf"), 0.0]])
    cell_boxes = torch.rand(1, 6, 4).sort(-1).values
    cell_boxes[0, 2] = torch.tensor([0.5, 0.1, 0.9, 0.4])
    out = GroundingOutput(boxes=cell_boxes[:, 1], cell_scores=scores, cell_boxes=cell_boxes)
    with pytest.raises(ValueError, match="square grid"):
        model_loss(out, target)
    out.attention = scores.softmax(1).reshape(1, 2, 3)
    losses = model_loss(out, target, LossConfig(cell_weight=2.0))
    expected_cell = F.cross_entropy(scores.clamp(min=-1e4), torch.tensor([2]))
    torch.testing.assert_close(losses["cell"], expected_cell)
    box_terms = grounding_loss(cell_boxes[:, 2], target)  # the centre cell's box, not the argmax's
    torch.testing.assert_close(losses["loss"], box_terms["loss"] + 2.0 * expected_cell)


def test_object_targets_mark_each_objects_centre_cell_with_its_class():
    objects = [
        torch.tensor([[3.0, 0.0, 0.0, 0.2, 0.2], [1.0, 0.6, 0.1, 0.9, 0.3]]),  # centres in cells 0 and 1 of 2x2
        torch.zeros(0, 5),  # an image without objects
    ]
    t = object_targets(objects, 2, 2, 5)
    assert t.shape == (2, 4, 5)
    assert t[0].nonzero().tolist() == [[0, 3], [1, 1]] and t[1].sum() == 0


def test_object_loss_is_focal_loss_per_object_and_model_loss_adds_it_with_the_category_term():
    logits = torch.randn(2, 4, 5)
    objects = [torch.tensor([[3.0, 0.0, 0.0, 0.2, 0.2], [1.0, 0.6, 0.1, 0.9, 0.3]]), torch.zeros(0, 5)]
    expected = sigmoid_focal_loss(logits, object_targets(objects, 2, 2, 5), reduction="sum") / 2
    torch.testing.assert_close(object_loss(logits, objects), expected)
    out = GroundingOutput(
        boxes=torch.rand(2, 4),
        cell_scores=torch.randn(2, 4),
        cell_boxes=torch.tensor([[[0.0, 0.0, 0.5, 0.5]] * 4] * 2),
        object_logits=logits,
        query_category_logits=torch.randn(2, 5),
    )
    target = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9]])
    categories = torch.tensor([3, 0])
    losses = model_loss(out, target, LossConfig(object_weight=0.5), objects, categories)
    category = F.cross_entropy(out.query_category_logits, categories)
    torch.testing.assert_close(losses["object"], expected)
    torch.testing.assert_close(losses["category"], category)
    boxes_only = GroundingOutput(out.boxes, cell_scores=out.cell_scores, cell_boxes=out.cell_boxes)
    torch.testing.assert_close(losses["loss"], model_loss(boxes_only, target)["loss"] + 0.5 * (expected + category))
    with pytest.raises(ValueError, match="image_objects"):
        model_loss(out, target)
