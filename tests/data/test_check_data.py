"""`rsvg check-data` on healthy and broken datasets."""

import json

from typer.testing import CliRunner

from helpers.datasets import make_official_dataset, write_official_xml
from rsvg.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["check-data", *map(str, args)], terminal_width=200)


def test_healthy_official_layout(official_dataset, tmp_path):
    res = run(official_dataset, "--json", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    assert "OK" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["kind"] == "grounding"
    assert (data["images"], data["objects"]) == (3, 6)
    assert data["split_counts"] == {"train": 3, "val": 1, "test": 2}
    assert data["categories"]["ship"] == 2
    assert data["expression_words"]["min"] == 4 and data["expression_words"]["max"] == 7
    assert data["shared_images"]["train/test"] == 2  # 00002 and 00003 are in both
    assert data["problems"] == []


def test_overlapping_and_out_of_range_indices(tmp_path):
    root = make_official_dataset(tmp_path / "ds", {"train": [0, 1, 2], "val": [2, 3], "test": [4, 5, 17]})
    res = run(root)
    assert res.exit_code == 1
    assert "overlapping_splits" in res.output and "[2]" in res.output
    assert "index_out_of_range" in res.output and "17" in res.output
    assert "BROKEN" in res.output


def test_missing_image_and_empty_description_are_named(tmp_path):
    root = make_official_dataset(tmp_path / "ds")
    (root / "JPEGImages" / "00002.jpg").unlink()
    write_official_xml(
        root / "Annotations" / "00001.xml",
        "00001.jpg",
        200,
        160,
        [{"name": "storagetank", "box": (50, 60, 90, 100), "description": "  "}],
    )
    res = run(root, "--json", tmp_path / "r.json")
    assert res.exit_code == 1
    problems = json.loads((tmp_path / "r.json").read_text())["problems"]
    assert any("missing_image" in p and "00002.jpg" in p for p in problems)
    assert any("00001.xml [object 0]: empty_description" in p for p in problems)
    assert any("unusable_sample_in_split" in p and "index 0" in p for p in problems)


def test_missing_split_file_and_duplicate_expression(tmp_path):
    root = make_official_dataset(tmp_path / "ds")
    (root / "val.txt").unlink()
    write_official_xml(
        root / "Annotations" / "00003.xml",
        "00003.jpg",
        200,
        160,
        [
            {"name": "vehicle", "box": (10, 10, 30, 40), "description": "The vehicle"},
            {"name": "vehicle", "box": (100, 10, 130, 40), "description": "The vehicle."},
        ],
    )
    res = run(root)
    assert res.exit_code == 1
    assert "missing_split_file" in res.output and "val.txt" in res.output
    assert "ambiguous_expression" in res.output


def test_detection_folder_and_unreadable_root(tmp_path):
    res = run(tmp_path / "nothing")
    assert res.exit_code == 2 and "not found" in res.output
    res = run(tmp_path, "--kind", "bogus")
    assert res.exit_code == 2
