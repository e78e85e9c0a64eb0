"""Grounding on a whole scene with a stand-in model that finds the target by its colour: the answer lands in the
right chip whatever the data type, its map coordinates follow the geotransform, the EPSG:4326 polygon is right at
a known point, tiles that are all nodata are skipped, and overlapping tiles give one answer."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from helpers.geotiff import CHIP, CRS, GSD, TARGET_BOX, TARGET_CHIP, TRANSFORM, ColourFinder, as_bands, mosaic
from helpers.geotiff import write_geotiff as write
from rsvg.geo.geojson import feature_collection, write_geojson
from rsvg.geo.georef import GeoreferenceError
from rsvg.geo.overview import overview_picture
from rsvg.geo.raster import SceneError
from rsvg.geo.scene import SceneGrounder, SceneOptions
from rsvg.geo.tiling import box_iou

QUERY = "the magenta square"
# metres per degree of longitude on the equator in UTM (the WGS84 equator, times the scale factor k0 = 0.9996)
METRES_PER_DEGREE_AT_EQUATOR = 6378137.0 * math.pi / 180 * 0.9996


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return mosaic()


def _chip(box) -> tuple[int, int]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return int(cx // CHIP), int(cy // CHIP)


def _ground(path, **options):
    finder = ColourFinder()
    return SceneGrounder(finder).ground(path, QUERY, SceneOptions(**options)), finder


def test_the_answer_lands_in_the_targets_chip_with_map_coordinates(tmp_path, image):
    result, finder = _ground(write(tmp_path / "scene.tif", as_bands(image)), top_k=3)
    best = result.answers[0]
    assert best.rank == 1 and best.box == TARGET_BOX and _chip(best.box) == TARGET_CHIP
    assert [a.rank for a in result.answers] == [1, 2, 3]
    assert [a.score for a in result.answers] == sorted((a.score for a in result.answers), reverse=True)
    assert result.tiles == finder.seen == 25 and result.tiles_skipped == 0  # 5 x 5 tiles of 128 px at 25 %
    # map coordinates through the geotransform: x = x0 + 2 col, y = y0 - 2 row
    x1, y1, x2, y2 = TARGET_BOX
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    expected = [x0 + GSD * x1, y0 - GSD * y2, x0 + GSD * x2, y0 - GSD * y1]
    out = result.to_dict()
    assert out["box_crs"] == pytest.approx(expected) and out["box_crs"][:1] == [500000.0]
    assert out["crs"] == CRS and out["gsd_m"] == GSD and out["tile_px"] == 128
    assert out["box"] == list(TARGET_BOX) and "note" not in out


def test_geojson_in_the_files_crs_and_in_epsg_4326(tmp_path, image):
    result, _ = _ground(write(tmp_path / "scene.tif", as_bands(image)), top_k=2)
    native = feature_collection(result)
    assert native["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"
    feature = native["features"][0]
    assert feature["properties"] == {
        "query": QUERY,
        "score": round(result.answers[0].score, 4),
        "rank": 1,
        "tile": [round(v) for v in result.answers[0].tile.box],
        "box_px": list(TARGET_BOX),
        "image": result.path,
    }
    ring = feature["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert sorted(map(tuple, ring[:4])) == [(500000.0, -40.0), (500000.0, 0.0), (500040.0, -40.0), (500040.0, 0.0)]

    wgs84 = feature_collection(result, wgs84=True)
    assert "crs" not in wgs84
    points = wgs84["features"][0]["geometry"]["coordinates"][0]
    # the target's top-left corner is UTM 33N (500000, 0): longitude 15 E on the equator
    assert any(abs(lon - 15.0) < 1e-9 and abs(lat) < 1e-9 for lon, lat in points)
    # its opposite corner is 40 m east and 40 m south of it
    lon_max = max(p[0] for p in points)
    lat_min = min(p[1] for p in points)
    assert lon_max - 15.0 == pytest.approx(40 / METRES_PER_DEGREE_AT_EQUATOR, rel=1e-3)
    assert lat_min == pytest.approx(-40 / METRES_PER_DEGREE_AT_EQUATOR, rel=1e-2)
    # counter-clockwise exterior ring (RFC 7946)
    area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(points))
    assert area > 0

    path = tmp_path / "out" / "answers.geojson"
    write_geojson(path, wgs84)
    assert json.loads(path.read_text())["features"][0]["properties"]["rank"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["answers.geojson"]  # no temporary file left


@pytest.mark.parametrize("kind", ["uint16", "float32"])
def test_16_bit_and_float_scenes(tmp_path, image, kind):
    data = as_bands(image).astype(np.uint16) * 200 + 1000 if kind == "uint16" else as_bands(image) / np.float32(255)
    result, _ = _ground(write(tmp_path / f"{kind}.tif", data.astype(kind)), top_k=1)
    assert result.dtype == kind and not result.stretch.identity
    assert result.answers[0].box == TARGET_BOX


def test_tiles_at_a_coarser_gsd(tmp_path, image):
    # 4 m tiles from a 2 m scene: 256-px windows read at 128 px, the box mapped back to scene pixels
    result, finder = _ground(write(tmp_path / "scene.tif", as_bands(image)), tile_gsd=4.0, top_k=1)
    assert result.scale == 2.0 and result.tile_side == 256 and result.tiles == finder.seen == 9
    assert box_iou(result.answers[0].box, TARGET_BOX) > 0.8 and _chip(result.answers[0].box) == TARGET_CHIP
    same, _ = _ground(write(tmp_path / "scene2.tif", as_bands(image)), scale=2.0, top_k=1)
    assert same.answers[0].box == result.answers[0].box


def test_tiles_that_are_all_nodata_are_skipped(tmp_path, image):
    data = as_bands(image).astype(np.uint16) * 200 + 1000
    data[:, 256:, :] = 0  # the bottom half is nodata
    result, finder = _ground(write(tmp_path / "nodata.tif", data, nodata=0))
    # rows of tiles start at 0, 96, 192, 288, 384: the last two lie wholly in the nodata half
    assert result.tiles == 25 and result.tiles_skipped == 10 and finder.seen == 15
    assert result.answers[0].box == TARGET_BOX


def test_overlapping_tiles_give_one_answer_per_object(tmp_path, image):
    # with 75 % overlap the target is whole in many tiles: one answer remains, the others are other places
    result, _ = _ground(write(tmp_path / "scene.tif", as_bands(image)), overlap=0.75, top_k=10)
    assert sum(a.box == TARGET_BOX for a in result.answers) == 1
    assert all(box_iou(a.box, b.box) <= 0.5 for a in result.answers for b in result.answers if a is not b)


def test_band_selection_reaches_the_model(tmp_path, image):
    # a four-band file, blue green red near-infrared, with a red target: 3,2,1 is the true colour
    bgrn = np.stack([image[..., 2], image[..., 1], image[..., 0], np.full(image.shape[:2], 90, np.uint8)])
    x1, y1, x2, y2 = TARGET_BOX
    bgrn[:3, y1:y2, x1:x2] = np.array([0, 0, 255], np.uint8)[:, None, None]
    path = write(tmp_path / "bgrn.tif", bgrn)

    def red(bands):
        finder = ColourFinder(target=(255, 0, 0))
        return SceneGrounder(finder).ground(path, QUERY, SceneOptions(bands=bands, top_k=1)).answers[0]

    assert red((3, 2, 1)).box == TARGET_BOX
    assert red((1, 2, 3)).score == 0.0  # red and blue swapped: the target is blue, nothing red anywhere
    assert red((4,)).score == 0.0  # one band, shown as grey


def test_a_scene_without_georeference_is_grounded_in_pixels(tmp_path, image):
    result, _ = _ground(write(tmp_path / "plain.tif", as_bands(image), crs=None, transform=None), top_k=1)
    out = result.to_dict()
    assert out["box"] == list(TARGET_BOX) and out["box_crs"] is None and out["crs"] is None
    assert "no map coordinates" in out["note"] and "plain.tif" in out["note"]
    with pytest.raises(GeoreferenceError, match=r"plain\.tif: no map coordinates"):
        feature_collection(result)
    with pytest.raises(SceneError, match="--tile-gsd"):
        _ground(tmp_path / "plain.tif", tile_gsd=4.0)


def test_option_errors_name_the_option(tmp_path, image):
    path = write(tmp_path / "scene.tif", as_bands(image))
    for options, named in [
        ({"scale": 2.0, "tile_gsd": 4.0}, "--scale and --tile-gsd"),
        ({"scale": 0.0}, "--scale"),
        ({"top_k": 0}, "--top-k"),
        ({"merge_iou": 1.5}, "--merge-iou"),
        ({"stretch": "linear"}, "--stretch"),
    ]:
        with pytest.raises(SceneError, match=named):
            _ground(path, **options)


def test_the_overview_picture_shows_the_answers(tmp_path, image):
    result, _ = _ground(write(tmp_path / "scene.tif", as_bands(image)), top_k=2)
    picture = overview_picture(result)
    assert picture.shape == (512, 512, 3) and picture.dtype == np.uint8
    assert not np.array_equal(picture, result.overview)  # the boxes are drawn
