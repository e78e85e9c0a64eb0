"""How every command ends on a refusal: rsvg's own errors and file-system errors as one ``error:`` line with exit 2,
Ctrl-C as exit 130, and anything else (a bug) with its traceback kept."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rsvg.construct.stats as stats_module
from rsvg.cli import app
from rsvg.commands.failures import describe_os_error

runner = CliRunner()


def _stats(root: Path, out: Path):
    return runner.invoke(app, ["stats", str(root), str(out)], terminal_width=300)


def _raise(exc: BaseException):
    def fail(*args, **kwargs):
        raise exc

    return fail


def test_rsvg_error_is_one_line(official_dataset, tmp_path):
    out = tmp_path / "stats.json"
    out.write_text("{}")
    res = _stats(official_dataset, out)
    assert res.exit_code == 2
    assert res.output.count("error:") == 1 and "is a file" in res.output and str(out) in res.output
    assert "Traceback" not in res.output
    assert out.read_text() == "{}"


def test_disk_full_names_the_file(official_dataset, tmp_path, monkeypatch):
    target = tmp_path / "stats" / "stats.json"
    monkeypatch.setattr(
        stats_module, "dataset_stats", _raise(OSError(errno.ENOSPC, "No space left on device", str(target)))
    )
    res = _stats(official_dataset, tmp_path / "stats")
    assert res.exit_code == 2
    assert "error: No space left on device (free some space" in res.output and str(target) in res.output
    assert "Traceback" not in res.output and "Errno" not in res.output


def test_interrupt_exits_130(official_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(stats_module, "dataset_stats", _raise(KeyboardInterrupt()))
    res = _stats(official_dataset, tmp_path / "stats")
    assert res.exit_code == 130 and "interrupted" in res.output


def test_a_bug_keeps_its_traceback(official_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(stats_module, "dataset_stats", _raise(ZeroDivisionError("a bug")))
    res = _stats(official_dataset, tmp_path / "stats")
    assert isinstance(res.exception, ZeroDivisionError)  # not dressed up as bad input


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (OSError(errno.EACCES, "Permission denied", "/a/b"), "Permission denied: /a/b"),
        (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), "Invalid cross-device link: /a -> /b"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    ],
)
def test_describe_os_error(exc, text):
    assert describe_os_error(exc) == text


def test_json_option_refuses_a_folder(tmp_path):
    res = runner.invoke(app, ["bench", "synth", "--images", "1", "--size", "64", "--json", str(tmp_path)])
    assert res.exit_code == 2 and "--json" in res.output and "is a folder" in res.output
    assert "Traceback" not in res.output
