"""Bad input, one table per command: every case ends in a clear message that names the file, field or argument
(exit 2 for unusable input; check-data exits 1 for a broken dataset), never a traceback or a silent success.
A new case is one line in a table."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from helpers.cli import set_args
from helpers.datasets import make_official_dataset
from helpers.models import TINY_MODEL
from rsvg.cli import app

runner = CliRunner()
IMAGE = Path("JPEGImages") / "00003.jpg"  # objects 4 (test) and 5 (train)


def _missing(root: Path) -> None:
    (root / IMAGE).unlink()


def _empty(root: Path) -> None:
    (root / IMAGE).write_bytes(b"")


def _truncated(root: Path) -> None:
    data = (root / IMAGE).read_bytes()
    (root / IMAGE).write_bytes(data[: len(data) // 2])


def _wrong_size(root: Path) -> None:  # the XML says 200x160
    cv2.imwrite(str(root / IMAGE), np.zeros((150, 100, 3), np.uint8))


def _not_an_image(root: Path) -> None:
    (root / IMAGE).write_bytes(b"GIF89a but not really" * 100)


def _listed_twice(root: Path) -> None:
    (root / "train.txt").write_text("5\n0\n3\n5\n")
    (root / "test.txt").write_text("4\n2\n4\n")


def _malformed_xml(root: Path) -> None:
    (root / "Annotations" / "00002.xml").write_text("<annotation><object>")


Corruption = Callable[[Path], None]
DATASET_CASES: list[tuple[str, Corruption, str]] = [
    # name, corruption, what the message must name
    ("missing image", _missing, "00003.jpg"),
    ("zero-byte image", _empty, "00003.jpg"),
    ("truncated image", _truncated, "00003.jpg"),
    ("image size differs from <size>", _wrong_size, "00003.jpg"),
    ("not an image", _not_an_image, "00003.jpg"),
    ("index listed twice", _listed_twice, "listed twice"),
    ("malformed XML", _malformed_xml, "00002.xml"),
]


def _dataset(tmp_path: Path, corrupt: Corruption) -> Path:
    root = make_official_dataset(tmp_path / "data")
    corrupt(root)
    return root


def _text(res) -> str:
    """The command's output with rich's line wrapping undone (long paths are wrapped at the console width)."""
    return res.output.replace("\n", "")


def _clean(output: str) -> None:
    assert "Traceback" not in output
    assert "error: error:" not in output


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ckpt")
    root = make_official_dataset(base / "data")
    args = ["train", "-c", "configs/mgvlf_lite.yaml", "--data", str(root), "--out", str(base / "run")]
    res = runner.invoke(app, [*args, *set_args([*TINY_MODEL, "train.epochs=1", "train.batch_size=3"])])
    assert res.exit_code == 0, res.output
    return base / "run" / "best"


@pytest.mark.parametrize(("name", "corrupt", "named"), DATASET_CASES, ids=[c[0] for c in DATASET_CASES])
def test_check_data(tmp_path, name, corrupt, named):
    res = runner.invoke(app, ["check-data", str(_dataset(tmp_path, corrupt))], terminal_width=300)
    _clean(_text(res))
    assert res.exit_code == 1, res.output
    assert named in _text(res)
    assert "in no split file" not in _text(res)  # no knock-on warning


@pytest.mark.parametrize(("name", "corrupt", "named"), DATASET_CASES, ids=[c[0] for c in DATASET_CASES])
def test_train(tmp_path, name, corrupt, named):
    root = _dataset(tmp_path, corrupt)
    args = ["train", "-c", "configs/mgvlf_lite.yaml", "--data", str(root), "--out", str(tmp_path / "run")]
    res = runner.invoke(app, [*args, *set_args([*TINY_MODEL, "train.epochs=1"])], terminal_width=300)
    _clean(_text(res))
    assert res.exit_code == 2, res.output
    assert named in _text(res)
    assert not (tmp_path / "run" / "best").exists()


@pytest.mark.parametrize(("name", "corrupt", "named"), DATASET_CASES, ids=[c[0] for c in DATASET_CASES])
def test_eval(tmp_path, checkpoint, name, corrupt, named):
    root = _dataset(tmp_path, corrupt)
    args = ["eval", "--checkpoint", str(checkpoint), "--data", str(root), "--workers", "0"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "ev")], terminal_width=300)
    _clean(_text(res))
    assert res.exit_code == 2, res.output
    assert named in _text(res)
    assert not (tmp_path / "ev").exists()


CONFIG_CASES: list[tuple[str, str | None, list[str], list[str]]] = [
    # name, config file text (None: the lite config), --set items, what the message must name
    ("batch size 0", None, ["train.batch_size=0"], ["train.batch_size", "--set"]),
    ("negative epochs", None, ["train.epochs=-1"], ["train.epochs"]),
    ("not a number", None, ["train.epochs=many"], ["--set train.epochs=many"]),
    ("unknown option", None, ["train.speed=9"], ["--set train.speed=9", "'speed'"]),
    ("unknown section", None, ["training.epochs=1"], ["--set training.epochs=1"]),
    ("empty config file", "", [], ["empty"]),
    ("missing base file", "base: nowhere.yaml\n", [], ["nowhere.yaml", "config.yaml"]),
    ("not a mapping", "- a\n- b\n", [], ["mapping"]),
    ("bad value in the file", "train:\n  lr: fast\n", [], ["config.yaml", "train.lr"]),
]


@pytest.mark.parametrize(("name", "text", "items", "named"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_train_config(official_dataset, tmp_path, name, text, items, named):
    config = Path("configs/mgvlf_lite.yaml")
    if text is not None:
        config = tmp_path / "config.yaml"
        config.write_text(text)
    args = ["train", "-c", str(config), "--data", str(official_dataset), "--out", str(tmp_path / "run")]
    res = runner.invoke(app, [*args, *set_args([*TINY_MODEL, *items])], terminal_width=300)
    _clean(_text(res))
    assert res.exit_code == 2, res.output
    for part in named:
        assert part in _text(res), part
    assert not (tmp_path / "run").exists()


def test_ground(checkpoint, official_dataset, tmp_path):
    image = official_dataset / "JPEGImages" / "00002.jpg"
    ground = ["ground", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "g")]

    # a query in another script: warned about (exit 0 with a box), refused with --strict
    res = runner.invoke(app, [*ground, str(image), "左边的绿色储罐"], terminal_width=300)
    assert res.exit_code == 0 and "unknown to the text encoder" in _text(res) and '"box"' in res.output
    res = runner.invoke(app, [*ground, "--strict", str(image), "左边的绿色储罐"], terminal_width=300)
    assert res.exit_code == 2 and "--strict" in _text(res) and '"box"' not in res.output
    res = runner.invoke(app, [*ground, "--strict", str(image), "the ship on the left"], terminal_width=300)
    assert res.exit_code == 0 and "unknown" not in res.output

    # a 5,000-word query: refused without repeating it
    res = runner.invoke(app, [*ground, str(image), "ship " * 5000], terminal_width=300)
    _clean(_text(res))
    assert res.exit_code == 2 and "tokens" in _text(res) and len(res.output) < 1000

    # not an image: the file is named once, with no Python object in the message
    fake = tmp_path / "notes.jpg"
    fake.write_bytes(b"just some text" * 50)
    res = runner.invoke(app, [*ground, str(fake), "a ship"], terminal_width=300)
    _clean(_text(res))
    assert res.exit_code == 2 and _text(res).count("notes.jpg") == 1 and "object at 0x" not in _text(res)


def test_split_problems_are_not_double_counted(tmp_path):
    root = make_official_dataset(tmp_path / "data")
    (root / "val.txt").write_text("1\nnot-a-number\n")
    res = runner.invoke(app, ["check-data", str(root)], terminal_width=300)
    assert res.exit_code == 1 and "val.txt:2" in _text(res)
    assert "in no split file" not in _text(res)
    shutil.rmtree(root)
