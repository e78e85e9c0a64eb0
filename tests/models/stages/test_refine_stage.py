"""Box refinement (model.stages.refine): the refiner, its training inputs, the model path and the loss."""

import pytest
import torch
from torchvision.ops import box_iou, roi_align

from helpers.models import TINY, inputs, model_config
from rsvg.models.build import build_model
from rsvg.models.loss import LossConfig
from rsvg.models.stage_inputs import CoreFacts
from rsvg.models.stages.colours import colour_channels
from rsvg.models.stages.refine import BoxRefiner, RefineOptions, _to_map, jitter_boxes

REFINE = {**TINY, "head": "cells", "stride16_detail": True, "stages": {"refine": {"bins": 3}}}


@pytest.fixture(scope="module")
def refine_model():
    torch.manual_seed(0)
    return build_model(model_config(**REFINE))


def _objects():
    """One tensor per sample of the inputs() batch: (class, x1, y1, x2, y2) normalised."""
    return [torch.tensor([[3.0, 0.1, 0.1, 0.4, 0.3]]), torch.tensor([[5.0, 0.5, 0.5, 0.9, 0.8], [1.0, 0, 0, 0.2, 0.2]])]


def _objects_in_pixels(size=64):
    """:func:`_objects` as the dataset gives them (ImageObjects): boxes in network pixels."""
    return [o * torch.tensor([1.0, size, size, size, size]) for o in _objects()]


def test_jittered_boxes_move_around_the_truth():
    torch.manual_seed(0)
    truth = torch.tensor([[0.2, 0.2, 0.4, 0.6]]).repeat(4000, 1)
    moved = jitter_boxes(truth, shift=0.2, scale=0.3)
    assert moved.shape == truth.shape and (moved[:, 2:] > moved[:, :2]).all()
    centre = (moved[:, :2] + moved[:, 2:]) / 2
    assert torch.allclose(centre.mean(0), torch.tensor([0.3, 0.4]), atol=0.01)
    # the centre moves by 0.2 box sizes (width 0.2, height 0.4), the sides by exp(N(0, 0.3))
    assert torch.allclose(centre.std(0), torch.tensor([0.04, 0.08]), rtol=0.1)
    log_width = (moved[:, 2] - moved[:, 0]).div(0.2).log()
    assert abs(log_width.std().item() - 0.3) < 0.03
    assert not torch.equal(jitter_boxes(truth[:2]), jitter_boxes(truth[:2]))


def test_the_norms_scale_and_shift_after_roi_align_equal_the_layernorm_before_it(refine_model):
    # roi_align is a weighted average of the map whose weights sum to the share of samples inside it, so the
    # LayerNorm's affine part may follow it: the same grids and the same gradients, boxes partly outside included
    refiner = refine_model.stages["refine"]
    kept = {k: v.clone() for k, v in refiner.detail_norm.state_dict().items()}
    torch.manual_seed(1)
    refiner.detail_norm.weight.data.normal_()
    refiner.detail_norm.bias.data.normal_()
    channels = refiner.detail_norm.normalized_shape[0]
    detail = torch.randn(3, channels, 8, 8)
    boxes = torch.tensor([[0.1, 0.1, 0.3, 0.4], [-0.3, -0.2, 0.5, 0.3], [0.7, 0.8, 1.4, 1.3], [0.4, 0.4, 0.41, 0.42]])
    rows = torch.tensor([0, 1, 2, 2])
    before = refiner.detail_norm(detail.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    expected = roi_align(before, _to_map(boxes, rows, 8, 8), refiner.bins, sampling_ratio=2, aligned=True).flatten(1)
    grads_expected = torch.autograd.grad(expected.square().sum(), list(refiner.detail_norm.parameters()))
    got = refiner._read_detail(detail, boxes, rows)
    grads = torch.autograd.grad(got.square().sum(), list(refiner.detail_norm.parameters()))
    assert torch.allclose(got, expected, atol=1e-5)
    for g, e in zip(grads, grads_expected, strict=True):
        assert torch.allclose(g, e, rtol=1e-4, atol=1e-4)
    refiner.detail_norm.load_state_dict(kept)


def test_an_untrained_refiner_leaves_the_boxes_as_they_are(refine_model):
    # the model-wide Xavier init must not overwrite the refiner's zero last layer
    assert refine_model.stages["refine"].mlp[-1].weight.abs().max() == 0
    image, pad, ids, mask = inputs()
    out = refine_model.eval()(image, pad, ids, mask)
    unrefined = out.stages["refine"].unrefined
    assert unrefined is not None and torch.allclose(out.boxes, unrefined, atol=1e-6)
    assert refine_model.feature_channels == refine_model.core.level_channels[32] + 4 * refine_model.core.level_channels[
        16
    ] + colour_channels(32)  # the colour map rides along without model.rank
    # cached features give the same answer
    cached = refine_model(None, pad, ids, mask, image_features=refine_model.encode_image(image))
    assert torch.allclose(cached.boxes, out.boxes, atol=1e-5)


def test_in_training_the_jittered_objects_are_refined_and_only_the_refiner_learns_from_them(refine_model):
    image, pad, ids, mask = inputs()
    model = refine_model.train()
    with pytest.raises(ValueError, match="annotated objects"):
        model(image, pad, ids, mask)
    out = model(image, pad, ids, mask, extras={"objects": _objects_in_pixels()})
    refine = out.stages["refine"]
    assert refine.boxes.shape == refine.truth.shape == (3, 4)
    # the stage normalises the objects' pixel boxes to the input
    assert torch.equal(refine.truth, torch.cat([o[:, 1:] for o in _objects()]))
    assert refine.unrefined is None  # the answer is not refined in training
    target = torch.tensor([[0.1, 0.1, 0.4, 0.3], [0.5, 0.5, 0.9, 0.8]])
    batch = {"box": target * 64, "objects": _objects_in_pixels()}
    losses = model.loss(out, batch, LossConfig())
    assert losses["refine"] > 0
    # the refinement's own weighted term, and nothing else, reaches the parameters
    weighted, terms = model.stages["refine"].loss(out, target, batch, LossConfig())
    assert torch.equal(terms["refine"], losses["refine"])
    model.zero_grad()
    weighted.backward()
    touched = {
        ".".join(n.split(".")[:2])
        for n, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    assert touched == {"stages.refine"}
    model.eval()


def test_the_refiner_learns_to_fit_boxes_to_the_objects():
    """Bright rectangles on a dark image, seen through the colour map only: the refined boxes fit them far better
    than the jittered boxes it was given."""
    torch.manual_seed(0)
    size, n = 64, 48
    colours, truth = torch.zeros(n, 3, size, size), torch.zeros(n, 4)
    for i in range(n):
        x1, y1 = torch.randint(4, 30, (2,)).tolist()
        w, h = torch.randint(10, 28, (2,)).tolist()
        colours[i, :, y1 : y1 + h, x1 : x1 + w] = 1.0
        truth[i] = torch.tensor([x1, y1, x1 + w, y1 + h]) / size
    detail = torch.zeros(n, 4, 8, 8)  # no stride-16 features: the colours alone must do
    core = CoreFacts(image_size=64, dim=32, text_dim=8, heads=4, ffn_dim=64, max_tokens=12, level_channels={16: 4})
    refiner = BoxRefiner(RefineOptions(bins=7, grow=1.5), core, hidden=64)
    assert (refiner.bins, refiner.grow) == (7, 1.5)
    opt = torch.optim.Adam(refiner.parameters(), lr=3e-3)
    rows = torch.arange(n)
    for _ in range(300):
        loss = (refiner.refine(detail, colours, rows, jitter_boxes(truth)) - truth).abs().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    given = jitter_boxes(truth)
    with torch.no_grad():
        refined = refiner.refine(detail, colours, rows, given)
    before, after = box_iou(given, truth).diagonal(), box_iou(refined, truth).diagonal()
    assert after.mean() > before.mean() + 0.15 and after.mean() > 0.8, (before.mean(), after.mean())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stride16_detail": False}, "stride16_detail"),
        ({"stages": {"refine": {"bins": 0}}}, r"stages\.refine\.bins"),
        ({"stages": {"refine": {"grow": 0.5}}}, r"stages\.refine\.grow"),
    ],
)
def test_refine_config_errors(change, message):
    with pytest.raises(ValueError, match=message):
        model_config(**{**REFINE, **change})
