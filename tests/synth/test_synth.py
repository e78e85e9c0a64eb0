"""The synthetic aerial scene generator and its DIOR/VOC dataset writer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from rsvg.data.categories import DIOR_CLASSES
from rsvg.data.voc import read_detection_root
from rsvg.synth import (
    COLOR_NAMES,
    SHAPES,
    benchmark_synth,
    generate_scene,
    image_seed,
    write_synthetic_dataset,
)
from rsvg.synth import writer as synth_writer
from rsvg.synth.geometry import rect
from rsvg.synth.layer import Layer, composite
from rsvg.synth.palette import paint

SIZE = 256


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scenes_40() -> list:
    """The 40 scenes of a 40-image dataset with seed 0, at 256 x 256."""
    return [generate_scene(image_seed(0, k), SIZE) for k in range(1, 41)]


# Scenes -----------------------------------------------------------------------------------------------------
def test_same_seed_same_scene_and_different_seed_different_scene() -> None:
    a, b = generate_scene(11, SIZE), generate_scene(11, SIZE)
    assert a.image.dtype == np.uint8 and a.image.shape == (SIZE, SIZE, 3)
    assert np.array_equal(a.image, b.image)
    assert a.objects == b.objects
    c = generate_scene(12, SIZE)
    assert not np.array_equal(a.image, c.image)
    assert a.objects != c.objects


def test_boxes_are_tight_valid_and_inside(scenes_40: list) -> None:
    for scene in scenes_40:
        assert 3 <= len(scene.objects) <= 12
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
            assert obj.category in DIOR_CLASSES
            assert obj.color in COLOR_NAMES
            assert obj.shape in SHAPES


def test_sprite_box_is_tight_around_what_is_drawn() -> None:
    """A drawn object's box is exactly the bounds of the pixels it paints (shadow excluded)."""
    rng = np.random.default_rng(0)
    layer = Layer(60.3, 41.7, 40)
    layer.shadow_poly(rect(66.0, 47.0, 50.0, 20.0, 0.6))
    layer.poly(rect(60.3, 41.7, 50.0, 20.0, 0.6), paint(rng, "red"))
    layer.circle((75.0, 30.0), 6.5, paint(rng, "red"))
    sprite = layer.finish("vehicle", "rectangular")
    assert sprite is not None and sprite.color == "red" and sprite.color_share == 1.0
    canvas = np.full((120, 120, 3), 128, dtype=np.uint8)
    composite(canvas, sprite)
    red = (canvas[:, :, 0] > 150) & (canvas[:, :, 2] < 100)
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    assert sprite.box == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    x0, y0, x1, y1 = (int(v) for v in sprite.box)
    shadow = (canvas.max(axis=2) < 100) & ~red
    shadow[y0:y1, x0:x1] = False
    assert shadow.any()  # the shadow darkened the ground, outside the box


def test_boxes_hold_drawn_content_and_barely_overlap(scenes_40: list) -> None:
    for scene in scenes_40:
        gray = scene.image.astype(np.float64).mean(axis=2)
        boxes = [o.box for o in scene.objects]
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            # A drawn object is not flat: its box holds some contrast.
            patch = gray[int(y0) : int(y1), int(x0) : int(x1)]
            assert patch.max() - patch.min() > 15
            for j, other in enumerate(boxes[:i]):
                w = min(x1, other[2]) - max(x0, other[0])
                h = min(y1, other[3]) - max(y0, other[1])
                if w <= 0 or h <= 0:
                    continue
                small = min((x1 - x0) * (y1 - y0), (other[2] - other[0]) * (other[3] - other[1]))
                contained = {scene.objects[i].category, scene.objects[j].category} in (
                    {"airport", "airplane"},
                    {"harbor", "ship"},
                    {"Expressway-Service-area", "vehicle"},
                )
                assert contained or w * h <= 0.1 * small + 1e-9


def test_all_20_categories_over_40_small_scenes(scenes_40: list) -> None:
    seen = Counter(o.category for s in scenes_40 for o in s.objects)
    assert set(seen) == set(DIOR_CLASSES)
    # Several objects of one category in a scene are common, so expressions must tell them apart.
    repeated = [s for s in scenes_40 if max(Counter(o.category for o in s.objects).values()) >= 2]
    assert len(repeated) >= len(scenes_40) // 2
    # ... and they differ: many such groups hold more than one colour.
    mixed = 0
    for s in scenes_40:
        by_cat: dict[str, set[str]] = {}
        for o in s.objects:
            by_cat.setdefault(o.category, set()).add(o.color)
        mixed += any(len(colors) > 1 for colors in by_cat.values())
    assert mixed >= len(scenes_40) // 4


# OpenCV hue is 0-180; saturation and value 0-255.
_HSV_RULES = {
    "red": lambda h, s, v: (h <= 8 or h >= 170) and s >= 120,
    "orange": lambda h, s, v: 8 <= h <= 20 and s >= 120 and v >= 150,
    "yellow": lambda h, s, v: 20 <= h <= 34 and s >= 100,
    "green": lambda h, s, v: 45 <= h <= 80 and s >= 80,
    "blue": lambda h, s, v: 95 <= h <= 125 and s >= 120,
    "purple": lambda h, s, v: 125 <= h <= 155 and s >= 80,
    "brown": lambda h, s, v: 5 <= h <= 25 and s >= 80 and v <= 150,
    "white": lambda h, s, v: s <= 40 and v >= 190,
    "gray": lambda h, s, v: s <= 40 and 60 <= v < 190,
    "black": lambda h, s, v: v <= 70,
}


def test_named_colour_dominates_the_box_centre() -> None:
    """The HSV of the centre of a box agrees with the object's colour name (objects that fill their box)."""
    checked: Counter[str] = Counter()
    failures = []
    for k in range(1, 41):
        scene = generate_scene(image_seed(1, k), 384)
        hsv = cv2.cvtColor(scene.image, cv2.COLOR_RGB2HSV)  # the image is RGB
        for obj in scene.objects:
            if obj.category not in ("storagetank", "basketballcourt", "groundtrackfield"):
                continue
            x0, y0, x1, y1 = obj.box
            if min(x1 - x0, y1 - y0) < 10:
                continue
            cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, 0.2 * (x1 - x0), 0.2 * (y1 - y0)
            region = hsv[int(cy - hh) : int(np.ceil(cy + hh)), int(cx - hw) : int(np.ceil(cx + hw))]
            h, s, v = np.median(region.reshape(-1, 3), axis=0)
            checked[obj.color] += 1
            if not _HSV_RULES[obj.color](h, s, v):
                failures.append((obj.category, obj.color, h, s, v))
    assert len(checked) >= 4, checked  # several colour names, chromatic and not
    assert sum(checked.values()) >= 30
    assert len(failures) <= 0.05 * sum(checked.values()), failures


def test_rgb_channel_order_red_tank() -> None:
    """A red object is red in the RGB array (R high, B low), not blue."""
    for k in range(1, 200):
        scene = generate_scene(image_seed(2, k), 384)
        reds = [o for o in scene.objects if o.color == "red" and o.category == "storagetank"]
        big = [o for o in reds if o.box[2] - o.box[0] >= 12]
        if big:
            x0, y0, x1, y1 = big[0].box
            cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
            r, g, b = np.median(scene.image[cy - 2 : cy + 3, cx + 2 : cx + 4].reshape(-1, 3), axis=0)
            assert r > 140 and r > g + 60 and r > b + 60
            return
    pytest.fail("no big red storage tank in 200 scenes")


def test_rejects_tiny_size() -> None:
    with pytest.raises(ValueError):
        generate_scene(0, 32)


# Dataset writer ---------------------------------------------------------------------------------------------
def test_written_dataset_reads_back_with_the_same_boxes(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    summary = write_synthetic_dataset(out, images=5, seed=3, size=SIZE)
    assert sorted(p.name for p in (out / "Annotations").iterdir()) == [f"0000{k}.xml" for k in range(1, 6)]
    assert sorted(p.name for p in (out / "JPEGImages").iterdir()) == [f"0000{k}.jpg" for k in range(1, 6)]
    result = read_detection_root(out)
    assert result.problems == []
    assert len(result.images) == 5
    assert summary.images == 5 and summary.objects == result.num_objects
    assert sum(summary.per_category.values()) == summary.objects
    assert list(summary.per_category) == list(DIOR_CLASSES)
    for k, image in enumerate(result.images, start=1):
        scene = generate_scene(image_seed(3, k), SIZE)
        assert image.image_id == f"{k:05d}" and (image.width, image.height) == (SIZE, SIZE)
        assert [(o.category, o.box) for o in image.objects] == [(o.category, o.box) for o in scene.objects]
        root = ET.parse(image.annotation_path).getroot()
        extras = [(o.findtext("synth_color"), o.findtext("synth_shape")) for o in root.findall("object")]
        assert extras == [(o.color, o.shape) for o in scene.objects]
        # The JPEG holds the scene (BGR on disk, so it reads back as the RGB array).
        bgr = cv2.imread(str(image.image_path))
        assert np.abs(bgr[:, :, ::-1].astype(int) - scene.image.astype(int)).mean() < 3.0


def test_same_seed_same_files_whatever_the_workers(tmp_path: Path) -> None:
    one = write_synthetic_dataset(tmp_path / "one", images=4, seed=5, size=SIZE, workers=1)
    two = write_synthetic_dataset(tmp_path / "two", images=4, seed=5, size=SIZE, workers=2)
    files = _files(tmp_path / "one")
    assert len(files) == 8
    assert files == _files(tmp_path / "two")
    assert one.per_category == two.per_category
    write_synthetic_dataset(tmp_path / "other", images=4, seed=6, size=SIZE)
    other = _files(tmp_path / "other")
    assert other.keys() == files.keys()
    assert all(other[name] != files[name] for name in files)


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError):
        write_synthetic_dataset(out, images=1, size=SIZE)
    assert (out / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folder left
    write_synthetic_dataset(out, images=1, size=SIZE, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert read_detection_root(out).problems == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    empty = tmp_path / "empty"
    empty.mkdir()
    write_synthetic_dataset(empty, images=1, size=SIZE)  # an empty folder is fine
    assert len(read_detection_root(empty).images) == 1


def test_interrupted_run_leaves_no_partial_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = synth_writer._write_image

    def failing(task: tuple[str, int, int, int]) -> list[str]:
        if task[2] == 3:
            raise RuntimeError("interrupted")
        return real(task)

    monkeypatch.setattr(synth_writer, "_write_image", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_synthetic_dataset(tmp_path / "data", images=5, size=SIZE)
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_synthetic_dataset(tmp_path / "a", images=0)
    with pytest.raises(ValueError):
        write_synthetic_dataset(tmp_path / "b", images=1, workers=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        write_synthetic_dataset(tmp_path / "file", images=1, overwrite=True)


def test_benchmark_reports_a_rate() -> None:
    result = benchmark_synth(images=2, size=128)
    assert result["images"] == 2 and result["size"] == 128
    assert result["images_per_s"] > 0 and result["seconds"] > 0
    assert result["generate_ms"] > 0 and result["encode_ms"] > 0
