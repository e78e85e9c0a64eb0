"""GeoTIFF uploads for the grounding API: read as a scene into one 8-bit RGB picture, limits checked on the header,
other uploads left to the picture decoders, unreadable TIFFs answered with 415."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from helpers.geotiff import TARGET_BOX, as_bands, mosaic, write_geotiff
from rsvg.geo import upload
from rsvg.geo.raster import SceneReader
from rsvg.geo.upload import SceneUploadError, decode_scene_upload

LIMITS = {"max_pixels": 64_000_000, "max_side": 16_384}


@pytest.fixture(scope="module")
def scene_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    data = as_bands(mosaic()).astype(np.uint16) * 200 + 1000
    data[:, :40, :] = 0
    path = write_geotiff(tmp_path_factory.mktemp("upload") / "scene.tif", data, nodata=0)
    return path.read_bytes()


def test_a_16_bit_geotiff_upload_becomes_one_rgb_picture(scene_bytes, tmp_path, monkeypatch):
    monkeypatch.setattr(upload, "STRIP_ROWS", 100)  # several strips
    rgb = decode_scene_upload(scene_bytes, **LIMITS)
    assert rgb is not None and rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
    x1, y1, x2, y2 = TARGET_BOX
    assert (rgb[y1:y2, x1:x2] == (255, 0, 255)).all() and (rgb[:40] == 0).all()
    path = tmp_path / "same.tif"
    path.write_bytes(scene_bytes)
    with SceneReader(path) as reader:  # strip by strip is the same as one read
        assert np.array_equal(rgb, reader.read((0, 0, 512, 512), (512, 512))[0])


def test_other_uploads_are_left_to_the_picture_decoders():
    image = mosaic()[:64, :64]
    assert decode_scene_upload(cv2.imencode(".jpg", image)[1].tobytes(), **LIMITS) is None
    assert decode_scene_upload(cv2.imencode(".tif", image)[1].tobytes(), **LIMITS) is None  # plain 8-bit TIFF


def test_limits_and_unreadable_files(scene_bytes):
    with pytest.raises(SceneUploadError) as info:
        decode_scene_upload(scene_bytes, max_pixels=100_000, max_side=16_384)
    assert info.value.status == 413 and "512x512" in info.value.detail
    with pytest.raises(SceneUploadError) as info:
        decode_scene_upload(scene_bytes, max_pixels=64_000_000, max_side=500)
    assert info.value.status == 413
    with pytest.raises(SceneUploadError) as info:
        decode_scene_upload(b"II*\x00" + b"\x07" * 2000, **LIMITS)
    assert info.value.status == 415 and "upload" in info.value.detail
    with pytest.raises(SceneUploadError) as info:
        decode_scene_upload(scene_bytes[:6000], **LIMITS)  # cut short: the header reads, the pixels do not
    assert info.value.status == 415 and "upload" in info.value.detail and "vsimem" not in info.value.detail


def test_the_grounding_api_takes_a_16_bit_geotiff(scene_bytes):
    """POST /api/ground with the scene: answered in the scene's pixels; over the pixel limit it is 413."""
    from fastapi.testclient import TestClient

    from rsvg.results import GroundingResult
    from rsvg.web.app import create_app
    from rsvg.web.guards import Limits

    seen = []

    class RecordingGrounder:
        def predict(self, image, query, return_attention=False, need_score=False):
            seen.append(image)
            return GroundingResult((1.0, 2.0, 3.0, 4.0), image.shape[1], image.shape[0])

    files = {"image": ("scene.tif", scene_bytes, "image/tiff")}
    client = TestClient(create_app(grounder=RecordingGrounder()))  # type: ignore[arg-type]
    r = client.post("/api/ground", files=files, data={"query": "the magenta target"})
    assert r.status_code == 200, r.text
    assert (r.json()["width"], r.json()["height"]) == (512, 512)
    x1, y1, x2, y2 = TARGET_BOX
    assert seen[0].dtype == np.uint8 and (seen[0][y1:y2, x1:x2] == (255, 0, 255)).all()
    small = TestClient(create_app(grounder=RecordingGrounder(), limits=Limits(max_image_pixels=512 * 511)))  # type: ignore[arg-type]
    assert small.post("/api/ground", files=files, data={"query": "x"}).status_code == 413
