"""The one-stage references' random affine augmentation: the box follows the pixels, draws are reproducible and
independent of the image, and a transform that pushes the box out of the image is not kept."""

from __future__ import annotations

import math

import pytest
import torch

from rsvg.data.affine import RandomAffine


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _white_rect(height: int, width: int, box: tuple[int, int, int, int]) -> torch.Tensor:
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = 255
    return image


def _pixels_box(image: torch.Tensor) -> list[float]:
    ys, xs = (image[0] > 127).nonzero(as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1.0, ys.max().item() + 1.0]


@pytest.mark.parametrize("seed", range(8))
def test_the_box_follows_the_pixels(seed: int) -> None:
    box = (60, 90, 220, 170)
    image = _white_rect(300, 400, box)
    aug = RandomAffine(degrees=5, translate=0.1, scale=(0.9, 1.1), shear=2, fill=(0, 0, 0))
    out, moved, query = aug(image, torch.tensor(box, dtype=torch.float64), "the red car on the left", _gen(seed))
    assert query == "the red car on the left" and out.shape == image.shape and out.dtype == torch.uint8
    assert moved.dtype == torch.float64 and moved.shape == (4,)
    # a turned rectangle's corners are where the box around it touches: the pixels' box is the same within a pixel
    assert max(abs(a - b) for a, b in zip(moved.tolist(), _pixels_box(out), strict=True)) <= 1.5
    assert not torch.equal(out, image)


def test_the_draws_match_their_ranges_and_do_not_depend_on_the_image() -> None:
    aug = RandomAffine(degrees=5, translate=0.1, scale=(0.9, 1.1), shear=2)
    draws = [aug.draw(_gen(s)) for s in range(400)]
    angles = [d[1] for d in draws]
    assert all(d[0] for d in draws) and max(map(abs, angles)) <= 5 and max(angles) > 4.5 and min(angles) < -4.5
    assert all(abs(v) <= 0.1 for d in draws for v in d[2]) and all(0.9 <= d[3] <= 1.1 for d in draws)
    assert all(abs(v) <= 2 for d in draws for v in d[4])
    # the stream after the augmentation is the same whatever the image and whether it fired
    after = []
    for (height, width), p in (((20, 30), 1.0), ((50, 40), 0.0)):
        image = torch.zeros(3, height, width, dtype=torch.uint8)
        g = _gen(3)
        RandomAffine(p=p)(image, torch.tensor([2.0, 2.0, 10.0, 10.0]), "", g)
        after.append(torch.rand(1, generator=g).item())
    assert after[0] == after[1]


def test_a_pure_turn_keeps_the_centre_and_grows_the_box_as_the_formula_says() -> None:
    aug = RandomAffine(degrees=5, translate=0.0, scale=(1.0, 1.0), shear=0.0)
    box = torch.tensor([150.0, 100.0, 250.0, 140.0], dtype=torch.float64)  # centred in a 400 x 240 image
    image = _white_rect(240, 400, (150, 100, 250, 140))
    _, angle, *_ = aug.draw(_gen(5))
    _, moved, _ = aug(image, box, "", _gen(5))
    theta = math.radians(abs(angle))
    w = 100 * math.cos(theta) + 40 * math.sin(theta)
    h = 100 * math.sin(theta) + 40 * math.cos(theta)
    expected = [200 - w / 2, 120 - h / 2, 200 + w / 2, 120 + h / 2]
    assert moved.tolist() == pytest.approx(expected, abs=1e-3)


def test_a_box_pushed_out_of_the_image_keeps_the_sample_unchanged() -> None:
    # a box on the image's edge, shifted by up to 90 % of the side: most draws leave less than 90 % of it inside
    aug = RandomAffine(degrees=0, translate=0.9, scale=(1, 1), shear=0, min_visible=0.9)
    image = _white_rect(100, 100, (0, 0, 20, 20))
    box = torch.tensor([0.0, 0.0, 20.0, 20.0], dtype=torch.float64)
    kept = unchanged = 0
    for seed in range(40):
        out, moved, _ = aug(image, box, "", _gen(seed))
        if torch.equal(out, image) and torch.equal(moved, box):
            unchanged += 1
        else:
            kept += 1
            inside = (moved[2] - moved[0]) * (moved[3] - moved[1])
            assert inside >= 0.9 * 400 - 1e-6 and moved.min() >= 0 and moved.max() <= 100
    assert unchanged > 10 and kept > 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"degrees": -1}, "degrees"),
        ({"translate": 1.0}, "translate"),
        ({"scale": (1.1, 0.9)}, "scale"),
        ({"shear": 90}, "shear"),
        ({"p": 2}, "p"),
        ({"min_visible": 1.5}, "min_visible"),
        ({"fill": (1, 2)}, "fill"),
    ],
)
def test_bad_options_name_themselves(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"affine {name}"):
        RandomAffine(**kwargs)
