"""``rsvg ground`` on GeoTIFF scenes with a tiny trained checkpoint: the JSON line, the GeoJSON files and the
overview picture have the promised structure; a plain TIFF is grounded in pixels and refuses --geojson; corrupt
files and bad options end in an error that names the file or the option (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.geotiff import CRS, TRANSFORM, as_bands, mosaic, write_geotiff
from helpers.models import tiny_checkpoint
from rsvg.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512 x 512 16-bit GeoTIFF in UTM 33N, its left column of chips nodata."""
    data = as_bands(mosaic()).astype(np.uint16) * 200 + 1000
    data[:, :, :128] = 0
    return write_geotiff(tmp_path_factory.mktemp("scene") / "scene.tif", data, nodata=0)


def _run(args: list[str]):
    return runner.invoke(app, args, terminal_width=300)


def _text(res) -> str:
    """The output without white space (rich wraps long lines of standard error at its own width)."""
    return "".join(res.output.split())


def _error(res, *named: str) -> None:
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and "Traceback" not in res.output
    for part in named:
        assert "".join(part.split()) in _text(res), (part, res.output)


def test_ground_a_geotiff_end_to_end(checkpoint, scene, tmp_path):
    geojson, wgs84, picture = tmp_path / "a.geojson", tmp_path / "a4326.geojson", tmp_path / "overview.png"
    args = ["ground", "--checkpoint", str(checkpoint), str(scene), "the ship on the left", "--scale", "2"]
    args += ["--out", str(tmp_path / "pictures")]
    res = _run([*args, "--top-k", "3", "--geojson", str(geojson), "--geojson-4326", str(wgs84)])
    assert res.exit_code == 0, res.output
    res2 = _run([*args, "--top-k", "3", "--overview", str(picture)])
    assert res2.exit_code == 0, res2.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert "tilesof128pxreadat64px" in _text(res)  # the settings are stated (wherever rich wrapped the line)

    # tiles: 256 px side at scale 2 is 128 scene px; 5 x 5 at 25 % overlap, the first column all nodata
    assert (out["tile_px"], out["model_px"], out["scale"], out["overlap"]) == (128, 64, 2.0, 0.25)
    assert out["tiles"] == 25 and out["tiles_skipped"] == 5
    assert out["crs"] == CRS and out["gsd_m"] == 2.0 and out["tile_gsd_m"] == 4.0 and out["dtype"] == "uint16"
    answers = out["answers"]
    assert [a["rank"] for a in answers] == [1, 2, 3]
    assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)
    assert out["box"] == answers[0]["box_px"] and out["score"] == answers[0]["score"]
    for a in answers:
        x1, y1, x2, y2 = a["box_px"]
        tx1, ty1, tx2, ty2 = a["tile"]
        assert 0 < a["score"] <= 1
        assert tx1 - 1 <= x1 < x2 <= tx2 + 1 and ty1 - 1 <= y1 < y2 <= ty2 + 1  # inside its tile
        assert tx1 >= 96  # never a tile of the nodata column alone
        # the map box follows the geotransform
        assert a["box_crs"] == pytest.approx(
            [TRANSFORM.c + 2 * x1, TRANSFORM.f - 2 * y2, TRANSFORM.c + 2 * x2, TRANSFORM.f - 2 * y1], abs=0.02
        )

    native = json.loads(geojson.read_text())
    assert native["type"] == "FeatureCollection" and native["crs"]["properties"]["name"].endswith("EPSG::32633")
    assert [f["properties"]["rank"] for f in native["features"]] == [1, 2, 3]
    assert set(native["features"][0]["properties"]) == {"query", "score", "rank", "tile", "box_px", "image"}
    assert native["features"][0]["properties"]["box_px"] == answers[0]["box_px"]
    lonlat = json.loads(wgs84.read_text())
    for feature in lonlat["features"]:
        for lon, lat in feature["geometry"]["coordinates"][0]:
            assert 14.99 < lon < 15.01 and -0.01 < lat < 0.01  # UTM 33N near (500000, 0)
    assert out["geojson"] == str(geojson) and out["geojson_4326"] == str(wgs84)

    decoded = cv2.imread(str(picture))
    assert decoded.shape == (512, 512, 3)
    assert [p.name for p in (tmp_path / "pictures").iterdir()] == ["0000_scene.png"]  # the first run's picture
    assert json.loads(res2.output.strip().splitlines()[-1])["picture"] == str(picture)


def test_a_plain_tiff_is_grounded_in_pixels_and_refuses_geojson(checkpoint, tmp_path):
    plain = tmp_path / "plain.tif"
    cv2.imwrite(str(plain), mosaic()[:256, :256])
    ground = ["ground", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "g")]
    res = _run([*ground, "--scene", str(plain), "a ship"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["crs"] is None and out["box_crs"] is None and len(out["box"]) == 4
    assert "no map coordinates" in out["note"] and "note: " in res.output
    assert (tmp_path / "g" / "0000_plain.png").is_file()

    target = tmp_path / "plain.geojson"
    res = _run([*ground, str(plain), "a ship", "--geojson", str(target)])
    _error(res, "plain.tif", "no map coordinates", "--geojson")
    assert not target.exists()

    # without scene options a plain 8-bit TIFF is read as a picture, as before
    res = _run([*ground, str(plain), "a ship"])
    assert res.exit_code == 0 and "answers" not in json.loads(res.output.strip().splitlines()[-1])


def test_bad_input_names_the_file_or_the_option(checkpoint, scene, tmp_path):
    ground = ["ground", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "g")]
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x07" * 4000)
    _error(_run([*ground, str(corrupt), "a ship"]), "corrupt.tif", "not a readable raster")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(scene.read_bytes()[:5000])
    _error(_run([*ground, str(truncated), "a ship"]), "truncated.tif")
    _error(_run([*ground, str(tmp_path / "nowhere.tif"), "a ship"]), "nowhere.tif")

    for bands, named in [("3,2", "three bands"), ("a,b,c", "band numbers"), ("0", "numbered from 1")]:
        _error(_run([*ground, str(scene), "a ship", "--bands", bands]), f"--bands {bands!r}", named)
    _error(_run([*ground, str(scene), "a ship", "--bands", "4,2,1"]), "--bands 4,2,1", "scene.tif has 3 bands")
    _error(_run([*ground, str(scene), "a ship", "--scale", "2", "--tile-gsd", "4"]), "--scale and --tile-gsd")
    _error(_run([*ground, str(scene), "a ship", "--percentiles", "90,10"]), "--percentiles")
    _error(_run([*ground, str(scene), "a ship", "--overlap", "0.99"]), "--overlap")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"image,query\n{scene},a ship\n")
    _error(_run([*ground, "--batch", str(pairs), "--geojson", str(tmp_path / "x.geojson")]), "--geojson", "--batch")
    _error(_run([*ground, str(scene), "ship " * 500]), "scene.tif", "tokens")
