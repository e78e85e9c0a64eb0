"""``rsvg bench scene`` at a small size: it writes its synthetic GeoTIFF, grounds it, reports tiles/s and the
projected 10,000² time with its tile settings, and removes the scene file afterwards. No assertion on speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
from typer.testing import CliRunner

from helpers.models import tiny_checkpoint
from rsvg.cli import app
from rsvg.geo.synthetic import write_synthetic_scene
from rsvg.geo.tiling import tile_grid


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory)


def test_bench_scene_reports_tiles_per_second(checkpoint, tmp_path):
    out = tmp_path / "bench.json"
    folder = tmp_path / "scratch"
    folder.mkdir()
    args = ["bench", "scene", "--checkpoint", str(checkpoint), "--size", "300", "--scale", "2"]
    res = CliRunner().invoke(app, [*args, "--folder", str(folder), "--json", str(out)], terminal_width=200)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["benchmark"] == "rsvg bench scene" and "cpu" in report["machine"]
    r = report["results"]
    assert (r["scene_px"], r["model_px"], r["tile_px"], r["scale"], r["overlap"]) == ("300x300", 64, 128, 2.0, 0.25)
    assert r["tiles"] == len(tile_grid(300, 300, 64, 2.0, 0.25)) == 9
    assert r["tiles_10000"] == len(tile_grid(10_000, 10_000, 64, 2.0, 0.25))
    assert r["tiles_per_s"] > 0 and r["projected_seconds_10000"] == pytest.approx(
        r["tiles_10000"] / r["tiles_per_s"], rel=0.01
    )
    assert list(folder.iterdir()) == []  # the scene file is gone


def test_the_synthetic_scene_is_a_georeferenced_mosaic(tmp_path):
    path = write_synthetic_scene(tmp_path / "s.tif", 1000, compress="deflate")
    with rasterio.open(path) as src:
        assert (src.width, src.height, src.count, src.dtypes[0]) == (1000, 1000, 3, "uint8")
        assert src.crs.to_epsg() == 32633 and src.res == (0.5, 0.5) and src.compression.value == "DEFLATE"
        assert src.read(1, window=((900, 1000), (900, 1000))).std() > 0  # the last partial chip is drawn too


def test_bad_bench_options_are_named(checkpoint):
    res = CliRunner().invoke(app, ["bench", "scene", "--checkpoint", str(checkpoint), "--size", "10"])
    assert res.exit_code == 2 and "--size 10" in res.output
