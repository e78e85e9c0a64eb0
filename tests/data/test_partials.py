"""Hidden partial folders left by killed writers are removed by the next run, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.models import tiny_config
from helpers.scenes import crafted_dataset
from rsvg.construct.build import build_dataset
from rsvg.data.partials import remove_stale_partials
from rsvg.engine.trainer import train
from rsvg.synth import write_synthetic_dataset


def _stale_folder(path: Path) -> Path:
    """A partial folder as a killed writer leaves it: some content already written."""
    (path / "Annotations").mkdir(parents=True)
    (path / "Annotations" / "00001.xml").write_text("<annotation/>")
    (path / "model.safetensors").write_bytes(b"\0" * 64)
    return path


def _decoys(parent: Path, names: list[str]) -> list[Path]:
    """Entries that must survive: a folder (with a file in it) for names ending in '/', a file otherwise."""
    made = []
    for name in names:
        path = parent / name.rstrip("/")
        if name.endswith("/"):
            path.mkdir(parents=True)
            (path / "keep.txt").write_text("precious")
        else:
            path.write_text("precious")
        made.append(path)
    return made


def _assert_survived(decoys: list[Path]) -> None:
    for path in decoys:
        assert path.exists(), path
        assert (path / "keep.txt" if path.is_dir() else path).read_text() == "precious", path


# ---------------------------------------------------------------------------------------------------------------
def test_helper_matches_only_the_exact_names(tmp_path: Path) -> None:
    stale = [
        _stale_folder(tmp_path / ".data.ab_12cd3.partial"),
        _stale_folder(tmp_path / ".data.zzzzzzzz.partial"),
    ]
    (tmp_path / ".data.0123abcd.partial").write_text("a partial left as a file")
    stale.append(tmp_path / ".data.0123abcd.partial")
    target = tmp_path / "elsewhere"
    decoys = _decoys(
        tmp_path,
        [
            "data/",  # the destination itself
            ".data.old/",  # the copy kept during a swap: maybe the only complete one
            ".data.AB12CD34.partial/",  # not the mkdtemp alphabet
            ".data.ab12cd3.partial/",  # 7 characters
            ".data.ab12cd345.partial/",  # 9 characters
            ".data.ab12cd34.partial.bak",
            "data.ab12cd34.partial/",  # not hidden
            ".data.x.ab12cd34.partial/",  # the partial of a destination named "data.x"
            ".datax.ab12cd34.partial/",
            ".other.ab12cd34.partial/",
            ".data.tmp-123-0123abcd/",  # the other style
            "elsewhere/",
        ],
    )
    link = tmp_path / ".data.linkedto.partial"
    link.symlink_to(target, target_is_directory=True)

    removed = remove_stale_partials(tmp_path, "data")

    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    _assert_survived(decoys)
    assert link.is_symlink() and (target / "keep.txt").read_text() == "precious"
    assert remove_stale_partials(tmp_path, "data") == []
    assert remove_stale_partials(tmp_path / "missing", "data") == []
    with pytest.raises(ValueError, match="style"):
        remove_stale_partials(tmp_path, "data", style="other")  # type: ignore[arg-type]


def test_helper_tmp_style(tmp_path: Path) -> None:
    stale = [_stale_folder(tmp_path / ".data.tmp-4242-0123abcd"), _stale_folder(tmp_path / ".data.tmp-1-ffffffff")]
    decoys = _decoys(
        tmp_path,
        [
            "data/",
            ".data.old-0123abcd/",  # synth's swap copy
            ".data.tmp-4242-0123ABCD/",
            ".data.tmp-4242-0123abc/",
            ".data.tmp-x-0123abcd/",
            ".data.tmp-4242-0123abcd.txt",
            ".other.tmp-4242-0123abcd/",
            ".data.ab12cd34.partial/",  # the other style
        ],
    )
    assert sorted(remove_stale_partials(tmp_path, "data", style="tmp")) == sorted(stale)
    _assert_survived(decoys)


# ---------------------------------------------------------------------------------------------------------------
def test_synth_removes_what_a_killed_synth_left(tmp_path: Path) -> None:
    stale = [
        _stale_folder(tmp_path / ".data.tmp-31337-0123abcd"),
        _stale_folder(tmp_path / ".data.tmp-7-deadbeef"),
    ]
    decoys = _decoys(
        tmp_path,
        [
            "other/",  # another destination's dataset
            ".other.tmp-31337-0123abcd/",  # and its partial
            ".data.tmp-31337-0123abcd.notes",
            ".data.old-0123abcd/",
            ".data.ab12cd34.partial/",  # what `rsvg build` would leave for this name
            "data.tmp-31337-0123abcd/",
        ],
    )
    write_synthetic_dataset(tmp_path / "data", images=2, seed=1, size=128)
    assert not any(p.exists() for p in stale)
    _assert_survived(decoys)
    assert len(list((tmp_path / "data" / "JPEGImages").iterdir())) == 2
    expected = {"data", *(p.name for p in decoys)}
    assert {p.name for p in tmp_path.iterdir()} == expected  # and none of this run's own left over


def test_build_removes_what_a_killed_build_left(tmp_path: Path) -> None:
    det = crafted_dataset(tmp_path / "det", n=3, size=320, seed=2)
    parent = tmp_path / "work"
    parent.mkdir()
    stale = [
        _stale_folder(parent / ".rsvg.k3_9ab0x.partial"),
        _stale_folder(parent / ".rsvg.00000000.partial"),
    ]
    decoys = _decoys(
        parent,
        [
            "other/",
            ".other.k3_9ab0x.partial/",
            ".rsvg.k3_9ab0x.partial.txt",
            ".rsvg.old/",
            ".rsvg.tmp-31337-0123abcd/",  # what `rsvg synth` would leave for this name
            "rsvg.k3_9ab0x.partial/",
        ],
    )
    summary = build_dataset(det, parent / "rsvg", seed=0)
    assert summary.expressions > 0
    assert not any(p.exists() for p in stale)
    _assert_survived(decoys)
    assert (parent / "rsvg" / "train.txt").is_file()
    assert {p.name for p in parent.iterdir()} == {"rsvg", *(p.name for p in decoys)}


def test_train_removes_what_a_killed_run_left_including_on_resume(official_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    stale = [
        _stale_folder(run / ".last.abcd1234.partial"),
        _stale_folder(run / ".last.q_9z8y7x.partial"),
        _stale_folder(run / ".best.0a1b2c3d.partial"),
    ]
    decoys = _decoys(
        run,
        [
            "notes.txt",
            ".last.abcd1234.partial.keep",
            ".lastx.abcd1234.partial/",
            ".other.abcd1234.partial/",
            ".best.0a1b2c3d4.partial/",
            ".last.tmp-31337-0123abcd/",
        ],
    )
    cfg = tiny_config(official_dataset, "train.epochs=1", "train.batch_size=3")
    train(cfg, run)
    assert not any(p.exists() for p in stale)
    _assert_survived(decoys)
    assert (run / "last" / "training_state.pt").is_file() and (run / "best").is_dir()
    assert not [p.name for p in run.iterdir() if p.name.endswith(".partial") and p not in decoys]

    # a run killed while writing `last`, continued with --resume: its partial goes with the next save
    again = _stale_folder(run / ".last.r3sum3d_.partial")
    train(tiny_config(official_dataset, "train.epochs=2", "train.batch_size=3"), run, resume=True)
    assert not again.exists()
    _assert_survived(decoys)
    assert (run / "last" / "training_state.pt").is_file()
