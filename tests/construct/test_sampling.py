"""Box sampling (paper step 1) and the split of expressions."""

from __future__ import annotations

import numpy as np
import pytest

from rsvg.construct.sampling import sample_objects
from rsvg.construct.split import parse_split, split_indices
from rsvg.data.records import DetectionObject


def _objects(specs: list[tuple[str, tuple[float, float, float, float]]]) -> list[DetectionObject]:
    return [DetectionObject(c, b, i) for i, (c, b) in enumerate(specs)]


def test_drops_annotation_errors_and_extreme_sizes_with_reasons() -> None:
    objs = _objects(
        [
            ("vehicle", (10, 10, 10, 20)),  # xmin == xmax
            ("vehicle", (30, 40, 20, 50)),  # xmin > xmax
            ("vehicle", (10, 20, 30, 20)),  # ymin == ymax
            ("vehicle", (0, 0, 11, 11)),  # 121 px < 0.02 % of 800 x 800 = 128 px
            ("vehicle", (0, 0, 12, 11)),  # 132 px: kept
            ("airport", (0, 0, 800, 800)),  # 100 % > 99 %
            ("airport", (0, 0, 796, 800)),  # 99.5 %: still too large
            ("airport", (0, 0, 790, 800)),  # 98.75 %: kept
        ]
    )
    result = sample_objects(objs, 800, 800, np.random.default_rng(0))
    assert result.dropped == {"empty_box": 3, "too_small": 1, "too_large": 2}
    assert result.targets == (4, 7)
    # Too small / too large objects are still in the image: every expression must stay unambiguous w.r.t. them.
    assert result.scene == (3, 4, 5, 6, 7)


def test_at_most_five_per_category_seeded() -> None:
    objs = _objects([("vehicle", (20 * i, 0, 20 * i + 15, 15)) for i in range(12)] + [("ship", (0, 100, 40, 120))])
    a = sample_objects(objs, 800, 800, np.random.default_rng(5))
    b = sample_objects(objs, 800, 800, np.random.default_rng(5))
    assert a == b
    assert a.dropped == {"category_cap": 7}
    assert sum(objs[i].category == "vehicle" for i in a.targets) == 5
    assert 12 in a.targets
    assert list(a.targets) == sorted(a.targets)
    assert len(a.scene) == 13
    others = {sample_objects(objs, 800, 800, np.random.default_rng(s)).targets for s in range(10)}
    assert len(others) > 1  # the choice is random, not the first five


def test_split_indices_cover_and_are_disjoint() -> None:
    splits = split_indices(1000, (0.7, 0.1, 0.2), seed=3)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [700, 100, 200]
    everything = splits["train"] + splits["val"] + splits["test"]
    assert sorted(everything) == list(range(1000))
    assert split_indices(1000, (0.7, 0.1, 0.2), seed=3) == splits
    assert split_indices(1000, (0.7, 0.1, 0.2), seed=4) != splits
    assert [len(v) for v in split_indices(10, (0.4, 0.1, 0.5)).values()] == [4, 1, 5]


def test_parse_split() -> None:
    assert parse_split("0.7,0.1,0.2") == pytest.approx((0.7, 0.1, 0.2))
    assert parse_split("40,10,50") == pytest.approx((0.4, 0.1, 0.5))
    for bad in ("0.7,0.1", "a,b,c", "0.5,0.5,0.5", "-0.1,0.6,0.5", ""):
        with pytest.raises(ValueError):
            parse_split(bad)
