"""The training loss: paper eq. 15, the cells head's terms, and the stages' terms summed by name."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou, sigmoid_focal_loss

from rsvg.models.loss import LossConfig, centre_cells, grounding_loss
from rsvg.models.mgvlf import MGVLF
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stage_inputs import CoreFacts
from rsvg.models.stages.base import StageOptions
from rsvg.models.stages.object_head import ObjectHead, ObjectRecord, object_loss, object_targets
from rsvg.models.stages.staged import StagedModel


def fake_model(side: int, head: str = "cells", image_size: int = 1) -> SimpleNamespace:
    """What MGVLF's loss reads of the model: its head, grid and input size."""
    model = SimpleNamespace(
        cfg=SimpleNamespace(head=head, image_size=image_size),
        num_visual=side * side,
        image_size=image_size,
        needs_attention=lambda cfg: False,
    )
    model.loss = lambda out, batch, cfg: MGVLF.loss(model, out, batch, cfg)
    model.loss_terms = lambda cfg: MGVLF.loss_terms(model, cfg)
    return model


def model_loss(model, out, batch, cfg=None):
    return model.loss(out, batch, cfg or LossConfig())


def staged(core: SimpleNamespace, *stages) -> SimpleNamespace:
    """What StagedModel's loss reads: the core's loss, the input size and the stages."""
    model = SimpleNamespace(core=core, image_size=core.image_size, stage_list=lambda: list(stages))
    model.loss = lambda out, batch, cfg: StagedModel.loss(model, out, batch, cfg)
    return model


def test_paper_loss_is_smooth_l1_plus_giou():
    pred = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.4, 0.9]])
    target = torch.tensor([[0.0, 0.1, 0.6, 0.5], [0.3, 0.3, 0.4, 0.9]])
    out = grounding_loss(pred, target)
    l1 = F.smooth_l1_loss(pred, target, reduction="none").sum(-1).mean()
    giou = (1 - generalized_box_iou(pred, target).diagonal()).mean()
    torch.testing.assert_close(out["l1"], l1)
    torch.testing.assert_close(out["giou"], giou)
    torch.testing.assert_close(out["loss"], l1 + giou)
    weighted = grounding_loss(pred, target, LossConfig(l1_weight=2.0, giou_weight=0.5, smooth_l1_beta=0.0))
    torch.testing.assert_close(weighted["loss"], 2 * (pred - target).abs().sum(-1).mean() + 0.5 * giou)


def test_centre_cells():
    boxes = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.6, 0.1, 0.9, 0.3], [0.9, 0.9, 1.0, 1.0]])
    assert centre_cells(boxes, 2, 3).tolist() == [0, 2, 5]


def test_cells_loss_trains_the_centre_cell_and_its_box():
    target = torch.tensor([[0.6, 0.1, 0.9, 0.3]])  # centre (0.75, 0.2): cell (0, 2) of a 3x3 grid
    scores = torch.tensor([[0.0, 1.0, 2.0, 0.0, float("-inf"), 0.0, 0.5, 0.5, 0.5]])
    cell_boxes = torch.rand(1, 9, 4).sort(-1).values
    cell_boxes[0, 2] = torch.tensor([0.5, 0.1, 0.9, 0.4])
    out = GroundingOutput(boxes=cell_boxes[:, 1], cell_scores=scores, cell_boxes=cell_boxes)
    losses = model_loss(fake_model(3), out, {"box": target}, LossConfig(cell_weight=2.0))
    expected_cell = F.cross_entropy(scores.clamp(min=-1e4), torch.tensor([2]))
    torch.testing.assert_close(losses["cell"], expected_cell)
    box_terms = grounding_loss(cell_boxes[:, 2], target)  # the centre cell's box, not the argmax's
    torch.testing.assert_close(losses["loss"], box_terms["loss"] + 2.0 * expected_cell)
    assert set(losses) == set(fake_model(3).loss_terms(LossConfig())) == {"loss", "l1", "giou", "cell"}


def test_the_reg_head_loss_is_the_papers_on_the_answer():
    out = GroundingOutput(boxes=torch.tensor([[0.1, 0.2, 0.5, 0.6]]))
    target = torch.tensor([[40.0, 40.0, 80.0, 120.0]])  # network pixels of a 200-px input
    losses = model_loss(fake_model(7, head="reg", image_size=200), out, {"box": target})
    torch.testing.assert_close(losses["loss"], grounding_loss(out.boxes, target / 200)["loss"])
    assert set(losses) == {"loss", "l1", "giou"}


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
        boxes=torch.rand(2, 4), cell_scores=torch.randn(2, 4), cell_boxes=torch.tensor([[[0.0, 0.0, 0.5, 0.5]] * 4] * 2)
    )
    out.stages["object_head"] = ObjectRecord(logits, torch.randn(2, 5))
    core = CoreFacts(image_size=64, dim=8, text_dim=8, heads=1, ffn_dim=8, max_tokens=8, level_channels={32: 8})
    stage = ObjectHead(StageOptions(weights={"object": 0.5, "category": 0.5}), core)
    target = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9]])
    categories = torch.tensor([3, 0])
    # the batch holds boxes and objects in network pixels (here a 1-px "input": the stage divides by image_size)
    stage.image_size = 1
    batch = {"box": target, "objects": objects, "category_index": categories}
    losses = model_loss(staged(fake_model(2), stage), out, batch)
    category = F.cross_entropy(out.stages["object_head"].query_category_logits, categories)
    torch.testing.assert_close(losses["object"], expected)
    torch.testing.assert_close(losses["category"], category)
    boxes_only = model_loss(fake_model(2), out, batch)["loss"]
    torch.testing.assert_close(losses["loss"], boxes_only + 0.5 * (expected + category))
    with pytest.raises(ValueError, match="objects"):
        model_loss(staged(fake_model(2), stage), out, {"box": target})


def test_the_retired_attention_weight_loads_when_off_and_is_refused_otherwise():
    from rsvg.config import config_from_dict

    assert config_from_dict({"loss": {"attention_weight": 0.0}}).loss == LossConfig()  # older checkpoints' configs
    with pytest.raises(ValueError, match=r"loss\.attention_weight no longer exists"):
        config_from_dict({"loss": {"attention_weight": 0.5}})
    with pytest.raises(ValueError, match=r"loss\.cell_weight"):
        LossConfig(cell_weight=-1)


def test_an_older_configs_stage_weight_weighs_each_of_the_stages_terms():
    from rsvg.config import config_from_dict

    cfg = config_from_dict({"model": {"head": "cells", "object_head": True}, "loss": {"object_weight": 0.5}})
    assert cfg.model.stages["object_head"].weights == {"object": 0.5, "category": 0.5}
