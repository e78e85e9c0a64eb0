"""The output-path guard and the write lock every writer uses (rsvg.output_paths)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsvg.data.dior_rsvg import GroundingDatasetWriter, GroundingObject
from rsvg.data.xmlio import atomic_write_text
from rsvg.errors import OutputLockedError, OutputPathError
from rsvg.output_paths import check_output_file, check_output_folder, lock_path, output_lock


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``data/`` (an input with a file in it), ``link`` -> ``data``, ``note.txt`` (a file)."""
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "a.txt").write_text("a")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    (tmp_path / "note.txt").write_text("note")
    return tmp_path


FOLDER_REFUSALS = [
    # name, output (relative to the tree), overwrite, may_lie_inside, words the message must hold
    ("the input itself", "data", True, False, ["is the input DATA"]),
    ("a symlink to the input", "link", True, False, ["is the input DATA"]),
    ("a folder holding the input", ".", True, False, ["holds the input DATA"]),
    ("inside the input", "data/sub", True, False, ["lies inside the input DATA"]),
    ("inside the input through a symlink", "link/new", True, False, ["lies inside the input DATA"]),
    ("a file", "note.txt", True, False, ["note.txt is a file"]),
    ("under a file", "note.txt/out", True, False, ["is a file, not a folder"]),
    ("exists without overwrite", "other", False, False, ["already exists", "--overwrite"]),
    ("holds the input even where inside is allowed", ".", None, True, ["holds the input DATA"]),
]


@pytest.mark.parametrize(
    ("name", "out", "overwrite", "inside", "words"), FOLDER_REFUSALS, ids=[c[0] for c in FOLDER_REFUSALS]
)
def test_folder_refusals(tree, name, out, overwrite, inside, words):
    (tree / "other").mkdir()
    (tree / "other" / "x").write_text("x")
    with pytest.raises(OutputPathError) as info:
        check_output_folder(
            tree / out, "OUT", inputs={"DATA": tree / "data"}, overwrite=overwrite, may_lie_inside_inputs=inside
        )
    for word in words:
        assert word in str(info.value)
    assert str(info.value).startswith("OUT ")


def test_folder_accepted(tree):
    assert check_output_folder(tree / "new", "OUT", inputs={"DATA": tree / "data"}, overwrite=False) == tree / "new"
    (tree / "empty").mkdir()
    check_output_folder(tree / "empty", "OUT", inputs={"DATA": tree / "data"}, overwrite=False)  # empty: no overwrite
    check_output_folder(tree / "data" / "eval", "--out", inputs={"DATA": tree / "data"}, may_lie_inside_inputs=True)
    check_output_folder(tree / "new", "OUT", inputs={"DATA": None})  # an absent optional input is skipped


def test_current_folder_is_never_replaced(tree, monkeypatch):
    monkeypatch.chdir(tree / "data" / "sub")
    with pytest.raises(OutputPathError, match="current folder"):
        check_output_folder(tree / "data", "OUT", overwrite=True)
    with pytest.raises(OutputPathError, match="current folder"):
        check_output_folder(Path("."), "OUT", overwrite=True)


FILE_REFUSALS = [
    ("a folder", "data", "is a folder"),
    ("under a file", "note.txt/x.json", "is a file, not a folder"),
    ("the input", "link/a.txt", "is the input IN"),
]


@pytest.mark.parametrize(("name", "out", "words"), FILE_REFUSALS, ids=[c[0] for c in FILE_REFUSALS])
def test_file_refusals(tree, name, out, words):
    with pytest.raises(OutputPathError, match=words):
        check_output_file(tree / out, "--json", inputs={"IN": tree / "data" / "a.txt"})


def test_file_accepted(tree):
    check_output_file(tree / "new" / "r.json", "--json")  # a missing parent folder is created by the writer
    check_output_file(tree / "note.txt", "--json")  # an existing file is replaced (atomically, by the writer)


def test_lock_refuses_a_second_writer_and_frees_on_exit(tmp_path):
    out = tmp_path / "dataset"
    with output_lock(out, "dataset"):
        assert lock_path(out).is_file()
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"), output_lock(out):
            pass
    assert not lock_path(out).exists()  # nothing is left beside the output
    with output_lock(out):  # released: taken again at once
        pass


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    out = tmp_path / "run"
    code = (
        "import sys, time\n"
        "from rsvg.output_paths import output_lock\n"
        f"with output_lock({str(out)!r}):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match=f"pid {child.pid}"), output_lock(out):
            pass
    finally:
        child.kill()
        child.wait()
    with output_lock(out):  # the operating system released the killed holder's lock
        pass


def test_a_symlink_loop_is_refused(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(OutputPathError, match="lead back to themselves"):
        check_output_folder(tmp_path / "new", "OUT", inputs={"ROOT": tmp_path / "loop"}, overwrite=False)


def test_outputs_get_the_umask_permissions_not_owner_only(tmp_path):
    """Datasets and files written through owner-only temporary files end as readable as anything else the user
    makes (here umask 022: folders 755, files 644)."""
    old = os.umask(0o022)
    try:
        image = np.zeros((32, 32, 3), np.uint8)
        with GroundingDatasetWriter(tmp_path / "ds") as writer:
            writer.add_image("00001", image, 32, 32, [GroundingObject("ship", (1, 1, 9, 9), "the ship")])
            writer.commit({"train": [0]})
        atomic_write_text(tmp_path / "metrics.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ds").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "ds" / "train.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "ds" / "Annotations" / "00001.xml").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644


def test_a_file_inside_an_input_folder_is_not_replaced(tree):
    """A report written over a file of an input folder (a split file, a checkpoint's config) would destroy it;
    a new file there is allowed."""
    with pytest.raises(OutputPathError, match="is a file of the input DATA"):
        check_output_file(tree / "link" / "a.txt", "--json", inputs={"DATA": tree / "data"})
    check_output_file(tree / "data" / "report.json", "--json", inputs={"DATA": tree / "data"})
