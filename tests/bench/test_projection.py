"""The GPU projection: its arithmetic from FLOPs, its ranges and its errors."""

from __future__ import annotations

import pytest

from rsvg.bench.projection import DDP_EFFICIENCY, TRAINING_FLOPS_PER_FORWARD, Accelerator, project_training

ONE = (Accelerator("test GPU", "bf16", 100.0),)


def test_one_gpu_rate_is_peak_times_utilisation_over_training_flops() -> None:
    p = project_training(50.0, expressions=1000, epochs=10, gpu_counts=(1,), accelerators=ONE)
    (row,) = p["rows"]
    per_image = TRAINING_FLOPS_PER_FORWARD * 50e9
    lo, hi = p["utilisation"]
    assert row["images_per_s"] == pytest.approx([100e12 * lo / per_image, 100e12 * hi / per_image])
    # the epoch range runs from the fast (high utilisation) to the slow end
    assert row["epoch_min"] == pytest.approx([1000 / row["images_per_s"][1] / 60, 1000 / row["images_per_s"][0] / 60])
    assert row["run_h"] == pytest.approx([m * 10 / 60 for m in row["epoch_min"]])
    assert p["training_gflops_per_image"] == pytest.approx(150.0)


def test_eight_gpus_scale_with_the_ddp_efficiency() -> None:
    p = project_training(50.0, expressions=1000, gpu_counts=(1, 8), accelerators=ONE)
    one, eight = p["rows"]
    assert (one["gpus"], eight["gpus"]) == (1, 8)
    for a, b in zip(one["images_per_s"], eight["images_per_s"], strict=True):
        assert b == pytest.approx(8 * DDP_EFFICIENCY * a)
    assert eight["epoch_min"][0] < one["epoch_min"][0]


def test_loader_workers_cover_the_fast_end() -> None:
    p = project_training(50.0, expressions=1000, gpu_counts=(1,), accelerators=ONE, loader_samples_per_s_per_worker=7.0)
    (row,) = p["rows"]
    assert row["loader_workers"] * 7.0 >= row["images_per_s"][1] > (row["loader_workers"] - 1) * 7.0
    assert "loader_workers" not in project_training(50.0, expressions=10, accelerators=ONE)["rows"][0]


def test_the_default_table_has_the_papers_gpu_and_marks_itself_a_projection() -> None:
    p = project_training(85.0, expressions=26_991)
    names = {r["accelerator"] for r in p["rows"]}
    assert any("1080 Ti" in n for n in names) and len(p["rows"]) == 2 * len(names)
    assert "projection" in p["kind"] and p["epochs"] == 150


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"forward_gflops": 0.0}, "positive"),
        ({"expressions": 0}, "positive"),
        ({"utilisation": (0.5, 0.2)}, "utilisation"),
        ({"utilisation": (0.0, 0.2)}, "utilisation"),
    ],
)
def test_bad_input_is_named(kwargs: dict, message: str) -> None:
    args = {"forward_gflops": 50.0, "expressions": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        project_training(args.pop("forward_gflops"), **args)
