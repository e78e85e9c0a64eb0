"""The whole build: determinism, worker independence, the written dataset, bad input, the commands."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from helpers.scenes import crafted_dataset
from rsvg.commands.build import build as build_command
from rsvg.construct import pipeline
from rsvg.construct.build import SUMMARY_FILE, build_dataset
from rsvg.construct.matching import ExpressionSpec
from rsvg.construct.parsing import parse_expression
from rsvg.data.dior_rsvg import group_by_split, read_grounding_annotations, validate_splits
from rsvg.data.records import DatasetError, DatasetNotFoundError


@pytest.fixture(scope="module")
def detection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crafted_dataset(tmp_path_factory.mktemp("det") / "voc", n=10, size=320, seed=1)


@pytest.fixture(scope="module")
def built(detection: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("built") / "rsvg"
    build_dataset(detection, out, seed=3)
    return out


def _same_tree(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b, ignore=[SUMMARY_FILE])
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files and not cmp.funny_files
    for sub in cmp.common_dirs:
        _same_tree(a / sub, b / sub)


def test_written_dataset_reads_back_without_problems(built: Path) -> None:
    ann = read_grounding_annotations(built)
    assert ann.problems == [] and ann.unusable == {}
    summary = json.loads((built / SUMMARY_FILE).read_text())
    assert len(ann.samples) == summary["expressions"] > 0
    splits = group_by_split(built)
    report = validate_splits(splits, ann.samples, built)
    assert report.problems == []
    assert sorted(i for v in splits.values() for i in v) == list(range(len(ann.samples)))
    assert summary["splits"] == {k: len(v) for k, v in splits.items()}
    assert sum(summary["steps"].values()) == summary["expressions"]
    for sample in ann.samples:
        assert sample.image_path.is_file()
        assert len(sample.description.split()) >= 2
        assert parse_expression(sample.description).spec.target.category == sample.category


def test_provenance_tags_describe_each_expression(built: Path) -> None:
    import xml.etree.ElementTree as ET

    tags = []
    for xml in sorted((built / "Annotations").glob("*.xml")):
        for obj in ET.parse(xml).getroot().findall("object"):
            prov = json.loads(obj.findtext("provenance"))
            spec = ExpressionSpec.from_dict(prov)
            assert prov["template"] == spec.template
            assert prov["step"] in ("cat+", "att+", "rel+")
            # a relation is needed (rel+) only in a sentence; a sentence may also describe an object its
            # phrase already singles out (cat+ / att+), with the phrase unique by itself
            if prov["step"] == "rel+":
                assert spec.template == "sentence"
            assert parse_expression(obj.findtext("description")).spec == spec
            tags.append(prov["step"])
    assert {"cat+", "att+"} <= set(tags)


def test_deterministic_and_independent_of_workers(detection: Path, built: Path, tmp_path: Path) -> None:
    again = build_dataset(detection, tmp_path / "again", seed=3, workers=1)
    _same_tree(built, tmp_path / "again")
    parallel = build_dataset(detection, tmp_path / "parallel", seed=3, workers=2)
    _same_tree(built, tmp_path / "parallel")
    assert parallel.steps == again.steps and parallel.objects_dropped == again.objects_dropped
    other = build_dataset(detection, tmp_path / "other", seed=4)
    texts = lambda root: [s.description for s in read_grounding_annotations(root).samples]  # noqa: E731
    assert texts(tmp_path / "other") != texts(built)
    assert other.images_read == again.images_read == 10


def test_bad_input_is_counted_not_fatal(detection: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(detection, src)
    ann = src / "Annotations"
    xml = (ann / "00000.xml").read_text()
    # An unknown class, and a box outside the image, in one file.
    extra = (
        "<object><name>spaceship</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>30</xmax><ymax>30</ymax>"
        "</bndbox></object><object><name>ship</name><bndbox><xmin>300</xmin><ymin>1</ymin><xmax>400</xmax>"
        "<ymax>30</ymax></bndbox></object></annotation>"
    )
    (ann / "00000.xml").write_text(xml.replace("</annotation>", extra))
    (src / "JPEGImages" / "00001.jpg").unlink()  # missing image
    (src / "JPEGImages" / "00002.jpg").write_bytes(b"not a jpeg")  # unreadable image
    (ann / "00003.xml").write_text("<annotation><object>")  # malformed XML
    summary = build_dataset(src, tmp_path / "out")
    assert summary.objects_dropped["unknown_class"] == 1
    assert summary.objects_dropped["box_outside_image"] == 1
    assert summary.images_skipped["missing_image"] == 1
    assert summary.images_skipped["unreadable_image"] == 1
    assert summary.images_skipped["malformed_xml"] == 1
    assert summary.objects_dropped["in_skipped_image"] > 0
    assert summary.images_written == 7
    mapped = build_dataset(src, tmp_path / "mapped", class_mapping={"spaceship": "airplane"})
    assert "unknown_class" not in mapped.objects_dropped
    with pytest.raises(ValueError, match="not a DIOR class"):
        build_dataset(src, tmp_path / "bad", class_mapping={"spaceship": "rocket"})
    with pytest.raises(DatasetNotFoundError):
        build_dataset(tmp_path / "nowhere", tmp_path / "x")
    with pytest.raises(DatasetError, match="already exists"):
        build_dataset(src, tmp_path / "out")
    build_dataset(src, tmp_path / "out", overwrite=True)


def test_interrupted_run_leaves_no_output(detection: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.process_image
    calls = []

    def flaky(task: tuple) -> pipeline.ImageResult:
        calls.append(task)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(pipeline, "process_image", flaky)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        build_dataset(detection, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(build_command)
    return app


def test_build_command(detection: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(_cli(), [str(detection), str(tmp_path / "out"), "--seed", "3", "--split", "40,10,50"])
    assert ok.exit_code == 0, ok.output
    assert "expressions" in ok.output and "cat+" in ok.output
    assert len((tmp_path / "out" / "train.txt").read_text().split()) > 0
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "o1")], "missing"),
        ([str(detection), str(tmp_path / "o2"), "--split", "0.7,0.2"], "--split"),
        ([str(detection), str(tmp_path / "out")], "already exists"),
    ]
    bad_map = tmp_path / "map.yaml"
    bad_map.write_text("car: rocket\n")
    cases.append(([str(detection), str(tmp_path / "o3"), "--class-map", str(bad_map)], "map.yaml"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    cases.append(([str(detection), str(tmp_path / "o4"), "--class-map", str(broken)], "broken.json"))
    for args, needle in cases:
        result = runner.invoke(_cli(), args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in " ".join(result.output.split()), result.output
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))


def test_build_from_synthetic_scenes(tmp_path: Path) -> None:
    synth = pytest.importorskip("rsvg.synth")
    if not hasattr(synth, "write_synthetic_dataset"):
        pytest.skip("rsvg.synth.write_synthetic_dataset not available")
    det = tmp_path / "det"
    synth.write_synthetic_dataset(det, 4, seed=0, size=400, workers=1)
    summary = build_dataset(det, tmp_path / "out", seed=0)
    assert summary.images_written >= 3 and summary.expressions >= 10
    assert all(summary.steps[s] > 0 for s in ("cat+", "att+"))
    assert read_grounding_annotations(tmp_path / "out").problems == []
