"""Detection reader (DIOR / Pascal-VOC XML)."""

import pytest

from helpers.datasets import write_image
from rsvg.data.records import DatasetError, DatasetNotFoundError
from rsvg.data.voc import find_detection_layout, read_detection, read_detection_root


def voc_xml(filename, width, height, objects):
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )
    return (
        f"<annotation><filename>{filename}</filename><size><width>{width}</width>"
        f"<height>{height}</height><depth>3</depth></size>{objs}</annotation>"
    )


@pytest.fixture
def dior_root(tmp_path):
    """Official DIOR layout: HBB XMLs in a folder with spaces, images split over two folders."""
    root = tmp_path / "DIOR"
    ann = root / "Annotations" / "Horizontal Bounding Boxes"
    ann.mkdir(parents=True)
    (ann / "00001.xml").write_text(
        voc_xml(
            "00001.jpg",
            100,
            80,
            [
                ("vehicle", (1, 2, 10, 12)),
                ("Expressway-toll-station", (20, 20, 50, 60)),
                ("vehicle", (30, 5, 30, 9)),  # xmin >= xmax
                ("tree", (1, 1, 5, 5)),  # unknown class
                ("ship", (90, 70, 110, 79)),  # outside the 100-wide image
            ],
        )
    )
    (ann / "00002.xml").write_text(voc_xml("00002.jpg", 100, 80, [("ship", (5, 5, 25, 15))]))
    (ann / "00003.xml").write_text(voc_xml("00003.jpg", 100, 80, [("ship", (5, 5, 25, 15))]))  # no image
    (ann / "00004.xml").write_text("<annotation><filename>00004.jpg</filename><object>")  # malformed
    write_image(root / "JPEGImages-trainval" / "00001.jpg", 100, 80)
    write_image(root / "JPEGImages-test" / "00002.jpg", 100, 80)
    write_image(root / "JPEGImages-test" / "00004.jpg", 100, 80)
    return root


def test_official_dior_layout_is_found(dior_root):
    ann, images = find_detection_layout(dior_root)
    assert ann.name == "Horizontal Bounding Boxes"
    assert [p.name for p in images] == ["JPEGImages-test", "JPEGImages-trainval"]


def test_reads_records_and_reports_every_problem(dior_root):
    res = read_detection_root(dior_root)
    assert [im.image_id for im in res.images] == ["00001", "00002"]
    im = res.images[0]
    assert [(o.category, o.box, o.index) for o in im.objects] == [
        ("vehicle", (1.0, 2.0, 10.0, 12.0), 0),
        ("Expressway-toll-station", (20.0, 20.0, 50.0, 60.0), 1),
    ]
    assert (im.width, im.height) == (100, 80)
    assert im.image_path.parent.name == "JPEGImages-trainval"
    assert res.images[1].image_path.parent.name == "JPEGImages-test"
    got = {(p.kind, p.file.rsplit("/", 1)[-1], p.object_index) for p in res.problems}
    assert got == {
        ("empty_box", "00001.xml", 2),
        ("unknown_class", "00001.xml", 3),
        ("box_outside_image", "00001.xml", 4),
        ("missing_image", "00003.xml", None),
        ("malformed_xml", "00004.xml", None),
    }
    assert res.problem_counts["empty_box"] == 1
    assert res.num_objects == 3


def test_strict_mode_is_fatal_and_names_the_file(dior_root):
    with pytest.raises(DatasetError, match=r"00001.xml \[object 2\]: empty_box"):
        read_detection_root(dior_root, strict=True)


def test_class_mapping_rescues_unknown_names(dior_root):
    res = read_detection_root(dior_root, class_mapping={"tree": "windmill"})
    assert "unknown_class" not in res.problem_counts
    assert [o.category for o in res.images[0].objects][-1] == "windmill"


def test_size_from_image_when_xml_has_none(tmp_path):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    (ann / "a.xml").write_text(
        "<annotation><filename>a.png</filename><object><name>dam</name>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>"
    )
    write_image(tmp_path / "JPEGImages" / "a.png", 40, 30)
    res = read_detection(ann, [tmp_path / "JPEGImages"])
    assert (res.images[0].width, res.images[0].height) == (40, 30)


def test_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="not found"):
        find_detection_layout(tmp_path / "nope")
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(DatasetNotFoundError, match="Horizontal Bounding Boxes"):
        find_detection_layout(tmp_path)
