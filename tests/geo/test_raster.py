"""Reading scenes: band choice, 16-bit and float stretched by percentiles that nodata never moves, nodata black,
bounded reads, and clear errors for corrupt files and bad band numbers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rasterio.enums import ColorInterp

from helpers.geotiff import as_bands, mosaic, write_geotiff
from rsvg.geo.raster import (
    OVERVIEW_SIDE,
    SceneError,
    SceneReader,
    needs_scene_reading,
    parse_bands,
    parse_percentiles,
    scene_georeference,
)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return mosaic()


def _constant_bands(count: int, size: int = 64) -> np.ndarray:
    """Band k holds the value 10 k everywhere."""
    return np.stack([np.full((size, size), 10 * (k + 1), np.uint8) for k in range(count)])


def test_band_selection_is_one_based_and_in_the_given_order(tmp_path):
    path = write_geotiff(tmp_path / "four.tif", _constant_bands(4))
    with SceneReader(path, (4, 3, 2)) as reader:
        rgb, valid = reader.read((0, 0, 64, 64), (64, 64))
    assert rgb[0, 0].tolist() == [40, 30, 20] and valid.all()
    with SceneReader(path, (2,)) as reader:  # one band: grey
        assert reader.read((0, 0, 8, 8), (8, 8))[0][0, 0].tolist() == [20, 20, 20]
    with SceneReader(path) as reader:  # no colour interpretation: the first three
        assert reader.bands == (1, 2, 3)


def test_default_bands_follow_the_colour_interpretation(tmp_path):
    interp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]
    path = write_geotiff(tmp_path / "bgr.tif", _constant_bands(4), colorinterp=interp)
    with SceneReader(path) as reader:
        assert reader.bands == (3, 2, 1)


@pytest.mark.parametrize(
    ("text", "named"),
    [("3,x,1", "band numbers"), ("1,2", "three bands"), ("0,1,2", "numbered from 1"), ("", "band numbers")],
)
def test_bad_band_text_names_the_option(text, named):
    with pytest.raises(SceneError, match="--bands") as info:
        parse_bands(text)
    assert named in str(info.value)


def test_a_band_the_file_lacks_names_the_file_and_its_bands(tmp_path):
    path = write_geotiff(tmp_path / "four.tif", _constant_bands(4))
    with pytest.raises(SceneError) as info:
        SceneReader(path, (5, 3, 2))
    assert "--bands 5,3,2" in str(info.value) and "four.tif has 4 bands (1-4), no band 5" in str(info.value)


def test_bad_percentiles_name_the_option():
    assert parse_percentiles("1,99.5") == (1.0, 99.5)
    for text in ("98,2", "a,b", "5"):
        with pytest.raises(SceneError, match="--percentiles"):
            parse_percentiles(text)


def test_16_bit_data_is_stretched_by_percentiles(tmp_path, image):
    data = as_bands(image).astype(np.uint16) * 200 + 1000
    path = write_geotiff(tmp_path / "u16.tif", data)
    with SceneReader(path) as reader:
        rgb, _ = reader.read((0, 0, 512, 512), (512, 512))
        low = np.percentile(data.reshape(3, -1), 2, axis=1)
        high = np.percentile(data.reshape(3, -1), 98, axis=1)
        assert not reader.stretch.identity and reader.dtype == "uint16"
        # the overview is a decimated sample: its percentiles are those of the whole scene, nearly
        assert np.allclose(reader.stretch.low, low, rtol=0.05) and np.allclose(reader.stretch.high, high, rtol=0.05)
    low, high = (np.array(v)[:, None, None] for v in (reader.stretch.low, reader.stretch.high))
    expected = np.rint(np.clip((data - low) / (high - low) * 255, 0, 255))
    assert np.abs(np.moveaxis(rgb, -1, 0).astype(int) - expected).max() <= 1
    assert (rgb[160:180, 300:320] == (255, 0, 255)).all()  # the magenta target stays magenta


def test_8_bit_data_is_read_as_it_is_unless_asked(tmp_path, image):
    path = write_geotiff(tmp_path / "u8.tif", as_bands(image))
    with SceneReader(path) as reader:
        assert reader.stretch.identity
        assert np.array_equal(reader.read((64, 32, 128, 128), (128, 128))[0], image[32:160, 64:192])
    with SceneReader(path, stretch="always") as reader:
        assert not reader.stretch.identity


def test_nodata_is_black_and_never_stretches_the_percentiles(tmp_path, image):
    data = as_bands(image).astype(np.uint16) * 200 + 1000
    data[:, :, :256] = 0  # the left half is nodata
    path = write_geotiff(tmp_path / "nodata.tif", data, nodata=0)
    with SceneReader(path) as reader:
        assert min(reader.stretch.low) >= 1000  # percentiles of the valid half only
        right = np.percentile(data[:, :, 256:].reshape(3, -1), 2, axis=1)
        assert np.allclose(reader.stretch.low, right, rtol=0.05)
        rgb, valid = reader.read((192, 0, 128, 128), (128, 128))
    assert not valid[:, :64].any() and valid[:, 64:].all()
    assert (rgb[:, :64] == 0).all()


def test_float_data_with_nan_and_nodata(tmp_path, image):
    data = as_bands(image).astype(np.float32) / 255.0
    data[:, :100, :] = np.nan  # no nodata value set: non-finite values are nodata all the same
    data[:, 100:120, :] = -9999.0
    path = write_geotiff(tmp_path / "float.tif", data, nodata=-9999.0)
    with SceneReader(path) as reader:
        assert reader.dtype == "float32" and min(reader.stretch.low) >= 0 and max(reader.stretch.high) <= 1
        rgb, valid = reader.read((0, 64, 128, 128), (128, 128))
    assert not valid[:56].any() and valid[56:].all() and (rgb[:56] == 0).all()
    assert (reader.overview.shape[0], reader.overview.shape[1]) == (512, 512)


def test_a_nodata_override_applies_to_every_band(tmp_path, image):
    data = as_bands(image).astype(np.uint16) * 200 + 1000
    data[:, :64, :] = 7  # a fill value the file does not declare
    path = write_geotiff(tmp_path / "fill.tif", data)
    with SceneReader(path, nodata=7) as reader:
        assert not reader.read((0, 0, 64, 64), (64, 64))[1].any()
        assert min(reader.stretch.low) >= 1000


def test_reads_stay_bounded_on_a_large_scene(tmp_path, monkeypatch):
    # a 3000 x 2000 scene: the overview is read decimated and tiles one window at a time, never the whole scene
    path = write_geotiff(tmp_path / "large.tif", np.zeros((3, 2000, 3000), np.uint8) + 1)
    shapes: list[tuple[int, int]] = []
    original = SceneReader._read_raw

    def recording(self, window, shape, resampling):
        shapes.append(shape)
        return original(self, window, shape, resampling)

    monkeypatch.setattr(SceneReader, "_read_raw", recording)
    with SceneReader(path) as reader:
        assert max(reader.overview.shape[:2]) == OVERVIEW_SIDE
        reader.read((1000, 1000, 384, 384), (192, 192))  # a tile at scale 2: read resampled
    assert shapes == [(683, 1024), (192, 192)]


def test_a_corrupt_file_is_named(tmp_path, image):
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    with pytest.raises(SceneError, match=r"garbage\.tif: not a readable raster"):
        SceneReader(garbage)
    truncated = tmp_path / "truncated.tif"
    whole = write_geotiff(tmp_path / "whole.tif", as_bands(image)).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(SceneError, match=r"truncated\.tif"):
        SceneReader(truncated)
    with pytest.raises(SceneError, match="scene not found"):
        SceneReader(tmp_path / "missing.tif")


def test_a_plain_tiff_has_no_map_coordinates(tmp_path, image):
    plain = tmp_path / "plain.tif"
    cv2.imwrite(str(plain), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    geo, reason = scene_georeference(plain)
    assert geo is None and "no georeference" in reason
    assert not needs_scene_reading(plain)  # a plain 8-bit RGB TIFF is read as a picture, as before
    with SceneReader(plain) as reader:
        assert reader.georef is None and "no map coordinates" in reader.describe()
    geotiff = write_geotiff(tmp_path / "geo.tif", as_bands(image))
    assert needs_scene_reading(geotiff) and needs_scene_reading(Path(tmp_path / "missing.tif"))
