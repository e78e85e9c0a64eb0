"""Tests for letterbox, normalisation and the training augmentations (boxes checked against drawn masks)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from rsvg.data.spatial_words import remap_query
from rsvg.data.transforms import (
    DEFAULT_TRAIN_AUGMENTATION,
    IMAGENET_FILL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ColorJitter,
    Compose,
    RandomHorizontalFlip,
    RandomRotate90,
    RandomScaleCrop,
    RandomVerticalFlip,
    build_train_transforms,
    denormalize,
    letterbox,
    normalize,
    rot90_box,
)

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _box(*xyxy: float) -> torch.Tensor:
    return torch.tensor(xyxy, dtype=F64)


def _draw(height: int, width: int, *boxes: tuple[int, int, int, int]) -> torch.Tensor:
    """A uint8 image with box i filled in channel i (value 255), integer boxes."""
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    for channel, (x1, y1, x2, y2) in enumerate(boxes):
        image[channel, y1:y2, x1:x2] = 255
    return image


def _mask_box(channel: torch.Tensor, threshold: int = 127) -> torch.Tensor:
    """Bounding box (continuous coordinates, no +1) of the pixels above ``threshold``."""
    ys, xs = (channel > threshold).nonzero(as_tuple=True)
    return _box(xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)


# --------------------------------------------------------------------------------------------------
# Letterbox
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("height", "width"),
    [(50, 100), (100, 50), (1, 1), (1, 1000), (1000, 1), (37, 61), (800, 800), (640, 640), (900, 700), (3, 2)],
)
def test_letterbox_geometry(height: int, width: int) -> None:
    size = 64
    image = torch.full((3, height, width), 200, dtype=torch.uint8)
    canvas, mask, params = letterbox(image, size)
    assert canvas.shape == (3, size, size) and canvas.dtype == torch.uint8
    assert mask.shape == (size, size) and mask.dtype == torch.bool
    assert params.scale == size / max(height, width)
    assert max(params.resized_w, params.resized_h) == size
    # The content region is exactly the non-padding region, centred, and the image box maps onto it.
    assert (~mask).sum() == params.resized_w * params.resized_h
    assert abs(2 * params.pad_x + params.resized_w - size) <= 1
    assert abs(2 * params.pad_y + params.resized_h - size) <= 1
    content = _mask_box((~mask).to(torch.uint8) * 255)
    assert torch.equal(params.box_to_network(_box(0, 0, width, height)), content)
    assert (canvas[:, ~mask] == 200).all()
    fill = torch.tensor(IMAGENET_FILL, dtype=torch.uint8)[:, None]
    assert (canvas[:, mask] == fill).all()


def test_imagenet_fill_is_the_mean_colour() -> None:
    assert tuple(round(255 * m) for m in IMAGENET_MEAN) == IMAGENET_FILL


def test_letterbox_custom_fill_and_no_resize() -> None:
    image = torch.randint(0, 256, (3, 64, 32), dtype=torch.uint8)
    canvas, mask, params = letterbox(image, 64, fill=7)
    assert params.scale == 1 and (params.pad_x, params.pad_y) == (16, 0)
    assert torch.equal(canvas[:, :, 16:48], image)
    assert (canvas[:, mask] == 7).all()


def test_letterbox_box_follows_the_pixels() -> None:
    image = _draw(300, 500, (100, 60, 220, 180))
    canvas, _, params = letterbox(image, 100)
    mapped = params.box_to_network(_box(100, 60, 220, 180))
    assert torch.allclose(mapped, _mask_box(canvas[0]), atol=1.0)


def test_letterbox_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        letterbox(torch.zeros(10, 10, dtype=torch.uint8))
    with pytest.raises(ValueError):
        letterbox(torch.zeros(3, 0, 10, dtype=torch.uint8))


@pytest.mark.parametrize(("height", "width"), [(37, 61), (800, 800), (1, 999), (999, 3), (613, 211)])
def test_letterbox_box_maps_are_exact_inverses(height: int, width: int) -> None:
    _, _, params = letterbox(torch.zeros(3, height, width, dtype=torch.uint8), 640)
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 1, size=(50, 4)) * [width, height, width, height]
    # numpy (N, 4)
    back = params.box_to_original(params.box_to_network(boxes))
    assert isinstance(back, np.ndarray) and back.dtype == np.float64
    np.testing.assert_allclose(back, boxes, rtol=0, atol=1e-9)
    # tensors (N, 4) and (4,), both directions
    t = torch.from_numpy(boxes)
    assert torch.allclose(params.box_to_original(params.box_to_network(t)), t, rtol=0, atol=1e-9)
    assert torch.allclose(params.box_to_network(params.box_to_original(t)), t, rtol=0, atol=1e-9)
    one = params.box_to_network(t[0])
    assert one.shape == (4,) and one.dtype == F64
    assert torch.allclose(params.box_to_original(one), t[0], rtol=0, atol=1e-9)
    # lists, and float32 tensors keep their dtype
    assert isinstance(params.box_to_network([1.0, 2.0, 3.0, 4.0]), np.ndarray)
    assert params.box_to_network(t.float()).dtype == torch.float32
    assert params.box_to_network(torch.tensor([1, 2, 3, 4])).dtype == F64
    with pytest.raises(ValueError):
        params.box_to_network(torch.zeros(3))


def test_letterbox_box_map_formula() -> None:
    _, _, params = letterbox(torch.zeros(3, 50, 100, dtype=torch.uint8), 200)
    assert (params.scale_x, params.scale_y, params.pad_x, params.pad_y) == (2.0, 2.0, 0, 50)
    assert torch.equal(params.box_to_network(_box(10, 20, 30, 40)), _box(20, 90, 60, 130))


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------
def test_normalize_values_and_padding() -> None:
    image = torch.randint(0, 256, (3, 30, 50), dtype=torch.uint8)
    canvas, mask, _ = letterbox(image, 64)
    x = normalize(canvas, IMAGENET_MEAN, IMAGENET_STD, mask)
    assert x.dtype == torch.float32 and x.shape == (3, 64, 64)
    assert (x[:, mask] == 0).all()
    mean = torch.tensor(IMAGENET_MEAN)[:, None]
    std = torch.tensor(IMAGENET_STD)[:, None]
    expected = (canvas[:, ~mask].float() / 255 - mean) / std
    assert torch.allclose(x[:, ~mask], expected, atol=1e-6)
    # Without the mask the mean-colour padding is already close to 0.
    assert normalize(canvas)[:, mask].abs().max() < 0.01
    # Batches with a batch of masks.
    xb = normalize(torch.stack([canvas, canvas]), pad_mask=torch.stack([mask, mask]))
    assert torch.equal(xb[1], x)
    assert torch.equal(denormalize(x)[:, ~mask], canvas[:, ~mask])


def test_normalize_custom_statistics() -> None:
    image = torch.full((3, 2, 2), 255, dtype=torch.uint8)
    x = normalize(image, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0))
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 2.0, 0.5]))


# --------------------------------------------------------------------------------------------------
# Geometric augmentations: boxes against drawn masks, queries against the drawn geometry
# --------------------------------------------------------------------------------------------------
def test_flips_match_the_convention() -> None:
    image = torch.zeros(3, 50, 100, dtype=torch.uint8)
    _, box, _ = RandomHorizontalFlip(1.0)(image, _box(10, 20, 30, 40), "", _gen(0))
    assert torch.equal(box, _box(70, 20, 90, 40)) and box.dtype == F64
    _, box, _ = RandomVerticalFlip(1.0)(image, _box(10, 20, 30, 40), "", _gen(0))
    assert torch.equal(box, _box(10, 10, 30, 30))
    _, box, _ = RandomHorizontalFlip(1.0)(image, _box(10.25, 20.5, 30.75, 40), "", _gen(0))
    assert torch.equal(box, _box(69.25, 20.5, 89.75, 40))


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rot90_box_against_mask_and_torchvision(k: int) -> None:
    height, width = 50, 80
    xyxy = (10, 5, 30, 45)
    rotated = torch.rot90(_draw(height, width, xyxy), k, dims=(-2, -1))
    box = rot90_box(_box(*xyxy), k, height, width)
    assert torch.equal(box, _mask_box(rotated[0]))
    # torchvision's rotate (positive angle = counter-clockwise) agrees, up to its cos/sin rounding.
    fractional = _box(10.3, 5.7, 30.1, 44.9)
    reference = F.rotate(
        tv_tensors.BoundingBoxes(fractional[None], format="XYXY", canvas_size=(height, width)), 90 * k, expand=True
    )
    assert torch.allclose(rot90_box(fractional, k, height, width), reference[0], atol=1e-9)


def _first_seed_with_k(k: int) -> int:
    for seed in range(100):
        image = torch.arange(6, dtype=torch.uint8).reshape(1, 2, 3).expand(3, 2, 3)
        out, _, _ = RandomRotate90(1.0)(image, _box(0, 0, 1, 1), "", _gen(seed))
        if torch.equal(out, torch.rot90(image, k, dims=(-2, -1))):
            return seed
    raise AssertionError(f"no seed gives k={k}")


AUGMENTATIONS = {
    "hflip": (RandomHorizontalFlip(1.0), 0),
    "vflip": (RandomVerticalFlip(1.0), 0),
    "rot90": (RandomRotate90(1.0), 1),
    "rot180": (RandomRotate90(1.0), 2),
    "rot270": (RandomRotate90(1.0), 3),
}


def _relation(a: torch.Tensor, b: torch.Tensor) -> str:
    """Canonical phrase for where box a lies relative to box b (their centres)."""
    dx = int(torch.sign((a[0] + a[2]) - (b[0] + b[2])).item())
    dy = int(torch.sign((a[1] + a[3]) - (b[1] + b[3])).item())
    vertical = {-1: "upper", 0: "", 1: "lower"}[dy]
    horizontal = {-1: "left", 0: "", 1: "right"}[dx]
    if vertical and horizontal:
        return f"on the {vertical} {horizontal} of"
    if horizontal:
        return f"on the {horizontal} of"
    return "above" if dy < 0 else "below"


def _location(box: torch.Tensor, height: int, width: int) -> str:
    """Canonical absolute location of a box in one of the four corners of the image."""
    vertical = "upper" if (box[1] + box[3]) / 2 < height / 2 else "lower"
    horizontal = "left" if (box[0] + box[2]) / 2 < width / 2 else "right"
    return f"on the {vertical} {horizontal}"


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
@pytest.mark.parametrize(
    ("target", "other"),
    [
        ((5, 10, 20, 20), (40, 8, 60, 22)),  # left of
        ((40, 2, 55, 12), (38, 30, 60, 45)),  # above
        ((5, 3, 15, 13), (50, 30, 70, 45)),  # upper left of
        ((60, 35, 75, 45), (10, 5, 30, 15)),  # lower right of
    ],
)
def test_geometric_augmentations_keep_box_and_query_true(
    name: str, target: tuple[int, int, int, int], other: tuple[int, int, int, int]
) -> None:
    height, width = 50, 80
    aug, k = AUGMENTATIONS[name]
    seed = _first_seed_with_k(k) if k else 0
    image = _draw(height, width, target, other)
    relation = _relation(_box(*target), _box(*other))
    location = _location(_box(*target), height, width)
    query = f"The ship {location} is {relation} the dam"
    out, box, new_query = aug(image, _box(*target), query, _gen(seed))
    # The box is exactly the bounding box of the transformed target mask.
    assert torch.equal(box, _mask_box(out[0]))
    # The remapped query names the relation and location that the transformed geometry shows.
    new_h, new_w = out.shape[-2:]
    expected = f"The ship {_location(box, new_h, new_w)} is {_relation(box, _mask_box(out[1]))} the dam"
    assert new_query == expected
    assert new_query == remap_query(query, name)


def test_augmentations_with_p_zero_do_nothing() -> None:
    image = torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8)
    for aug in (
        RandomHorizontalFlip(0.0),
        RandomVerticalFlip(0.0),
        RandomRotate90(0.0),
        ColorJitter(p=0.0),
        RandomScaleCrop(p=0.0),
    ):
        out, box, query = aug(image, _box(1, 2, 3, 4), "the left ship", _gen(0))
        assert out is image and torch.equal(box, _box(1, 2, 3, 4)) and query == "the left ship"


def test_rotate90_draws_all_quarter_turns_and_handles_box_batches() -> None:
    image = torch.zeros(3, 20, 30, dtype=torch.uint8)
    boxes = _box(1, 2, 3, 4, 5, 6, 7, 8).reshape(2, 4)
    shapes = set()
    for seed in range(40):
        out, new_boxes, _ = RandomRotate90(1.0)(image, boxes, "", _gen(seed))
        shapes.add(tuple(out.shape))
        assert new_boxes.shape == (2, 4)
    assert shapes == {(3, 30, 20), (3, 20, 30)}
    for k in (1, 2, 3):
        assert _first_seed_with_k(k) >= 0


# --------------------------------------------------------------------------------------------------
# Colour jitter
# --------------------------------------------------------------------------------------------------
def _hue_degrees(pixel: torch.Tensor) -> float:
    r, g, b = (pixel.double() / 255).tolist()
    return 360 * colorsys.rgb_to_hsv(r, g, b)[0]


def test_color_jitter_keeps_hue_box_and_query() -> None:
    colours = [(150, 90, 30), (40, 140, 60), (50, 60, 170), (160, 40, 120), (90, 90, 90)]
    image = torch.tensor(colours, dtype=torch.uint8).T.reshape(3, 1, len(colours)).repeat(1, 8, 1)
    jitter = ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)
    changed = 0
    for seed in range(30):
        out, box, query = jitter(image, _box(1, 2, 3, 4), "the red car", _gen(seed))
        assert out.dtype == torch.uint8 and out.shape == image.shape
        assert torch.equal(box, _box(1, 2, 3, 4)) and query == "the red car"
        changed += not torch.equal(out, image)
        for i in range(len(colours) - 1):  # the gray pixel has no hue
            before, after = _hue_degrees(image[:, 0, i]), _hue_degrees(out[:, 0, i])
            assert abs((after - before + 180) % 360 - 180) < 3.0, (seed, colours[i])
    assert changed == 30


def test_color_jitter_validates() -> None:
    with pytest.raises(ValueError):
        ColorJitter(brightness=-0.1)
    with pytest.raises(ValueError):
        ColorJitter(p=1.5)


# --------------------------------------------------------------------------------------------------
# Scale crop
# --------------------------------------------------------------------------------------------------
def test_scale_crop_always_keeps_the_whole_box() -> None:
    rng = np.random.default_rng(0)
    crop = RandomScaleCrop(scale_range=(1.0, 3.0), p=1.0)
    cropped = 0
    for seed in range(300):
        height, width = (int(v) for v in rng.integers(8, 60, size=2))
        x1, x2 = sorted(int(v) for v in rng.choice(width + 1, size=2, replace=False))
        y1, y2 = sorted(int(v) for v in rng.choice(height + 1, size=2, replace=False))
        image = _draw(height, width, (x1, y1, x2, y2))
        image[1] = torch.randint(0, 256, (height, width), generator=_gen(seed), dtype=torch.uint8)
        out, box, query = crop(image, _box(x1, y1, x2, y2), "the left ship", _gen(seed))
        assert query == "the left ship"
        assert torch.equal(box, _mask_box(out[0]))  # whole box inside, mapped exactly
        # A pure whole-pixel translation: the output is the original window at that offset.
        dx, dy = int(x1 - box[0].item()), int(y1 - box[1].item())
        out_h, out_w = out.shape[-2:]
        assert torch.equal(out, image[:, dy : dy + out_h, dx : dx + out_w])
        cropped += (out_h, out_w) != (height, width)
    assert cropped > 200


def test_scale_crop_fractional_and_odd_boxes() -> None:
    crop = RandomScaleCrop(scale_range=(1.5, 1.5), p=1.0)
    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    for seed in range(50):
        box = _box(10.3, 20.7, 30.1, 36.9)
        out, new, _ = crop(image, box, "", _gen(seed))
        shift = box - new
        assert shift[0] == shift[2] and shift[1] == shift[3] and shift[0] % 1 == 0 and shift[1] % 1 == 0
        assert new[0] >= 0 and new[1] >= 0 and new[2] <= out.shape[-1] and new[3] <= out.shape[-2]
        assert out.shape[-2:] == (27, 40)
    # A box covering the whole image cannot be cropped; a degenerate box and one sticking out do not fail.
    out, new, _ = crop(image, _box(0, 0, 60, 40), "", _gen(0))
    assert out.shape == image.shape and torch.equal(new, _box(0, 0, 60, 40))
    for odd in (_box(5, 5, 5, 5), _box(-10, -5, 70, 20), _box(30, 10, 20, 5)):
        crop(image, odd, "", _gen(0))


def test_scale_crop_resize_to_input() -> None:
    crop = RandomScaleCrop(scale_range=(1.2, 1.6), p=1.0, resize_to_input=True)
    for seed in range(20):
        image = _draw(120, 160, (50, 40, 90, 80))
        out, box, _ = crop(image, _box(50, 40, 90, 80), "", _gen(seed))
        assert out.shape == image.shape
        assert torch.allclose(box, _mask_box(out[0]), atol=1.0)
        assert box[2] - box[0] > 40  # zoomed in


def test_scale_crop_validates() -> None:
    with pytest.raises(ValueError):
        RandomScaleCrop(scale_range=(0.8, 1.2))
    with pytest.raises(ValueError):
        RandomScaleCrop(scale_range=(1.5, 1.2))


# --------------------------------------------------------------------------------------------------
# Factory and determinism
# --------------------------------------------------------------------------------------------------
def test_build_train_transforms() -> None:
    default = build_train_transforms()
    assert [type(t).__name__ for t in default.transforms] == [
        "RandomScaleCrop",
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "RandomRotate90",
        "ColorJitter",
    ]
    only_flip = build_train_transforms(
        {"hflip": 1.0, "vflip": 0, "rot90": None, "color_jitter": None, "scale_crop": None}
    )
    assert [type(t).__name__ for t in only_flip.transforms] == ["RandomHorizontalFlip"]
    custom = build_train_transforms({"scale_crop": {"scale_range": (1.0, 1.1), "p": 1.0}})
    assert custom.transforms[0].scale_range == (1.0, 1.1)
    assert set(DEFAULT_TRAIN_AUGMENTATION) == {"hflip", "vflip", "rot90", "color_jitter", "scale_crop", "affine"}
    with_affine = build_train_transforms({"affine": {"degrees": 3.0}, "color_jitter": None})
    assert [type(t).__name__ for t in with_affine.transforms][-1] == "RandomAffine"
    assert with_affine.transforms[-1].degrees == 3.0 and with_affine.transforms[-1].translate == 0.1
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_train_transforms({"hue": 0.1})
    assert isinstance(Compose([]), Compose)


def test_pipeline_is_deterministic_per_seed() -> None:
    aug = build_train_transforms()
    image = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=_gen(123))
    box, query = _box(10, 12, 30, 40), "The gray vehicle on the upper left of the bridge"
    outcomes = set()
    for seed in range(12):
        first = aug(image, box, query, _gen(seed))
        second = aug(image, box, query, _gen(seed))
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[2] == second[2]
        outcomes.add((tuple(first[0].shape), tuple(first[1].tolist()), first[2]))
    assert len(outcomes) > 6


def test_pipeline_then_letterbox_keeps_the_box_on_the_object() -> None:
    aug = build_train_transforms({"scale_crop": {"scale_range": (1.0, 1.5), "p": 1.0}})
    for seed in range(10):
        image = _draw(60, 90, (20, 10, 50, 40))
        out, box, _ = aug(image, _box(20, 10, 50, 40), "", _gen(seed))
        canvas, mask, params = letterbox(out, 128)
        network_box = params.box_to_network(box)
        assert torch.allclose(network_box, _mask_box(canvas[0], threshold=127), atol=1.0)
        assert not mask[int(network_box[1]) : int(network_box[3]), int(network_box[0]) : int(network_box[2])].any()
