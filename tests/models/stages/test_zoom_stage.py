"""The second look at small objects (model.stages.zoom): geometry, crops, the model's two paths, its loss, its cache."""

import numpy as np
import pytest
import torch

from helpers.datasets import write_image
from helpers.models import TINY, model_config
from rsvg.data.dataset import RSVGDataset
from rsvg.data.records import DatasetError
from rsvg.data.transforms import RandomHorizontalFlip, letterbox, letterbox_geometry, normalize
from rsvg.engine.feature_cache import compute_image_features
from rsvg.models.backbones import build_backbone
from rsvg.models.build import build_model
from rsvg.models.loss import LossConfig
from rsvg.models.stages import check_augmentation
from rsvg.models.stages.zoom import (
    ZoomCrops,
    crop_map,
    crop_windows,
    from_window,
    needs_zoom,
    to_window,
    window_origins,
    window_token_padding,
)
from rsvg.models.stages.zoom_canvas import ZoomCanvas, zoom_letterbox

ZOOM = {
    **TINY,
    "freeze_backbone": True,
    "stride16_detail": True,
    "head": "cells",
    "stages": {"zoom": {"window": 32, "jitter": 8.0, "max_side": 24.0}},
}


def with_zoom(**options):
    """ZOOM with the second look's options changed."""
    return {**ZOOM, "stages": {"zoom": {**ZOOM["stages"]["zoom"], **options}}}


@pytest.fixture(scope="module")
def zoom_model():
    torch.manual_seed(0)
    return build_model(model_config(**ZOOM)).eval()


def compute_zoom_crops(model, samples, device, seed=0) -> ZoomCrops:
    """The second look's training crops, encoded once by its stage."""
    return model.stages["zoom"].prepare_training(model, samples, device, seed=seed)


def test_windows_lie_inside_the_canvas_and_map_boxes_both_ways():
    boxes = torch.tensor([[0.0, 0.0, 0.05, 0.05], [0.45, 0.45, 0.55, 0.55], [0.95, 0.9, 1.0, 1.0]])
    origins = window_origins(boxes, 64, 32)
    assert origins.tolist() == [[0, 0], [16, 16], [32, 32]]  # centred where it fits, moved in at the borders
    inside = to_window(boxes, origins, 64, 32)
    assert torch.allclose(inside[1], torch.tensor([0.4, 0.4, 0.6, 0.6]))
    assert torch.allclose(from_window(inside, origins, 64, 32), boxes, atol=1e-6)
    assert needs_zoom(boxes, 64, 4.0).tolist() == [True, False, False]  # longer sides 3.2, 6.4, 6.4 px


def test_zoom_letterbox_is_the_letterbox_k_times_finer():
    # a non-square image (padding above and below) with a red square: it lands k times further and larger
    image = torch.zeros(3, 120, 200, dtype=torch.uint8)
    image[0, 40:80, 100:140] = 255
    canvas, pad, params = letterbox(image, 64)
    zoom = zoom_letterbox(image, params, 2)
    assert zoom.shape == (3, 128, 128) and zoom.dtype == torch.uint8
    red = canvas[0] > 128
    red2 = zoom[0] > 128
    ys, xs = red.nonzero().T
    ys2, xs2 = red2.nonzero().T
    assert abs(int(ys2.min()) - 2 * int(ys.min())) <= 1 and abs(int(xs2.max()) - (2 * int(xs.max()) + 1)) <= 1
    # the image area is the same, k times larger: padding rows of the input are padding rows here
    image_rows = (~pad).any(1).nonzero().flatten()
    assert (zoom[:, : 2 * int(image_rows.min())] == canvas[:, :1, :1]).all()
    with pytest.raises(ValueError, match="scale"):
        zoom_letterbox(image, params, 0)


def test_crops_are_normalised_slices_with_padding_zeroed():
    image = torch.randint(0, 256, (3, 100, 200), dtype=torch.uint8)
    _, pad, params = letterbox(image, 64)
    zoom = zoom_letterbox(image, params, 2)
    origins = torch.tensor([[10, 0], [32, 16]])
    crops, mask = crop_windows(
        zoom.expand(2, -1, -1, -1), pad.expand(2, -1, -1), origins, 32, 2, (0.5,) * 3, (0.25,) * 3
    )
    assert crops.shape == (2, 3, 64, 64) and mask.shape == (2, 32, 32)
    assert torch.equal(mask[0], pad[0:32, 10:42])
    fine_pad = pad.repeat_interleave(2, 0).repeat_interleave(2, 1)
    expected = normalize(zoom, (0.5,) * 3, (0.25,) * 3, fine_pad)[:, 32:96, 64:128]
    assert torch.allclose(crops[1], expected, atol=1e-6)
    assert (crops[0][:, :16][fine_pad[:16, 20:84].expand(3, -1, -1)] == 0).all()  # the top rows are padding


def test_an_all_padding_window_keeps_its_tokens():
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[0] = True
    mask[1, :4] = True
    tokens = window_token_padding(mask, 2)
    assert tokens[0].tolist() == [False] * 4  # nothing valid: every token stays, the softmax is defined
    assert tokens[1].tolist() == [True, True, False, False]


def test_backbone_stops_at_the_asked_stride():
    torch.manual_seed(0)
    for name in ("efficientnet_lite0", "resnet50"):
        bb = build_backbone(name, pretrained=False, return_levels=(8, 16, 32)).eval()
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            full, part = bb(x), bb(x, up_to=16)
        assert len(part) == 2 and all(torch.equal(a, b) for a, b in zip(full[:2], part, strict=True))
        with pytest.raises(ValueError, match="up_to=4"):
            bb(x, up_to=4)


def inputs(batch=3):
    torch.manual_seed(1)
    image = torch.randn(batch, 3, 64, 64)
    pad = torch.zeros(batch, 64, 64, dtype=torch.bool)
    pad[0, 48:] = True
    ids = torch.randint(1000, 5000, (batch, 6))
    mask = torch.ones(batch, 6, dtype=torch.long)
    zoom = torch.randint(0, 256, (batch, 3, 128, 128), dtype=torch.uint8)
    return image, pad, ids, mask, zoom


def test_inference_looks_again_only_at_small_first_boxes(zoom_model):
    image, pad, ids, mask, zoom = inputs()
    with torch.no_grad():
        first = zoom_model(image, pad, ids, mask)
    assert "zoom" not in first.stages  # no zoom canvas: the first look answers
    # a threshold between the first boxes' sizes: some get a second look, some do not
    sides = ((first.boxes[:, 2:] - first.boxes[:, :2]).amax(1) * 64).sort().values
    threshold = float(sides[1] + sides[2]) / 2
    assert sides[1] < sides[2], "the random model must give boxes of different sizes"
    zoom_model.stages["zoom"].options.max_side = threshold
    try:
        with torch.no_grad():
            out = zoom_model(image, pad, ids, mask, extras={"zoom_image": zoom})
    finally:
        zoom_model.stages["zoom"].options.max_side = 24.0
    look = out.stages["zoom"]
    assert torch.allclose(look.first_boxes, first.boxes)
    small = needs_zoom(first.boxes, 64, threshold)
    assert 0 < int(small.sum()) < 3
    assert look.rows.tolist() == small.nonzero().flatten().tolist()
    assert torch.equal(out.boxes[~small], first.boxes[~small])
    # the replaced boxes are the second look's best cells, mapped back from their windows
    rows = look.rows
    best = look.boxes[torch.arange(len(rows)), look.scores.argmax(1)]
    assert torch.allclose(out.boxes[rows], from_window(best, look.origins, 64, 32), atol=1e-6)
    assert look.scores.shape[1] == 16  # 32-px window at 2x: a 4x4 grid of stride-16 tokens


def test_inference_with_every_first_box_large_changes_nothing(zoom_model):
    image, pad, ids, mask, zoom = inputs()
    zoom_model.stages["zoom"].options.max_side = 0.001
    try:
        with torch.no_grad():
            out = zoom_model(image, pad, ids, mask, extras={"zoom_image": zoom})
            plain = zoom_model(image, pad, ids, mask)
    finally:
        zoom_model.stages["zoom"].options.max_side = 24.0
    look = out.stages["zoom"]  # the second look ran but no sample needed it: a record without rows
    assert len(look.rows) == 0 and len(look.scores) == len(look.boxes) == len(look.origins) == 0
    assert torch.equal(out.boxes, plain.boxes)
    assert torch.equal(look.first_boxes, out.boxes)


def test_training_crops_add_the_second_looks_loss(zoom_model):
    image, pad, ids, mask, _ = inputs()
    model = build_model(model_config(**ZOOM)).train()
    model.load_state_dict(zoom_model.state_dict())
    channels = model.stages["zoom"].channels
    features = torch.randn(3, channels, 4, 4)
    origins = torch.tensor([[0, 0], [16, 16], [32, 32]])
    valid = torch.tensor([True, False, True])
    target = torch.tensor([[0.1, 0.1, 0.2, 0.15], [0.4, 0.4, 0.6, 0.6], [0.7, 0.8, 0.75, 0.9]])
    batch = {"box": target * 64}  # the dataset's boxes are in network pixels
    crops = {"zoom_features": features, "zoom_origin": origins, "zoom_valid": valid}
    out = model(image, pad, ids, mask, extras=crops)
    look = out.stages["zoom"]
    assert look.rows.tolist() == [0, 2] and look.first_boxes is None  # training: the first boxes stay
    losses = model.loss(out, batch, LossConfig())
    assert losses["zoom"] > 0
    losses["loss"].backward()
    assert model.stages["zoom"].visual_proj.weight.grad.abs().sum() > 0
    # no sample with a crop: no zoom term, and the first look's loss is unchanged (the same seed for the text
    # encoder's dropout)
    torch.manual_seed(2)
    none = model(image, pad, ids, mask, extras={**crops, "zoom_valid": valid & False})
    assert len(none.stages["zoom"].rows) == 0
    none_losses = model.loss(none, batch, LossConfig())
    assert "zoom" not in none_losses
    torch.manual_seed(2)
    assert torch.equal(none_losses["loss"], model.loss(model(image, pad, ids, mask), batch, LossConfig())["loss"])


def test_config_names_what_is_wrong():
    with pytest.raises(ValueError, match="freeze_backbone"):
        model_config(**{**ZOOM, "freeze_backbone": False})
    with pytest.raises(ValueError, match=r"stages\.zoom\.window"):
        model_config(**with_zoom(window=100))
    with pytest.raises(ValueError, match=r"stages\.zoom\.jitter"):
        model_config(**with_zoom(jitter=16.0))
    with pytest.raises(ValueError, match=r"stages\.zoom\.max_side"):
        model_config(**with_zoom(max_side=0.0))
    assert model_config(**ZOOM).stages["zoom"].grid == 4


def test_training_crops_hold_small_targets_and_match_the_inference_path(official_dataset, zoom_model):
    ds = RSVGDataset(official_dataset, "train", image_size=64)
    crops = compute_zoom_crops(zoom_model, ds.samples, torch.device("cpu"), seed=3)
    again = compute_zoom_crops(zoom_model, ds.samples, torch.device("cpu"), seed=3)
    assert torch.equal(crops.origins, again.origins) and torch.equal(crops.maps, again.maps)  # deterministic
    for s in ds.samples:
        params = letterbox_geometry(s.width, s.height, 64)
        box = np.asarray(params.box_to_network(np.asarray(s.box)))
        small = (box[2:] - box[:2]).max() <= ZOOM["stages"]["zoom"]["max_side"]
        assert (s.index in crops.rows) == small
        if small:  # the target's centre is inside its window
            x0, y0 = crops.origins[crops.rows[s.index]].tolist()
            cx, cy = (box[:2] + box[2:]) / 2
            assert x0 <= cx <= x0 + 32 and y0 <= cy <= y0 + 32
    assert crops.rows, "the fixture must have a small target"
    # a cached crop's maps equal what the model computes from the zoom canvas at inference (up to float16)
    index, row = next(iter(crops.rows.items()))
    sample = next(s for s in ds.samples if s.index == index)
    zoom_ds = RSVGDataset(official_dataset, "train", image_size=64, extras=[ZoomCanvas(2)])
    item = zoom_ds[ds.samples.index(sample)]
    crop, _ = crop_windows(
        item["zoom_image"][None],
        item["padding_mask"][None],
        crops.origins[row][None],
        32,
        2,
        zoom_model.backbone.mean,
        zoom_model.backbone.std,
    )
    with torch.no_grad():
        direct = crop_map(zoom_model.backbone, crop)[0]
    assert torch.allclose(crops.maps[row].float(), direct, atol=2e-2 * float(direct.abs().max()))
    entry = crops.for_sample(-1)
    assert not entry["zoom_valid"] and entry["zoom_features"].shape == crops.maps.shape[1:]


def test_dataset_gives_zoom_canvases_and_refuses_augmentation(official_dataset, zoom_model):
    ds = RSVGDataset(official_dataset, "test", image_size=64, extras=[ZoomCanvas(2)], load_images=False)
    a, b = ds[0], ds[1]
    assert a["zoom_image"].shape == (3, 128, 128) and a["zoom_image"].dtype == torch.uint8
    with_images = RSVGDataset(official_dataset, "test", image_size=64, extras=[ZoomCanvas(2)])[0]
    assert torch.equal(a["zoom_image"], with_images["zoom_image"])  # both paths give the same canvas
    if a["image_id"] == b["image_id"]:
        assert a["zoom_image"] is b["zoom_image"]  # decoded once for an image's consecutive expressions
    flip = RandomHorizontalFlip(1.0)
    with pytest.raises(ValueError, match=r"zoom_canvas .*augmentation"):
        RSVGDataset(official_dataset, "train", image_size=64, extras=[ZoomCanvas(2)], augment=flip)
    # the training crops are encoded once: they cannot follow augmentation either, nor can the model's second look
    augmented = RSVGDataset(official_dataset, "train", image_size=64, augment=flip)
    with pytest.raises(ValueError, match=r"zoom_crops .*augmentation"):
        augmented.add_extra(ZoomCrops(torch.zeros(0, 1, 4, 4, dtype=torch.float16), torch.zeros(0, 2), {}))
    with pytest.raises(ValueError, match=r"model\.stages\.zoom does not work with augmentation"):
        check_augmentation(zoom_model.stage_list(), flip)
    check_augmentation(zoom_model.stage_list(), None)


def test_an_image_whose_size_is_not_the_annotations_is_named(official_dataset, zoom_model):
    ds = RSVGDataset(official_dataset, "train", image_size=64, extras=[ZoomCanvas(2)], load_images=False)
    wrong = ds.samples[0]
    write_image(wrong.image_path, 100, 80, seed=1)  # the annotation says 200x160
    for read in (
        lambda: ds[0],
        lambda: compute_zoom_crops(zoom_model, ds.samples, torch.device("cpu")),
        lambda: compute_image_features(zoom_model, ds.samples, torch.device("cpu")),
    ):
        with pytest.raises(DatasetError, match=rf"{wrong.annotation_path.name}.*200x160.*100x80"):
            read()
