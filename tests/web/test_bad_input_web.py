"""Bad input of the web server: ``POST /api/ground`` answers each kind with its HTTP status and a sentence that
names what was wrong (never a 500), gives the warnings ``rsvg ground`` prints, and clips its box to the image;
``rsvg serve`` and ``create_app`` refuse a device, a database or a dataset they cannot use before serving."""

from __future__ import annotations

import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from helpers.geotiff import write_geotiff
from helpers.models import lite_checkpoint
from rsvg.cli import app as cli
from rsvg.errors import DeviceError, ReviewDBError
from rsvg.inference import Grounder
from rsvg.web.app import create_app


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` × ``height`` (a decompression bomb's first bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def geotiff(bands: np.ndarray) -> bytes:
    """A georeferenced GeoTIFF of ``bands`` (count × H × W) as bytes."""
    with tempfile.TemporaryDirectory() as folder:
        return write_geotiff(Path(folder) / "scene.tif", bands).read_bytes()


def png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def noise(h: int, w: int, channels: int = 3, dtype=np.uint8, high: int = 255) -> np.ndarray:
    return np.random.default_rng(0).integers(0, high, (h, w, channels), dtype=dtype)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lite_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def client(checkpoint: Path) -> TestClient:
    return TestClient(create_app(grounder=Grounder.from_checkpoint(checkpoint)))


def _ground(client: TestClient, data: bytes, query: str = "the ship on the left"):
    return client.post("/api/ground", files={"image": ("x.png", data, "image/png")}, data={"query": query})


REFUSED: list[tuple[str, Callable[[], bytes], str, int, list[str]]] = [
    # name, upload, query, status, what the answer must name
    (
        "header over the pixel limit",
        lambda: png_header_only(20_000, 20_000),
        "a ship",
        413,
        ["20000x20000", "64,000,000 pixels"],
    ),
    ("1x1 image", lambda: png(noise(1, 1)), "a ship", 422, ["upload", "1x1", "too small"]),
    ("3000x2 image", lambda: png(noise(2, 3000)), "a ship", 422, ["3000x2", "too small"]),
    ("4x4 GeoTIFF", lambda: geotiff(np.ones((3, 4, 4), np.uint16)), "a ship", 422, ["upload", "4x4", "too small"]),
    ("empty upload", lambda: b"", "a ship", 400, ["empty"]),
    ("not an image", lambda: b"just some text" * 20, "a ship", 415, ["not an image"]),
    ("query of spaces", lambda: png(noise(40, 50)), "   ", 422, ["query is empty"]),
]


@pytest.mark.parametrize(("name", "upload", "query", "status", "named"), REFUSED, ids=[c[0] for c in REFUSED])
def test_ground_refuses(client: TestClient, name: str, upload, query: str, status: int, named: list[str]) -> None:
    r = _ground(client, upload(), query)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "Traceback" not in detail
    for part in named:
        assert part in detail, (part, detail)


WARNED: list[tuple[str, Callable[[], bytes], str, list[str]]] = [
    # name, upload, query, what one of the warnings must name (the box is still given: 200)
    ("query in another script", lambda: png(noise(40, 50)), "左边的绿色储罐", ["unknown to the text encoder"]),
    ("16-bit PNG", lambda: png(noise(40, 50, dtype=np.uint16, high=4095)), "a ship", ["upload", "16-bit"]),
    ("transparent pixels", lambda: png(np.zeros((40, 50, 4), np.uint8)), "a ship", ["100.0%", "transparent"]),
]


@pytest.mark.parametrize(("name", "upload", "query", "named"), WARNED, ids=[c[0] for c in WARNED])
def test_ground_warns_as_the_command_line_does(client: TestClient, name: str, upload, query: str, named) -> None:
    r = _ground(client, upload(), query)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["warnings"] and body["box"] is not None
    for part in named:
        assert any(part in w for w in body["warnings"]), (part, body["warnings"])


def test_a_plain_answer_has_a_score_no_warning_and_a_box_inside_the_image(client: TestClient) -> None:
    for h, w in [(90, 120), (8, 600), (600, 8)]:  # elongated: the model's raw box reaches past the edges
        body = _ground(client, png(noise(h, w))).json()
        x1, y1, x2, y2 = body["box"]
        assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h, body["box"]
        assert body["warnings"] == [] and 0 < body["score"] <= 1


def test_create_app_refuses_a_device_and_a_database_it_cannot_use(checkpoint: Path, official_dataset: Path, tmp_path):
    with pytest.raises(DeviceError, match="--device 'tpu'"):
        create_app(checkpoint, device="tpu")
    with pytest.raises(ReviewDBError, match="does not exist"):
        create_app(dataset=official_dataset, db_path=tmp_path / "nowhere" / "review.sqlite3")
    assert not (tmp_path / "nowhere").exists()


SERVE_CASES: list[tuple[str, Callable[[Path, Path, Path], list[str]], list[str]]] = [
    # name, arguments from (checkpoint, dataset, tmp folder), what the message must name
    ("unknown device", lambda c, d, t: ["--checkpoint", str(c), "--device", "tpu"], ["--device", "tpu"]),
    (
        "--db in a missing folder",
        lambda c, d, t: ["--dataset", str(d), "--db", str(t / "no" / "r.db")],
        ["r.db", "does not exist"],
    ),
    ("--db is a folder", lambda c, d, t: ["--dataset", str(d), "--db", str(t)], ["is a folder"]),
    ("--dataset mistyped", lambda c, d, t: ["--dataset", str(t / "TYPO")], ["TYPO"]),
]


@pytest.mark.parametrize(("name", "setup", "named"), SERVE_CASES, ids=[c[0] for c in SERVE_CASES])
def test_serve_refuses(checkpoint, official_dataset, tmp_path, monkeypatch, name: str, setup, named) -> None:
    started = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append(k))
    res = CliRunner().invoke(cli, ["serve", *setup(checkpoint, official_dataset, tmp_path)], terminal_width=300)
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "Traceback" not in res.output and not started, res.output
    for part in named:
        assert part in text, (part, res.output)
    assert not (tmp_path / "no").exists()
