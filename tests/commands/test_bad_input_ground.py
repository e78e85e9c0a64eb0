"""Bad input of ``rsvg ground``, ``rsvg compare`` and ``rsvg users``, one table per command: every case ends in a
clear message that names the file, line, field or option (exit 2), never a traceback, a silent success or a new
file where none was asked for; what rsvg accepts on purpose is said in a warning. Boxes given to users lie inside
their image. A new case is one line in a table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers.datasets import make_official_dataset
from helpers.geotiff import write_geotiff
from helpers.images import png_header_only
from helpers.models import lite_checkpoint, tiny_checkpoint
from rsvg.cli import app
from rsvg.errors import AccountError, DeviceError, NonFiniteError
from rsvg.inference import Grounder, clip_box
from rsvg.web.accounts import FAILED_LOGIN_LIMIT, AccountStore, LoginThrottled

runner = CliRunner()
PASSWORD = "correct horse battery"


def _text(res) -> str:
    """The output with rich's line wrapping undone (long paths and sentences are wrapped at the console width)."""
    return " ".join(res.output.split())


def _clean(res) -> None:
    """No traceback, no exception escaped the command (only its exit), no doubled prefix."""
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "error: error:" not in res.output


def _refused(res, named: list[str], code: int = 2) -> None:
    _clean(res)
    assert res.exit_code == code, res.output
    for part in named:
        assert part in _text(res), (part, res.output)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny lite-config checkpoint (ranking, second look, refinement: answers with a first look's box too)."""
    return lite_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_official_dataset(tmp_path_factory.mktemp("ground_data") / "data")


# ---- rsvg ground ----------------------------------------------------------------------------------------------

# each setup writes what it needs under the folder it is given and returns the arguments after the checkpoint
Setup = Callable[[Path, Path], list[str]]


def _image(data: Path) -> str:
    return str(data / "JPEGImages" / "00001.jpg")


def _write(path: Path, content: bytes | str) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


def _png(path: Path, array: np.ndarray) -> str:
    cv2.imwrite(str(path), array)
    return str(path)


def _batch(tmp: Path, text: str, name: str = "pairs.csv") -> list[str]:
    return ["--batch", _write(tmp / name, text)]


GROUND_CASES: list[tuple[str, Setup, list[str]]] = [
    # name, setup (tmp folder, dataset) -> arguments, what the message must name
    (
        "header over the pixel limit",
        lambda t, d: [_write(t / "big.png", png_header_only(20_000, 20_000)), "a ship"],
        ["big.png", "20000x20000", "64,000,000", "--max-image-pixels"],
    ),
    (
        "over a lowered pixel limit",
        lambda t, d: ["--max-image-pixels", "1000", _image(d), "a ship"],
        ["00001.jpg", "1,000 pixels", "--max-image-pixels"],
    ),
    (
        "over a lowered side limit",
        lambda t, d: ["--max-image-side", "100", _image(d), "a ship"],
        ["00001.jpg", "100 pixels per side", "--max-image-side"],
    ),
    (
        "--out is a file",
        lambda t, d: ["--out", _write(t / "taken", "keep me"), _image(d), "a ship"],
        ["--out", "taken", "is a file"],
    ),
    (
        "--out under a file",
        lambda t, d: ["--out", str(Path(_write(t / "f", "x")) / "sub"), _image(d), "a ship"],
        ["--out", "is a file"],
    ),
    ("--out is the checkpoint", lambda t, d: ["--out", "CHECKPOINT", _image(d), "a ship"], ["--out", "--checkpoint"]),
    ("--geojson is a folder", lambda t, d: ["--geojson", str(t), _image(d), "a ship"], ["--geojson", "is a folder"]),
    (
        "--overview is the image",
        lambda t, d: ["--overview", _image(d), _image(d), "a ship"],
        ["--overview", "00001.jpg", "input"],
    ),
    (
        "two outputs in one file",
        lambda t, d: ["--geojson", str(t / "a.json"), "--geojson-4326", str(t / "a.json"), _image(d), "a ship"],
        ["--geojson-4326", "a.json", "--geojson"],
    ),
    ("unknown device", lambda t, d: ["--device", "tpu", _image(d), "a ship"], ["--device", "tpu"]),
    ("unknown precision", lambda t, d: ["--precision", "fp16", _image(d), "a ship"], ["--precision"]),
    ("image is a folder", lambda t, d: [str(t), "a ship"], ["a folder, not an image file"]),
    ("image missing", lambda t, d: [str(t / "nowhere.jpg"), "a ship"], ["nowhere.jpg", "not found"]),
    ("zero-byte image", lambda t, d: [_write(t / "empty.png", b""), "a ship"], ["empty.png", "empty file"]),
    (
        "1x1 image",
        lambda t, d: [_png(t / "dot.png", np.zeros((1, 1, 3), np.uint8)), "a ship"],
        ["dot.png", "1x1", "too small"],
    ),
    (
        "3000x1 image",
        lambda t, d: [_png(t / "line.png", np.zeros((1, 3000, 3), np.uint8)), "a ship"],
        ["line.png", "3000x1", "too small"],
    ),
    ("query of spaces", lambda t, d: [_image(d), "   "], ["00001.jpg", "query is empty"]),
    ("no query", lambda t, d: [_image(d)], ["IMAGE and QUERY"]),
    (
        "IMAGE QUERY and --batch",
        lambda t, d: [*_batch(t, f"image,query\n{_image(d)},a ship\n"), _image(d), "a"],
        ["not both"],
    ),
    ("batch header only", lambda t, d: _batch(t, "image,query\n"), ["pairs.csv", "no rows"]),
    ("batch empty file", lambda t, d: _batch(t, ""), ["pairs.csv"]),
    (
        "batch without the columns",
        lambda t, d: _batch(t, "img,text\na.jpg,a ship\n"),
        ["pairs.csv:1", "image and query"],
    ),
    (
        "batch row with an empty query",
        lambda t, d: _batch(t, f"image,query\n{_image(d)},a ship\n{_image(d)},  \n"),
        ["pairs.csv:3", "query is empty"],
    ),
    (
        "batch row with a missing image",
        lambda t, d: _batch(t, "image,query\nnowhere.jpg,a ship\n"),
        ["pairs.csv:2", "nowhere.jpg"],
    ),
    ("batch row with a folder", lambda t, d: _batch(t, f"image,query\n{t},a ship\n"), ["pairs.csv:2", "a folder"]),
    ("batch row without an image", lambda t, d: _batch(t, "image,query\n,a ship\n"), ["pairs.csv:2", "no image"]),
    (
        "batch not UTF-8",
        lambda t, d: ["--batch", _write(t / "bin.csv", b"\xff\xfe\x00\x81" * 50)],
        ["bin.csv", "not UTF-8"],
    ),
    ("batch is a folder", lambda t, d: ["--batch", str(t)], ["--batch", "is a folder"]),
    (
        "batch JSONL query null",
        lambda t, d: _batch(t, json.dumps({"image": _image(d), "query": None}) + "\n", "p.jsonl"),
        ["p.jsonl:1", "query is empty"],
    ),
    ("batch JSONL not an object", lambda t, d: _batch(t, "[1, 2]\n", "p.jsonl"), ["p.jsonl:1", "'image' and 'query'"]),
    ("--top-k 0", lambda t, d: ["--top-k", "0", _image(d), "a ship"], ["--top-k 0"]),
    ("no bands selected", lambda t, d: ["--bands", "", _image(d), "a ship"], ["--bands"]),
    (
        "scene under 8 px a side",
        lambda t, d: [str(write_geotiff(t / "tiny.tif", np.zeros((3, 4, 4), np.uint16))), "a ship"],
        ["tiny.tif", "4x4", "too small"],
    ),
    ("nodata no pixel can hold", lambda t, d: [_scene8(t), "a ship", "--nodata", "-1"], ["--nodata -1", "uint8"]),
    ("tiles under 8 px", lambda t, d: [_scene8(t), "a ship", "--scale", "0.01"], ["--scale 0.01", "too small"]),
]


def _scene8(tmp: Path) -> str:
    """A georeferenced 8-bit scene of 300 x 200 pixels."""
    rgb = np.random.default_rng(0).integers(0, 255, (3, 200, 300), dtype=np.uint8)
    return str(write_geotiff(tmp / "scene8.tif", rgb))


@pytest.mark.parametrize(("name", "setup", "named"), GROUND_CASES, ids=[c[0] for c in GROUND_CASES])
def test_ground(checkpoint: Path, data: Path, tmp_path: Path, name: str, setup: Setup, named: list[str]) -> None:
    args = [str(checkpoint) if a == "CHECKPOINT" else a for a in setup(tmp_path, data)]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    out = ["--out", str(tmp_path / "g")] if "--out" not in args else []
    res = runner.invoke(app, ["ground", "--checkpoint", str(checkpoint), *out, *args], terminal_width=300)
    _refused(res, named)
    assert '"box"' not in res.output  # nothing grounded
    assert not (tmp_path / "g").exists()  # and nothing written
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # the inputs are intact


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_ground_on_a_gpu_that_is_not_there(checkpoint: Path, data: Path, tmp_path: Path) -> None:
    args = ["ground", "--checkpoint", str(checkpoint), "--device", "cuda", _image(data), "a ship"]
    _refused(runner.invoke(app, [*args, "--out", str(tmp_path / "g")], terminal_width=300), ["--device cuda", "GPU"])
    with pytest.raises(DeviceError, match="device cuda"):
        Grounder.from_checkpoint(checkpoint, device="cuda")


WARNING_CASES: list[tuple[str, Callable[[Path], str], str, list[str]]] = [
    # name, image writer, query, what the warning must name (the box is still given: exit 0)
    (
        "16-bit PNG",
        lambda t: _png(t / "deep.png", np.full((40, 50, 3), 4095, np.uint16)),
        "a ship",
        ["deep.png", "16-bit"],
    ),
    (
        "transparent pixels",
        lambda t: _png(t / "clear.png", np.zeros((40, 50, 4), np.uint8)),
        "a ship",
        ["clear.png", "2,000 pixels (100.0%) are transparent"],
    ),
    (
        "query in another script",
        lambda t: _png(t / "ok.png", np.zeros((40, 50, 3), np.uint8)),
        "左边的绿色储罐",
        ["unknown to the text encoder"],
    ),
]


@pytest.mark.parametrize(("name", "write", "query", "named"), WARNING_CASES, ids=[c[0] for c in WARNING_CASES])
def test_ground_warns(checkpoint: Path, tmp_path: Path, name: str, write, query: str, named: list[str]) -> None:
    image = write(tmp_path)
    res = runner.invoke(
        app, ["ground", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "g"), image, query], terminal_width=300
    )
    _clean(res)
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and '"box"' in res.output
    for part in named:
        assert part in _text(res), (part, res.output)


def test_a_batch_with_one_bad_image_grounds_the_rest_and_names_the_line(checkpoint: Path, data: Path, tmp_path: Path):
    dot = _png(tmp_path / "dot.png", np.zeros((2, 2, 3), np.uint8))
    pairs = _write(tmp_path / "pairs.csv", f"image,query\n{_image(data)},a ship\n{dot},a ship\n")
    res = runner.invoke(
        app,
        ["ground", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "g"), "--batch", pairs],
        terminal_width=300,
    )
    _refused(res, ["pairs.csv:3", "dot.png", "too small"], code=1)
    assert res.output.count('"box"') == 1


# ---- boxes lie inside their image -----------------------------------------------------------------------------


def test_clip_box_keeps_a_box_inside_its_image() -> None:
    assert clip_box([132, -79, 532, 146], 400, 400) == (132.0, 0.0, 400.0, 146.0)
    assert clip_box([-5, -5, -1, -1], 10, 10) == (0.0, 0.0, 0.0, 0.0)


def _inside(box, width: float, height: float) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


def test_every_box_given_to_a_user_lies_in_its_image(checkpoint: Path, data: Path, tmp_path: Path) -> None:
    """The command line, the Python API (answer and first look) and a scene's answers; the images are elongated
    so that the model's raw boxes reach past their edges."""
    grounder = Grounder.from_checkpoint(checkpoint)
    rng = np.random.default_rng(0)
    for h, w in [(160, 200), (8, 600), (600, 8), (9, 9)]:
        result = grounder.predict(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "the ship on the left")
        assert _inside(result.box, w, h), (h, w, result.box)
        assert result.first_look_box is None or _inside(result.first_look_box, w, h), result.first_look_box
    wide = _png(tmp_path / "wide.png", rng.integers(0, 255, (10, 900, 3), dtype=np.uint8))
    res = runner.invoke(app, ["ground", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "g"), wide, "a ship"])
    assert res.exit_code == 0, res.output
    line = json.loads(res.output.strip().splitlines()[-1])
    assert _inside(line["box"], 900, 10) and _inside(line["first_look_box"] or line["box"], 900, 10)
    scene = write_geotiff(tmp_path / "scene.tif", rng.integers(0, 4000, (3, 100, 150), dtype=np.uint16))
    answers = grounder.ground_scene(scene, "a ship", top_k=3).answers
    assert answers and all(_inside(a.box, 150, 100) for a in answers)


# ---- rsvg compare ---------------------------------------------------------------------------------------------


def _row(index: int, query: str = "a ship", **changes) -> dict:
    row = {
        "index": index,
        "image_id": f"{index:05d}",
        "query": query,
        "category": "ship",
        "pred_box": [0.0, 0.0, 10.0, 10.0],
        "gt_box": [0.0, 0.0, 10.0, 10.0],
        "iou": 1.0,
    }
    row.update(changes)
    return {k: v for k, v in row.items() if v is not ...}


def _jsonl(path: Path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


GOOD = [_row(0), _row(1, "the tank")]
COMPARE_CASES: list[tuple[str, list, list, list[str], list[str]]] = [
    # name, rows of a.jsonl, rows of b.jsonl, extra arguments, what the message must name
    ("missing field", GOOD, [_row(0), _row(1, "the tank", iou=...)], [], ["b.jsonl:2", "'iou'", "missing"]),
    ("non-numeric field", [_row(0, pred_box=[0, 0, "x", 1]), GOOD[1]], GOOD, [], ["a.jsonl:1", "'pred_box'"]),
    ("NaN IoU", GOOD, [_row(0, iou=float("nan")), GOOD[1]], [], ["b.jsonl:1", "'iou'"]),
    ("index not an integer", [{**_row(0), "index": "0"}, GOOD[1]], GOOD, [], ["a.jsonl:1", "'index'"]),
    ("not JSON", GOOD, [GOOD[0], "{oops"], [], ["b.jsonl:2", "not JSON"]),
    ("not an object", ["[1, 2]"], GOOD, [], ["a.jsonl:1", "JSON object"]),
    ("index twice", [_row(0), _row(0)], GOOD, [], ["a.jsonl:2", "index 0", "a.jsonl:1"]),
    ("different query", GOOD, [_row(0), _row(1, "the bridge")], [], ["a.jsonl:2", "b.jsonl:2", "query", "the bridge"]),
    ("different image", GOOD, [_row(0, image_id="99999"), GOOD[1]], [], ["a.jsonl:1", "b.jsonl:1", "image_id"]),
    ("unpaired expression", GOOD, [_row(0)], [], ["different expressions", "index 1", "a.jsonl:2"]),
    ("empty files", [], [], [], ["no predictions"]),
    ("--json is a folder", GOOD, GOOD, ["--json", "FOLDER"], ["--json", "is a folder"]),
    ("--json is an input", GOOD, GOOD, ["--json", "A"], ["--json", "input FIRST"]),
    ("one name", GOOD, GOOD, ["--names", "fp32"], ["--names"]),
]


@pytest.mark.parametrize(
    ("name", "rows_a", "rows_b", "extra", "named"), COMPARE_CASES, ids=[c[0] for c in COMPARE_CASES]
)
def test_compare(tmp_path: Path, name: str, rows_a: list, rows_b: list, extra: list[str], named: list[str]) -> None:
    a, b = _jsonl(tmp_path / "a.jsonl", rows_a), _jsonl(tmp_path / "b.jsonl", rows_b)
    before = (Path(a).read_bytes(), Path(b).read_bytes())
    extra = [{"FOLDER": str(tmp_path), "A": a}.get(x, x) for x in extra]
    res = runner.invoke(app, ["compare", a, b, *extra], terminal_width=300)
    _refused(res, named)
    assert (Path(a).read_bytes(), Path(b).read_bytes()) == before


def test_compare_refuses_a_folder_and_a_binary_file(tmp_path: Path) -> None:
    good = _jsonl(tmp_path / "a.jsonl", GOOD)
    _refused(runner.invoke(app, ["compare", good, str(tmp_path)]), [str(tmp_path), "is a folder"])
    binary = _write(tmp_path / "b.jsonl", b"\xff\xfe\x00\x81" * 20)
    _refused(runner.invoke(app, ["compare", good, binary]), ["b.jsonl", "not UTF-8"])


# ---- rsvg users -----------------------------------------------------------------------------------------------


def _users(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["users", *args], input=stdin, terminal_width=300)


USERS_CASES: list[tuple[str, Callable[[Path, Path], list[str]], list[str]]] = [
    # name, setup (tmp folder, a dataset folder) -> arguments, what the message must name
    (
        "add --dataset mistyped",
        lambda t, d: ["add", "ana", "--password-stdin", "--dataset", str(t / "TYPO")],
        ["--dataset", "TYPO", "no such folder"],
    ),
    (
        "add --dataset not a dataset",
        lambda t, d: ["add", "ana", "--password-stdin", "--dataset", str(t)],
        ["--dataset", "not a DIOR-RSVG dataset"],
    ),
    (
        "add --db in a missing folder",
        lambda t, d: ["add", "ana", "--password-stdin", "--db", str(t / "no" / "r.db")],
        ["r.db", "does not exist"],
    ),
    ("add --db a folder", lambda t, d: ["add", "ana", "--password-stdin", "--db", str(t)], ["is a folder"]),
    ("list --dataset mistyped", lambda t, d: ["list", "--dataset", str(t / "TYPO")], ["--dataset", "TYPO"]),
    ("list --db missing", lambda t, d: ["list", "--db", str(t / "r.db")], ["r.db", "no review database"]),
    (
        "remove --dataset without a database",
        lambda t, d: ["remove", "ana", "--dataset", str(d)],
        ["review.sqlite3", "no review database"],
    ),
    ("unlock --db missing", lambda t, d: ["unlock", "ana", "--db", str(t / "r.db")], ["r.db", "no review database"]),
    ("unlock nothing", lambda t, d: ["unlock", "--dataset", str(d)], ["NAME", "--address"]),
    ("no database named", lambda t, d: ["list"], ["--dataset", "--db"]),
]


@pytest.mark.parametrize(("name", "setup", "named"), USERS_CASES, ids=[c[0] for c in USERS_CASES])
def test_users(tmp_path: Path, name: str, setup, named: list[str]) -> None:
    root = make_official_dataset(tmp_path / "dataset")
    args = setup(tmp_path / "work", root)
    (tmp_path / "work").mkdir()
    before = sorted(tmp_path.rglob("*"))
    _refused(_users(*args, stdin=PASSWORD + "\n"), named)
    assert sorted(tmp_path.rglob("*")) == before  # no folder, no database made


def test_users_unlock_lifts_a_lock_by_name_and_by_address(official_dataset: Path) -> None:
    assert (
        _users("add", "ana", "--password-stdin", "--dataset", str(official_dataset), stdin=PASSWORD + "\n").exit_code
        == 0
    )
    store = AccountStore(official_dataset / "review.sqlite3")
    for _ in range(FAILED_LOGIN_LIMIT):  # someone who knows her name, from anywhere
        with pytest.raises(AccountError, match="wrong"):
            store.login("ana", "not her password", client="203.0.113.7")
    with pytest.raises(LoginThrottled):
        store.login("ana", PASSWORD, client="198.51.100.1")
    listed = _users("list", "--dataset", str(official_dataset))
    assert "locked for" in _text(listed) and "address 203.0.113.7 is locked" in _text(listed)
    res = _users("unlock", "ana", "--dataset", str(official_dataset))
    assert res.exit_code == 0 and f"forgot {FAILED_LOGIN_LIMIT} failed login" in _text(res), res.output
    assert store.login("ana", PASSWORD, client="198.51.100.1").user.name == "ana"
    for i in range(FAILED_LOGIN_LIMIT):  # one address locks every name behind it
        with pytest.raises(AccountError, match="wrong"):
            store.login(f"guess{i}", "x" * 8, client="203.0.113.7")
    with pytest.raises(LoginThrottled):
        store.login("ana", PASSWORD, client="203.0.113.7")
    assert _users("unlock", "--address", "203.0.113.7", "--dataset", str(official_dataset)).exit_code == 0
    assert store.login("ana", PASSWORD, client="203.0.113.7").user.name == "ana"
    _refused(_users("unlock", "nobody", "--dataset", str(official_dataset)), ["nobody", "no user"])


def test_a_model_answering_nan_is_refused_not_clipped(tmp_path_factory, official_dataset):
    """A damaged model's NaN box is an error naming the query, never a box clipped into the image (a model with
    no ranking stage: that stage refuses NaN boxes itself)."""
    grounder = Grounder.from_checkpoint(tiny_checkpoint(tmp_path_factory))
    with torch.no_grad():
        for p in grounder.model.parameters():
            p.fill_(float("nan"))
    image = official_dataset / "JPEGImages" / "00002.jpg"
    with pytest.raises(NonFiniteError, match="the ship"):
        grounder.predict(image, "the ship")
