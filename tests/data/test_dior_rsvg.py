"""DIOR-RSVG reader, writer and split validation."""

from pathlib import Path

import numpy as np
import pytest

from helpers.datasets import OFFICIAL_DESCRIPTIONS_IN_ORDER, make_official_dataset, write_official_xml
from rsvg.data.dior_rsvg import (
    GroundingDatasetWriter,
    GroundingObject,
    load_split,
    read_grounding_annotations,
    read_split_file,
    validate_splits,
)
from rsvg.data.records import DatasetError, DatasetNotFoundError


def test_global_indices_follow_sorted_files_and_document_order(official_dataset):
    ann = read_grounding_annotations(official_dataset)
    assert [s.description for s in ann.samples] == OFFICIAL_DESCRIPTIONS_IN_ORDER
    assert [s.index for s in ann.samples] == list(range(6))
    assert [(s.image_id, s.object_in_file) for s in ann.samples][:3] == [("00001", 0), ("00002", 0), ("00002", 1)]
    assert ann.problems == []
    s = ann.samples[1]
    assert s.category == "Expressway-Service-area"
    assert s.box == (5.0, 5.0, 150.0, 120.0)
    assert (s.width, s.height) == (200, 160)
    assert s.image_path == official_dataset / "JPEGImages" / "00002.jpg"


def test_split_order_is_the_split_file_order(official_dataset):
    train = load_split(official_dataset, "train")
    assert [s.index for s in train] == [5, 0, 3]
    assert [s.description for s in train] == [OFFICIAL_DESCRIPTIONS_IN_ORDER[i] for i in (5, 0, 3)]
    test = load_split(official_dataset, "test")
    assert [s.image_id for s in test] == ["00003", "00002"]


def test_fields_read_by_tag_name_not_position(tmp_path):
    root = tmp_path / "ds"
    (root / "Annotations").mkdir(parents=True)
    # <description> before <name>, <bndbox> children shuffled, Windows path in <filename>.
    (root / "Annotations" / "00001.xml").write_text(
        "<annotation><size><height>100</height><width>120</width></size>"
        "<filename>C:\\data\\00001.jpg</filename>"
        "<object><description>The ship</description>"
        "<bndbox><ymax>40</ymax><xmin>1.5</xmin><xmax>30</xmax><ymin>2</ymin></bndbox>"
        "<name>ship</name></object></annotation>"
    )
    s = read_grounding_annotations(root).samples[0]
    assert s.box == (1.5, 2.0, 30.0, 40.0)
    assert (s.width, s.height) == (120, 100)
    assert s.description == "The ship" and s.category == "ship"
    assert s.image_path == root / "JPEGImages" / "00001.jpg"


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="Annotations"):
        read_grounding_annotations(tmp_path / "nope")
    with pytest.raises(DatasetNotFoundError, match="split file"):
        read_split_file(tmp_path / "train.txt")


def test_bad_split_line_names_file_and_line(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("1\n2\nthree\n")
    with pytest.raises(DatasetError, match=r"train.txt:3"):
        read_split_file(p)


def test_validate_splits_finds_overlap_range_and_repeats(official_dataset):
    samples = read_grounding_annotations(official_dataset).samples
    rep = validate_splits({"train": [0, 1, 1, 9], "val": [1, 2], "test": [3]}, samples, official_dataset)
    kinds = sorted(p.kind for p in rep.problems)
    assert kinds == ["index_out_of_range", "overlapping_splits", "repeated_index"]
    assert rep.counts == {"train": 4, "val": 2, "test": 1}
    # indices 0,1 (train) and 1,2 (val) are in images 00001/00002 and 00002: one image shared
    assert rep.shared_images[("train", "val")] == 1


def test_unusable_entries_keep_their_index_and_fail_loading(tmp_path):
    root = make_official_dataset(tmp_path / "ds", {"train": [0, 1], "val": [2], "test": [3]})
    write_official_xml(
        root / "Annotations" / "00001.xml",
        "00001.jpg",
        200,
        160,
        [{"name": "ship", "box": (30, 10, 20, 40), "description": ""}],
    )
    ann = read_grounding_annotations(root)
    assert len(ann.samples) == 6 and ann.unusable[0] == "empty box, empty description"
    assert ann.samples[1].description == OFFICIAL_DESCRIPTIONS_IN_ORDER[1]
    with pytest.raises(DatasetError, match=r"00001.xml \[object 0\].*empty description"):
        load_split(root, "train")
    assert [s.index for s in load_split(root, "val")] == [2]


def test_writer_round_trip_and_atomicity(tmp_path):
    out = tmp_path / "built"
    img = np.zeros((60, 80, 3), np.uint8)
    with GroundingDatasetWriter(out) as w:
        # added out of order: global indices still follow sorted file names
        w.add_image("00002", img, 80, 60, [GroundingObject("ship", (1, 2, 30, 40), "A ship", {"provenance": "x"})])
        w.add_image(
            "00001",
            img,
            80,
            60,
            [
                GroundingObject("vehicle", (0, 0, 5, 5), "The left vehicle"),
                GroundingObject("vehicle", (10.25, 0, 15, 5), "The right vehicle"),
            ],
        )
        assert w.global_order() == [("00001", 0), ("00001", 1), ("00002", 0)]
        assert not out.exists()
        w.commit({"train": [2, 0], "val": [1], "test": []})
    ann = read_grounding_annotations(out)
    assert [s.description for s in ann.samples] == ["The left vehicle", "The right vehicle", "A ship"]
    assert ann.samples[1].box == (10.25, 0.0, 15.0, 5.0)
    assert read_split_file(out / "train.txt") == [2, 0]
    assert (out / "JPEGImages" / "00001.jpg").is_file()
    assert not list(tmp_path.glob(".built.*"))


def test_writer_interrupted_leaves_nothing(tmp_path):
    out = tmp_path / "built"
    with pytest.raises(RuntimeError), GroundingDatasetWriter(out) as w:
        w.add_image("00001", np.zeros((8, 8, 3), np.uint8), 8, 8, [GroundingObject("ship", (0, 0, 4, 4), "A ship")])
        raise RuntimeError("killed")
    assert not out.exists()
    assert list(Path(tmp_path).iterdir()) == []


def test_writer_refuses_existing_output_and_bad_input(tmp_path):
    out = tmp_path / "built"
    out.mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        GroundingDatasetWriter(out)
    with GroundingDatasetWriter(tmp_path / "b2") as w:
        with pytest.raises(DatasetError, match="empty description"):
            w.add_image("1", np.zeros((8, 8, 3), np.uint8), 8, 8, [GroundingObject("ship", (0, 0, 4, 4), " ")])
        with pytest.raises(DatasetError, match="outside"):
            w.commit({"train": [3]})
