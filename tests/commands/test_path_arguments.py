"""Every path argument of every command, given a bad path: a clear message (or a sensible success), never a traceback,
and nothing the user already had is lost.

The commands and their path arguments are read from the command line itself, so a new command or option is covered
as soon as it has a working invocation in ``BASE`` (a test fails until it has one, or a reason in ``NOT_SWEPT``).
Each path argument is replaced in turn by:

* a path that does not exist (inside a missing folder),
* an existing file with content,
* an existing folder that holds a file,
* a path under a file (``file/x``).

Whatever the command does with it, the existing file and the file inside the folder must be unchanged afterwards
unless the command succeeded and the argument is an output file it was asked to write.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
import typer
from typer.testing import CliRunner

from helpers.cli import set_args
from helpers.datasets import make_official_dataset
from helpers.models import WEB_TINY, tiny_checkpoint
from rsvg.cli import app

runner = CliRunner()

# commands left out of the sweep, and why (each has its own bad-input tests)
NOT_SWEPT = {
    "demo": "runs the whole pipeline for minutes; its --out is checked in tests/commands/test_failures.py",
    "serve": "a valid call blocks in the web server; tests/web covers its --dataset, --db and --checkpoint",
    "bench model": "minutes per valid call; tests/bench covers its options",
    "bench features": "tens of seconds per valid call; tests/bench covers its options",
    "bench scene": "tens of seconds per valid call; tests/geo/test_bench_scene.py covers its options",
    "bench review": "starts a server under load; tests/bench/test_review_bench.py covers it",
}

# a working call of each swept command: (argument or option name, value) pairs; values name fixtures in braces
BASE: dict[str, list[tuple[str, str]]] = {
    "synth": [("out", "{new}"), ("--images", "1"), ("--size", "64")],
    "check-data": [("root", "{data}"), ("--json", "{new}/report.json")],
    "build": [("detection_root", "{det}"), ("out", "{new}")],
    "stats": [("root", "{data}"), ("out", "{new}")],
    "train": [("--config", "configs/mgvlf_lite.yaml"), ("--data", "{data}"), ("--out", "{new}")],
    "eval": [("--checkpoint", "{ckpt}"), ("--data", "{data}"), ("--out", "{new}"), ("--workers", "0")],
    "compare": [("first", "{pred}"), ("second", "{pred}"), ("--json", "{new}/compare.json")],
    "benchmark": [("data", "{data}"), ("--out", "{new}"), ("--methods", "mgvlf"), ("--variant", "lite"),
                  ("--dry-run", "")],
    "ground": [
        ("--checkpoint", "{ckpt}"),
        ("image", "{image}"),
        ("query", "the ship on the left"),
        ("--out", "{new}"),
    ],
    "review-export": [("root", "{reviewed}"), ("out", "{new}"), ("--json", "{new2}/export.json")],
    "users add": [("name", "ann"), ("--password-stdin", ""), ("--dataset", "{reviewed_copy}")],
    "users list": [("--dataset", "{reviewed}")],
    "users remove": [("name", "admin"), ("--dataset", "{reviewed_copy}")],
    "users unlock": [("name", "admin"), ("--dataset", "{reviewed_copy}")],
    "bench synth": [("--images", "1"), ("--size", "64"), ("--json", "{new}/bench.json")],
    "bench build": [("--images", "2"), ("--size", "128"), ("--workers", "1"), ("--json", "{new}/bench.json")],
}
# options naming a file the command writes: an existing file there is replaced, as asked
OUTPUT_FILES = {"--json", "--overview", "--geojson", "--geojson-4326"}
TRAIN_SETTINGS = set_args([*WEB_TINY, "train.epochs=1"])
BAD_KINDS = ("missing", "file", "folder", "under_file")


def _commands() -> Iterator[tuple[str, typer.main.click.Command]]:
    def walk(command, prefix: str):
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            yield prefix, command
            return
        for name, sub in subcommands.items():
            yield from walk(sub, f"{prefix} {name}".strip())

    yield from walk(typer.main.get_command(app), "")


def _is_path(param) -> bool:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return annotation is Path or Path in get_args(annotation) or annotation == list[Path]


def _path_params(command) -> list[tuple[str, bool]]:
    """(name as BASE spells it, is an option) of every path parameter."""
    out = []
    for p in command.params:
        if _is_path(p):
            is_option = bool(p.opts) and p.opts[0].startswith("-")
            out.append((p.opts[0] if is_option else p.name, is_option))
    return out


def _cases() -> list[tuple[str, str, bool, str]]:
    cases = []
    for name, command in _commands():
        if name in NOT_SWEPT or name not in BASE:
            continue
        for param, is_option in _path_params(command):
            cases.extend((name, param, is_option, kind) for kind in BAD_KINDS)
    return cases


def test_every_command_is_swept_or_says_why():
    names = {name for name, _ in _commands()}
    assert names - set(BASE) - set(NOT_SWEPT) == set(), "give each new command a working call in BASE"


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sweep")
    data = make_official_dataset(base / "data")
    ckpt = tiny_checkpoint(tmp_path_factory)
    res = runner.invoke(app, ["synth", str(base / "det"), "--images", "2", "--size", "128"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["eval", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(base / "ev"), "--workers", "0"]
    )
    assert res.exit_code == 0, res.output
    reviewed = make_official_dataset(base / "reviewed")
    res = runner.invoke(app, ["users", "add", "admin", "--role", "admin", "--password-stdin", "--dataset",
                              str(reviewed)], input="a long enough password\n")
    assert res.exit_code == 0, res.output
    return {
        "data": data,
        "det": base / "det",
        "ckpt": ckpt,
        "pred": base / "ev" / "predictions.jsonl",
        "image": data / "JPEGImages" / "00002.jpg",
        "reviewed": reviewed,
    }


def _argv(name: str, pairs: list[tuple[str, str]]) -> list[str]:
    argv = name.split()
    for key, value in pairs:
        if key.startswith("-"):
            argv.extend([key] if value == "" else [key, value])
        else:
            argv.append(value)
    return argv


def _tree(folder: Path) -> dict[str, bytes | list[str]]:
    """Every file's bytes; a review database by its rows (opening one may switch its journal mode, add the empty
    tables of a newer schema and record its dataset: none of that loses anything, so only rows are compared)."""
    out: dict[str, bytes | list[str]] = {}
    for p in sorted(folder.rglob("*")):
        if p.name.startswith("review.sqlite3"):
            if p.name == "review.sqlite3":
                with contextlib.closing(sqlite3.connect(p)) as db:
                    out[p.name] = sorted(line for line in db.iterdump() if line.startswith("INSERT"))
        elif p.is_file():
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


@pytest.mark.parametrize(("name", "param", "is_option", "kind"), _cases(), ids=lambda v: str(v))
def test_bad_path(fixtures, tmp_path, name, param, is_option, kind):
    keep_file = tmp_path / "notes.txt"
    keep_file.write_text("the user's own file")
    keep_folder = tmp_path / "folder"
    keep_folder.mkdir()
    (keep_folder / "keep.txt").write_text("the user's own file in a folder")
    inputs_before = {k: _tree(v) for k, v in fixtures.items() if k in ("data", "det", "reviewed")}
    bad = {
        "missing": tmp_path / "missing" / "thing",
        "file": keep_file,
        "folder": keep_folder,
        "under_file": keep_file / "x",
    }[kind]
    reviewed_copy = shutil.copytree(fixtures["reviewed"], tmp_path / "reviewed_copy")
    values = {k: str(v) for k, v in fixtures.items()} | {
        "new": str(tmp_path / "out"),
        "new2": str(tmp_path / "out2"),
        "reviewed_copy": str(reviewed_copy),
    }
    pairs = [(k, v.format(**values)) for k, v in BASE[name]]
    if any(k == param for k, _ in pairs):
        pairs = [(k, str(bad) if k == param else v) for k, v in pairs]
    else:
        pairs.append((param, str(bad)))
    argv = _argv(name, pairs)
    if name == "train":
        argv += TRAIN_SETTINGS
    res = runner.invoke(app, argv, input="a long enough password\n", terminal_width=300)

    assert res.exception is None or isinstance(res.exception, SystemExit), (argv, res.exception, res.output)
    assert "Traceback" not in res.output
    assert res.exit_code in (0, 1, 2), (argv, res.exit_code, res.output)
    if res.exit_code == 2:
        assert "error" in res.output.lower() or "invalid value" in res.output.lower(), res.output
    assert (keep_folder / "keep.txt").read_text() == "the user's own file in a folder", argv
    if res.exit_code != 0:
        assert keep_file.read_bytes() == b"the user's own file", argv
    elif kind == "file" and keep_file.read_bytes() != b"the user's own file":
        assert param in OUTPUT_FILES, f"{argv} replaced an existing file given as {param}"
    for key, before in inputs_before.items():
        after = _tree(fixtures[key])
        rows_before, rows_after = before.pop("review.sqlite3", []), after.pop("review.sqlite3", [])
        assert after == before, f"{argv} changed the input {key}"
        assert set(rows_before) <= set(rows_after), f"{argv} removed rows of {key}/review.sqlite3"


@pytest.mark.parametrize("name", sorted(BASE))
def test_base_call_works(fixtures, tmp_path, name):
    """Each sweep starts from a call that succeeds, so a refusal in the sweep is the bad path's doing."""
    if name not in {n for n, _ in _commands()}:
        pytest.fail(f"{name} is in BASE but is not a command")
    values = {k: str(v) for k, v in fixtures.items()} | {
        "new": str(tmp_path / "out"),
        "new2": str(tmp_path / "out2"),
        "reviewed_copy": str(shutil.copytree(fixtures["reviewed"], tmp_path / "reviewed_copy")),
    }
    argv = _argv(name, [(k, v.format(**values)) for k, v in BASE[name]])
    if name == "train":
        argv += TRAIN_SETTINGS
    res = runner.invoke(app, argv, input="a long enough password\n", terminal_width=300)
    assert res.exit_code == 0, (argv, res.output)
