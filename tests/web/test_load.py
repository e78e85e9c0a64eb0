"""A review team under load on loopback, the server killed with SIGKILL mid-load and restarted: every
acknowledged decision is in the database once, nothing else is, and the export applies exactly those."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from helpers.models import tiny_checkpoint
from rsvg.bench.review_load import (
    Ack,
    LoadState,
    ServerProcess,
    check_review,
    expected_states,
    run_review_load,
    write_review_dataset,
)
from rsvg.web.accounts import AccountStore
from rsvg.web.dataset_view import ReviewDataset, default_db_path
from rsvg.web.export import export_reviewed
from rsvg.web.review_db import ItemState, ReviewStore

ANNOTATORS = 20
DECISIONS_EACH = 100
KILL_AFTER = 600  # acknowledged requests before the SIGKILL (of 2,000)
PASSWORD = "load test password"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory)


def test_sigkill_mid_load_loses_and_doubles_nothing(tmp_path: Path, checkpoint: Path):
    root = write_review_dataset(tmp_path / "data", images=40, objects_per_image=4)
    accounts = AccountStore(default_db_path(root))
    team = [(f"annotator{i:02d}", PASSWORD) for i in range(ANNOTATORS)]
    for name, password in team:
        accounts.add_user(name, password)
    accounts.add_user("lead", PASSWORD, "admin")
    server = ServerProcess(
        ["--dataset", str(root), "--checkpoint", str(checkpoint), "--max-ground-requests", "2"], tmp_path / "serve.log"
    )
    state = LoadState()
    killed_at: list[int] = []
    done = threading.Event()

    def kill_and_restart() -> None:
        while state.count() < KILL_AFTER and not done.is_set():
            done.wait(0.02)
        if not done.is_set():
            server.kill()
            killed_at.append(state.count())
            server.start()

    killer = threading.Thread(target=kill_and_restart, daemon=True)
    with server:
        try:
            report = run_review_load(
                server.url,
                team,
                DECISIONS_EACH,
                items=160,
                ground_account=("lead", PASSWORD),
                ground_images=["00001", "00002", "00003"],
                state=state,
                time_limit=600,
                on_start=killer.start,
            )
        finally:
            done.set()
            killer.join(300)
    assert report.errors == []
    assert len(report.acks) == ANNOTATORS * DECISIONS_EACH  # every request answered, after retries where needed
    assert killed_at and killed_at[0] < len(report.acks), "the server was not killed while the load ran"
    assert sum(a.attempts > 1 for a in report.acks) > 0  # requests sent while it was down were retried
    assert report.ground.status.get(200, 0) > 0  # grounding ran beside the review
    assert set(report.ground.status) <= {200, 429}

    dataset = ReviewDataset(root)
    store = ReviewStore(default_db_path(root), len(dataset), dataset.fingerprint)
    assert check_review(store, report.acks) == []

    summary = export_reviewed(root, tmp_path / "reviewed")
    expected = expected_states(report.acks)
    rejected = {i for i, s in expected.items() if s.status == "rejected"}
    assert summary.objects_out == len(dataset) - len(rejected)
    assert set(summary.index_map) == set(range(len(dataset))) - rejected
    exported = ReviewDataset(summary.out)
    for old, new in summary.index_map.items():
        state_ = expected.get(old, ItemState())
        sample, original = exported.samples[new], dataset.samples[old]
        want_text = state_.description if state_.description is not None else original.description
        want_box = state_.box if state_.box is not None else original.box
        assert sample.description == want_text
        assert sample.box == pytest.approx(want_box, abs=1e-3)  # the XML keeps 3 decimals
    assert summary.agreement.pairs > 0  # 2,000 decisions over 160 expressions: shared ones


def test_check_review_finds_lost_doubled_and_unacknowledged_decisions(official_dataset: Path):
    dataset = ReviewDataset(official_dataset)
    store = ReviewStore(default_db_path(official_dataset), len(dataset), dataset.fingerprint)
    first, _ = store.record(0, "a", "accept", request_id="a-0")
    second, _ = store.record(1, "a", "reject", request_id="a-1")
    acks = [Ack("decision", "a", d.id, d.index, d.action, None, None, d.request_id) for d in (first, second)]
    assert check_review(store, acks) == []
    lost = Ack("decision", "a", 99, 2, "accept")
    assert any("is not in the database" in p for p in check_review(store, [*acks, lost]))
    store.record(2, "b", "accept", request_id="b-0")  # answered, but the client never saw it
    assert any("never acknowledged" in p for p in check_review(store, acks))
    store.undo("a", first.id)
    problems = check_review(
        store,
        [
            *acks,
            *(
                Ack("decision", "b", d.id, d.index, d.action, None, None, d.request_id)
                for d in store.decisions()
                if d.annotator == "b"
            ),
        ],
    )
    assert any("undone in the database but not acknowledged" in p for p in problems)
    assert any("state" in p for p in problems)
