"""The review store (SQLite history, undo, idempotent retries) and `rsvg review-export` (renumbered splits)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from helpers.datasets import OFFICIAL_DESCRIPTIONS_IN_ORDER, make_official_dataset
from rsvg.commands.serve import review_export
from rsvg.data.check import check_dataset
from rsvg.data.dior_rsvg import read_grounding_annotations, read_split_file
from rsvg.data.records import DatasetError
from rsvg.web.dataset_view import ReviewDataset, default_db_path
from rsvg.web.export import export_reviewed
from rsvg.web.review_db import Decision, ItemState, ReviewDBError, ReviewStore, fold_decisions


def _store(root: Path) -> ReviewStore:
    ds = ReviewDataset(root)
    return ReviewStore(default_db_path(root), len(ds), ds.fingerprint)


def _d(i: int, action: str, text: str | None = None, box=None, undone: bool = False) -> Decision:
    return Decision(i, 0, "ann", action, text, box, f"t{i}", "t" if undone else None)


def test_fold_rules():
    assert fold_decisions([]) == ItemState()
    assert fold_decisions([_d(1, "skip")]).status == "unreviewed"
    assert fold_decisions([_d(1, "accept"), _d(2, "skip")]).status == "accepted"
    assert fold_decisions([_d(1, "accept"), _d(2, "reject")]).status == "rejected"
    assert fold_decisions([_d(1, "reject"), _d(2, "accept", undone=True)]).status == "rejected"
    edited = fold_decisions([_d(1, "edit", "new", (1, 2, 3, 4)), _d(2, "reject"), _d(3, "accept")])
    # accepting after an edit keeps the corrected text and box
    assert (edited.status, edited.description, edited.box, edited.decision_id) == ("edited", "new", (1, 2, 3, 4), 3)
    assert fold_decisions([_d(1, "edit", "new", (1, 2, 3, 4), undone=True), _d(2, "accept")]).description is None


def test_store_records_history_who_and_when(official_dataset):
    store = _store(official_dataset)
    first, created = store.record(0, "alice", "accept")
    assert created and first.annotator == "alice" and first.created_at.endswith("+00:00")
    store.record(0, "bob", "edit", "the tank", (1.0, 2.0, 30.0, 40.0))
    store.record(1, "alice", "skip")
    assert [d.action for d in store.history(0)] == ["accept", "edit"]
    assert store.state(0).status == "edited" and store.state(0).annotator == "bob"
    assert store.state(1).status == "unreviewed"  # a skip is no decision
    assert store.statuses() == {0: "edited"}
    assert store.annotator_counts() == {"alice": 1, "bob": 1}
    with sqlite3.connect(default_db_path(official_dataset)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_undo_keeps_history_and_restores_state(official_dataset):
    store = _store(official_dataset)
    store.record(2, "alice", "reject")
    store.record(3, "alice", "accept")
    store.record(2, "bob", "accept")
    undone = store.undo("alice")  # alice's latest: the accept of 3
    assert undone.index == 3 and undone.undone_by == "alice"
    assert store.state(3).status == "unreviewed"
    assert store.undo("alice").index == 2  # then her reject of 2; bob's accept stands
    assert store.state(2).status == "accepted"
    assert store.undo("alice") is None
    assert len(store.decisions()) == 3 and sum(d.undone_at is not None for d in store.decisions()) == 2
    again = store.undo("bob", decision_id=undone.id)  # undoing an undone decision changes nothing
    assert again.undone_by == "alice"
    assert store.states() == store.recomputed_states()


def test_disputed_objects_follow_each_annotators_own_verdict(official_dataset):
    store = _store(official_dataset)
    store.record(0, "alice", "accept")
    store.record(0, "bob", "accept")
    store.record(1, "alice", "accept")
    store.record(1, "bob", "reject")
    store.record(2, "alice", "reject")
    store.record(2, "alice", "accept")  # alice changed her mind: one annotator never disputes herself
    assert store.disputed() == {1}
    assert store.state(1).status == "rejected"  # the latest decision still gives the state
    store.undo("bob")  # bob's reject undone: only alice's verdict is left
    assert store.disputed() == set()
    store.record(1, "carol", "edit", "the ship", (1.0, 2.0, 30.0, 40.0))
    assert store.disputed() == {1}  # edited and accepted differ
    store.record(1, "carol", "skip")  # a skip changes no verdict
    assert store.disputed() == {1}


def test_disputed_table_is_filled_for_a_file_written_before_it(official_dataset):
    store = _store(official_dataset)
    store.record(3, "alice", "accept")
    store.record(3, "bob", "reject")
    with sqlite3.connect(store.path) as conn:  # the file as an earlier version wrote it: no table, no meta key
        conn.execute("DROP TABLE disputed")
        conn.execute("DELETE FROM meta WHERE key = 'disputed_table'")
    conn.close()
    assert _store(official_dataset).disputed() == {3}


def test_request_id_makes_retries_harmless(official_dataset):
    store = _store(official_dataset)
    a, created_a = store.record(4, "alice", "reject", request_id="r-1")
    b, created_b = store.record(4, "alice", "reject", request_id="r-1")
    assert created_a and not created_b and a == b
    assert len(store.history(4)) == 1


def test_store_refuses_bad_input_without_writing(official_dataset):
    store = _store(official_dataset)
    with pytest.raises(ReviewDBError, match="outside"):
        store.record(6, "alice", "accept")
    with pytest.raises(ReviewDBError, match="action"):
        store.record(0, "alice", "delete")
    with pytest.raises(ReviewDBError, match="text and box"):
        store.record(0, "alice", "edit", "text only")
    assert store.decisions() == []


def test_store_refuses_another_dataset_and_garbage(official_dataset, tmp_path):
    store = _store(official_dataset)
    store.record(0, "alice", "accept")
    other = make_official_dataset(tmp_path / "other", {"train": [0], "val": [1], "test": [2]})
    ann = other / "Annotations" / "00001.xml"
    ann.write_text(ann.read_text().replace("A round storage tank", "A square storage tank"))
    ds = ReviewDataset(other)
    with pytest.raises(ReviewDBError, match="another version"):
        ReviewStore(default_db_path(official_dataset), len(ds), ds.fingerprint)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ReviewDBError, match="not a usable review database"):
        ReviewStore(junk, len(ds), ds.fingerprint)


def _review(root: Path) -> None:
    """Global order: 0 tank (00001), 1 service area, 2 ship below, 3 large ship (00002), 4 gray, 5 white (00003).
    Splits: train [5, 0, 3], val [1], test [4, 2]."""
    store = _store(root)
    store.record(0, "alice", "accept")
    store.record(1, "alice", "reject")
    store.record(3, "bob", "edit", "The big ship at the bottom right", (118.0, 128.0, 162.0, 151.0))
    store.record(5, "bob", "reject")
    store.record(4, "bob", "reject")
    store.undo("bob")  # 4 stays


def _ok_but_empty(root: Path, splits: set[str]) -> None:
    """The exported dataset is sound except for the splits the review emptied, which check-data reports (as train
    and eval refuse an empty split)."""
    errors = check_dataset(root).errors
    found = {(Path(p.file).stem, p.kind) for p in errors}
    assert found == {(s, "empty_split") for s in splits}, [str(p) for p in errors]


def test_export_applies_decisions_and_renumbers_splits(official_dataset, tmp_path):
    _review(official_dataset)
    summary = export_reviewed(official_dataset, tmp_path / "out")
    out = tmp_path / "out"
    assert summary.index_map == {0: 0, 2: 1, 3: 2, 4: 3}
    assert summary.statuses == {"accepted": 1, "edited": 1, "rejected": 2, "unreviewed": 2}
    _ok_but_empty(out, {"val"})  # its only expression was rejected
    assert not [p for p in check_dataset(out).problems if p.kind == "unlisted_objects"]
    samples = read_grounding_annotations(out).samples
    expected = [
        OFFICIAL_DESCRIPTIONS_IN_ORDER[0],
        OFFICIAL_DESCRIPTIONS_IN_ORDER[2],
        "The big ship at the bottom right",
        OFFICIAL_DESCRIPTIONS_IN_ORDER[4],
    ]
    assert [s.description for s in samples] == expected
    assert samples[2].box == (118.0, 128.0, 162.0, 151.0)
    # every kept expression stays in its split, in order: train [5,0,3] -> [0,2], val [1] -> [], test [4,2] -> [3,1]
    assert read_split_file(out / "train.txt") == [0, 2]
    assert read_split_file(out / "val.txt") == []
    assert read_split_file(out / "test.txt") == [3, 1]
    assert summary.splits == {"train": 2, "val": 0, "test": 2}
    # the review database and the source dataset are untouched
    assert len(read_grounding_annotations(official_dataset).samples) == 6
    assert not (out / "review.sqlite3").exists()


def test_export_drops_empty_images_and_unreviewed_on_request(official_dataset, tmp_path):
    store = _store(official_dataset)
    store.record(0, "alice", "reject")  # the only object of image 00001
    store.record(4, "alice", "accept")
    summary = export_reviewed(official_dataset, tmp_path / "out", drop_unreviewed=True)
    assert summary.images_out == 1 and summary.objects_out == 1
    assert not (tmp_path / "out" / "JPEGImages" / "00001.jpg").exists()
    _ok_but_empty(tmp_path / "out", {"train", "val"})
    assert read_split_file(tmp_path / "out" / "test.txt") == [0]


def test_export_refusals(official_dataset, tmp_path):
    with pytest.raises(DatasetError, match="no review database"):
        export_reviewed(official_dataset, tmp_path / "out")
    _review(official_dataset)
    with pytest.raises(DatasetError, match="new folder"):
        export_reviewed(official_dataset, official_dataset)
    export_reviewed(official_dataset, tmp_path / "out")
    with pytest.raises(DatasetError, match="already exists"):
        export_reviewed(official_dataset, tmp_path / "out")
    export_reviewed(official_dataset, tmp_path / "out", overwrite=True)


def test_review_export_command(official_dataset, tmp_path):
    app = typer.Typer()
    app.command()(review_export)
    runner = CliRunner()
    result = runner.invoke(app, [str(official_dataset), str(tmp_path / "out")])
    assert result.exit_code == 2 and "no review database" in result.output
    _review(official_dataset)
    result = runner.invoke(app, [str(official_dataset), str(tmp_path / "out"), "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text())["objects_out"] == 4
    _ok_but_empty(tmp_path / "out", {"val"})
