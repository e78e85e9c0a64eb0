"""The JSON API through FastAPI's test client: grounding, the review endpoints, and bad input of every kind."""

from __future__ import annotations

import io
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from helpers.datasets import make_official_dataset
from helpers.images import png_header_only
from helpers.models import tiny_checkpoint
from rsvg.commands.serve import serve
from rsvg.inference import Grounder
from rsvg.results import GroundingResult
from rsvg.web.app import create_app
from rsvg.web.dataset_view import default_db_path
from rsvg.web.guards import Limits
from rsvg.web.server import BackgroundServer


def jpeg_bytes(width: int = 120, height: int = 90) -> bytes:
    img = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def grounder(checkpoint: Path) -> Grounder:
    return Grounder.from_checkpoint(checkpoint)


@pytest.fixture
def client(official_dataset: Path, grounder: Grounder) -> TestClient:
    return TestClient(create_app(dataset=official_dataset, grounder=grounder))


def _ground(client: TestClient, data: bytes, query: str = "the ship on the left", **fields) -> httpx.Response:
    return client.post("/api/ground", files={"image": ("x.jpg", data, "image/jpeg")}, data={"query": query, **fields})


# ---- grounding ------------------------------------------------------------------------------------------------


def test_ground_upload_and_dataset_image(client: TestClient, official_dataset: Path):
    r = _ground(client, jpeg_bytes(120, 90), attention="true")
    assert r.status_code == 200, r.text
    body = r.json()
    x1, y1, x2, y2 = body["box"]
    assert (body["width"], body["height"]) == (120, 90) and 0 <= x1 <= x2 and 0 <= y1 <= y2
    assert body["timing"]["total_ms"] >= body["timing"]["inference_ms"] > 0
    assert body["attention_png"].startswith("data:image/png;base64,")
    r = client.post("/api/ground", data={"query": "a round storage tank", "dataset_image": "00001"})
    assert r.status_code == 200 and r.json()["width"] == 200 and r.json()["attention_png"] is None
    # the same image uploaded gives the same box
    same = _ground(client, (official_dataset / "JPEGImages" / "00001.jpg").read_bytes(), "a round storage tank")
    assert same.json()["box"] == r.json()["box"]


def test_model_loaded_once_per_app(official_dataset, checkpoint, monkeypatch):
    calls = []
    original = Grounder.from_checkpoint.__func__

    def counting(cls, path, device="cpu", **kwargs):
        calls.append(path)
        return original(cls, path, device, **kwargs)

    monkeypatch.setattr(Grounder, "from_checkpoint", classmethod(counting))
    client = TestClient(create_app(checkpoint, official_dataset))
    for _ in range(3):
        assert _ground(client, jpeg_bytes()).status_code == 200
    assert len(calls) == 1


def test_ground_bad_inputs(client: TestClient):
    cases = {
        "not an image": (_ground(client, b"GIF89a? no, just text"), 415),
        "empty file": (_ground(client, b""), 400),
        "huge image": (_ground(client, png_header_only(40_000, 40_000)), 413),
        "too wide": (_ground(client, png_header_only(20_000, 10)), 413),
        "empty query": (_ground(client, jpeg_bytes(), "   "), 422),
        "long query": (_ground(client, jpeg_bytes(), "the ship " * 40), 422),
        "no query": (client.post("/api/ground", files={"image": ("x.jpg", jpeg_bytes(), "image/jpeg")}), 422),
        "no image": (client.post("/api/ground", data={"query": "a ship"}), 400),
        "both": (
            client.post(
                "/api/ground",
                files={"image": ("x.jpg", jpeg_bytes(), "image/jpeg")},
                data={"query": "a ship", "dataset_image": "00001"},
            ),
            400,
        ),
        "unknown dataset image": (client.post("/api/ground", data={"query": "a", "dataset_image": "../train"}), 404),
        "garbage multipart": (
            client.post(
                "/api/ground", content=b"--xx\r\nnonsense", headers={"content-type": "multipart/form-data; boundary=xx"}
            ),
            (400, 422),
        ),
        "json instead of a form": (client.post("/api/ground", json={"query": "a"}), 422),
    }
    for name, (response, expected) in cases.items():
        allowed = expected if isinstance(expected, tuple) else (expected,)
        assert response.status_code in allowed, (name, response.status_code, response.text)
        assert isinstance(response.json()["detail"], (str, list)), name
    # a truncated JPEG decodes partly or is refused, never a server error
    truncated = _ground(client, jpeg_bytes()[:300])
    assert truncated.status_code in (200, 415)
    assert client.get("/api/status").json()["model_loaded"]


def test_upload_size_limit(official_dataset, grounder):
    client = TestClient(create_app(dataset=official_dataset, grounder=grounder, limits=Limits(max_upload_bytes=20_000)))
    big = np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    data = cv2.imencode(".png", big)[1].tobytes()
    assert len(data) > 20_000
    r = _ground(client, data)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # streamed without a Content-Length: cut off as soon as it passes the limit
    r = client.post(
        "/api/ground",
        content=iter([b"x" * 15_000, b"x" * 15_000]),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413
    r = client.post(
        "/api/review/decision", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_no_model_and_no_dataset(official_dataset):
    bare = TestClient(create_app())
    assert _ground(bare, jpeg_bytes()).status_code == 503
    assert bare.get("/api/review/progress").status_code == 404
    assert "--dataset" in bare.get("/api/review/item/0").json()["detail"]
    assert bare.get("/").status_code == 200 and bare.get("/review").status_code == 200


def test_inference_does_not_block_the_event_loop(official_dataset):
    """/api/status answers while a grounding request is inside the model (held there until the status came)."""
    entered, release = threading.Event(), threading.Event()

    class HeldGrounder:
        def predict(self, image, query, return_attention=False, need_score=False):
            entered.set()
            assert release.wait(30), "the test never let the model go"
            return GroundingResult((1.0, 2.0, 3.0, 4.0), image.shape[1], image.shape[0])

    app = create_app(dataset=official_dataset, grounder=HeldGrounder())  # type: ignore[arg-type]
    with BackgroundServer(app) as server, ThreadPoolExecutor(2) as pool:
        held = pool.submit(
            httpx.post,
            f"{server.url}/api/ground",
            data={"query": "a"},
            files={"image": ("x.jpg", jpeg_bytes(), "image/jpeg")},
            timeout=60,
        )
        try:
            assert entered.wait(30)
            assert httpx.get(f"{server.url}/api/status", timeout=30).status_code == 200
            assert not held.done()  # answered while the model still holds the other request
        finally:
            release.set()
        assert held.result().json()["box"] == [1.0, 2.0, 3.0, 4.0]


# ---- pages, docs, files -----------------------------------------------------------------------------------------


def test_pages_docs_and_file_serving(client: TestClient, official_dataset: Path):
    for path in ("/", "/review"):
        r = client.get(path)
        assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
        links = re.findall(r'(?:src|href)="([^"]*)"', r.text)
        assert links and all(link.startswith("/") for link in links), links  # everything local, no CDN
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/ground", "/api/review/decision", "/api/review/undo"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/api/ground"]["post"]["requestBody"]["content"]
    img = client.get("/dataset/images/00001")
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert img.content == (official_dataset / "JPEGImages" / "00001.jpg").read_bytes()
    for bad in (
        "/dataset/images/..%2Ftrain.txt",
        "/dataset/images/%2E%2E",
        "/dataset/images/review.sqlite3",
        "/dataset/images/../../etc/passwd",
        "/static/..%2F..%2Fapp.py",
        "/static/../review_db.py",
        "/dataset/Annotations/00001.xml",
        "/review.sqlite3",
    ):
        r = client.get(bad)
        assert r.status_code == 404, (bad, r.status_code)


def test_host_and_origin_checks(official_dataset, grounder):
    app = create_app(dataset=official_dataset, grounder=grounder, allowed_hosts=["127.0.0.1", "localhost"])
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    assert client.get("/api/status").status_code == 200
    assert client.get("/api/status", headers={"host": "evil.example"}).status_code == 400  # DNS rebinding
    decision = {"index": 0, "annotator": "a", "action": "accept"}
    r = client.post("/api/review/decision", json=decision, headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    r = client.post("/api/review/decision", json=decision, headers={"origin": "null"})  # e.g. a sandboxed frame
    assert r.status_code == 403
    r = client.post("/api/review/decision", json=decision, headers={"origin": "http://127.0.0.1:8000"})
    assert r.status_code == 200


# ---- review API ---------------------------------------------------------------------------------------------


def _decide(client: TestClient, index: int, action: str, annotator: str = "alice", **extra) -> httpx.Response:
    return client.post("/api/review/decision", json={"index": index, "annotator": annotator, "action": action, **extra})


def test_review_flow_filters_progress_undo(client: TestClient):
    item = client.get("/api/review/item/3").json()
    assert item["category"] == "ship" and item["split"] == "train" and item["status"] == "unreviewed"
    assert item["original_box"] == [120.0, 130.0, 160.0, 150.0] and item["image_url"] == "/dataset/images/00002"
    assert client.get("/api/review/next", params={"status": "unreviewed"}).json() == {"index": 0}
    assert _decide(client, 0, "accept").json()["item"]["status"] == "accepted"
    assert _decide(client, 1, "reject", "bob").status_code == 200
    r = _decide(client, 3, "edit", description="  the   large ship ", box=[110, 120, 170, 155])
    edited = r.json()["item"]
    assert edited["status"] == "edited" and edited["description"] == "the large ship"
    assert edited["box"] == [110, 120, 170, 155]
    assert edited["original_description"] == "The large ship on the lower right"
    only_text = _decide(client, 4, "edit", description="the gray car").json()["item"]
    assert only_text["box"] == only_text["original_box"]
    assert _decide(client, 5, "skip").json()["item"]["status"] == "unreviewed"
    progress = client.get("/api/review/progress").json()
    assert {k: progress[k] for k in ("total", "done", "accepted", "rejected", "edited", "unreviewed")} == {
        "total": 6,
        "done": 4,
        "accepted": 1,
        "rejected": 1,
        "edited": 2,
        "unreviewed": 2,
    }
    assert progress["annotators"] == {"alice": 3, "bob": 1}
    assert client.get("/api/review/progress", params={"category": "ship"}).json()["done"] == 1
    nxt = lambda **p: client.get("/api/review/next", params=p).json()["index"]  # noqa: E731
    assert nxt(after=0, status="unreviewed") == 2
    assert nxt(after=2, status="unreviewed") == 5
    assert nxt(after=5, status="unreviewed") == 2  # wraps
    assert nxt(after=5, status="unreviewed", wrap=False) is None
    assert nxt(after=-1, status="rejected") == 1
    assert nxt(after=-1, status="all", category="vehicle") == 4
    assert nxt(after=3, direction="prev", status="all") == 2
    assert nxt(after=0, direction="prev", status="all", wrap=False) is None
    # undo: alice's latest decision still in force is the edit of 4 (skips count too: the skip of 5 first)
    assert client.post("/api/review/undo", json={"annotator": "alice"}).json()["undone"]["action"] == "skip"
    undone = client.post("/api/review/undo", json={"annotator": "alice"}).json()
    assert undone["undone"]["index"] == 4 and undone["item"]["status"] == "unreviewed"
    assert undone["item"]["history"][0]["undone_by"] == "alice"
    assert client.post("/api/review/undo", json={"annotator": "nobody"}).json() == {"undone": None, "item": None}


def test_review_shows_each_annotators_verdict_and_the_disputes(client: TestClient):
    _decide(client, 2, "accept", "alice")
    item = _decide(client, 2, "reject", "bob").json()["item"]
    assert item["status"] == "rejected" and item["disputed"]  # the latest decision, marked disputed
    verdicts = [(v["annotator"], v["status"]) for v in item["verdicts"]]
    assert verdicts == [("alice", "accepted"), ("bob", "rejected")]
    _decide(client, 4, "accept", "alice")
    assert not _decide(client, 4, "accept", "bob").json()["item"]["disputed"]
    progress = client.get("/api/review/progress").json()
    assert progress["disputed"] == 1 and progress["done"] == 2
    assert client.get("/api/review/progress", params={"category": "vehicle"}).json()["disputed"] == 0
    nxt = lambda **p: client.get("/api/review/next", params=p).json()["index"]  # noqa: E731
    assert nxt(after=-1, status="disputed") == 2 and nxt(after=2, status="disputed", wrap=False) is None
    # per annotator in the agreement: alice and bob share two expressions, one verdict the same
    by_annotator = progress["agreement"]["by_annotator"]
    assert [(a["annotator"], a["expressions"], a["same_verdict"]) for a in by_annotator] == [
        ("alice", 2, 0.5),
        ("bob", 2, 0.5),
    ]
    # settled: bob's reject undone, the dispute is gone
    client.post("/api/review/undo", json={"annotator": "bob"})
    client.post("/api/review/undo", json={"annotator": "bob"})
    assert client.get("/api/review/progress").json()["disputed"] == 0
    assert not client.get("/api/review/item/2").json()["disputed"]


def test_decision_retry_and_conflict(client: TestClient):
    first = _decide(client, 2, "reject", request_id="abc").json()
    again = _decide(client, 2, "reject", request_id="abc").json()
    assert first["created"] and not again["created"] and first["decision"]["id"] == again["decision"]["id"]
    assert _decide(client, 3, "accept", request_id="abc").status_code == 409
    assert len(client.get("/api/review/item/2").json()["history"]) == 1


def test_decision_bad_inputs_leave_the_database_intact(client: TestClient, official_dataset: Path):
    _decide(client, 0, "accept")
    bad = [
        ({"index": 6, "annotator": "a", "action": "accept"}, 404),
        ({"index": -1, "annotator": "a", "action": "accept"}, 422),
        ({"index": 0, "annotator": "a", "action": "delete"}, 422),
        ({"index": 0, "annotator": "", "action": "accept"}, 422),
        ({"index": 0, "annotator": "\x00\x01", "action": "accept"}, 422),
        ({"index": 0, "annotator": "a" * 65, "action": "accept"}, 422),
        ({"index": 0, "action": "accept"}, 422),
        ({"index": "zero", "annotator": "a", "action": "accept"}, 422),
        ({"index": 0, "annotator": "a", "action": "edit", "description": "   "}, 422),
        ({"index": 0, "annotator": "a", "action": "edit", "box": [10, 10, 5, 20]}, 422),
        ({"index": 0, "annotator": "a", "action": "edit", "box": [10, 10, 20]}, 422),
        ({"index": 0, "annotator": "a", "action": "edit", "box": [0, 0, 500, 20]}, 422),
        ({"index": 0, "annotator": "a", "action": "edit", "box": [-5, 0, 50, 20]}, 422),
        ({"index": 0, "annotator": "a", "action": "edit", "description": "x" * 1001}, 422),
    ]
    for body, status in bad:
        r = client.post("/api/review/decision", json=body)
        assert r.status_code == status, (body, r.status_code, r.text)
    raw = [
        (b'{"index": 0, "annotator": "a", "action": "edit", "box": [NaN, 0, 5, 5]}', "application/json"),
        (b'{"index": 0, "annotator": "a", "action": "edit", "box": [1e999, 0, 5, 5]}', "application/json"),
        (b'{"index": 0, "annot', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"index=0&annotator=a&action=accept", "application/x-www-form-urlencoded"),
        (b'{"index": 0, "annotator": "a", "action": "accept"}', "text/plain"),
    ]
    for content, ctype in raw:
        r = client.post("/api/review/decision", content=content, headers={"content-type": ctype})
        assert r.status_code in (400, 422), (content, r.status_code, r.text)
    assert client.post("/api/review/undo", json={"annotator": "a", "decision_id": 0}).status_code == 422
    assert client.get("/api/review/item/99").status_code == 404
    assert client.get("/api/review/item/abc").status_code == 422
    assert client.get("/api/review/next", params={"status": "bogus"}).status_code == 422
    with sqlite3.connect(default_db_path(official_dataset)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 1


def test_serve_command(official_dataset, tmp_path, monkeypatch):
    seen = {}

    def fake_run(app, host, port, **kwargs):
        seen.update(app=app, host=host, port=port)

    monkeypatch.setattr("uvicorn.run", fake_run)
    app = typer.Typer()
    app.command()(serve)
    runner = CliRunner()
    result = runner.invoke(app, ["--dataset", str(official_dataset), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8123)  # loopback unless told otherwise
    client = TestClient(seen["app"], base_url="http://127.0.0.1:8123")
    assert client.get("/api/review/progress").json()["total"] == 6
    assert client.get("/api/status", headers={"host": "attacker.example"}).status_code == 400
    assert default_db_path(official_dataset).is_file()
    result = runner.invoke(app, ["--dataset", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not found" in result.output
    result = runner.invoke(app, ["--checkpoint", str(tmp_path / "missing")])
    assert result.exit_code == 2
    other = make_official_dataset(tmp_path / "other")
    (other / "Annotations" / "00001.xml").write_text("<annotation><object>")  # malformed
    assert runner.invoke(app, ["--dataset", str(other)]).exit_code == 2


def test_jpeg_helper_roundtrip():
    assert cv2.imdecode(np.frombuffer(jpeg_bytes(10, 8), np.uint8), cv2.IMREAD_COLOR).shape == (8, 10, 3)
    from PIL import Image

    assert Image.open(io.BytesIO(png_header_only(40_000, 30))).size == (40_000, 30)
