"""Several annotators posting at once to a real server on loopback: no decision lost, none recorded twice."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx

from rsvg.web.app import create_app
from rsvg.web.dataset_view import ReviewDataset, default_db_path
from rsvg.web.review_db import ReviewStore
from rsvg.web.server import BackgroundServer

CLIENTS = 8
PER_CLIENT = 25  # 200 decisions, plus 40 retries and 24 undos: bounded, and all on 127.0.0.1
ACTIONS = ("accept", "reject", "edit", "skip")


def _body(k: int, j: int) -> dict:
    body = {"index": (k + j) % 6, "annotator": f"annotator-{k}", "action": ACTIONS[j % 4], "request_id": f"c{k}-{j}"}
    if body["action"] == "edit":
        body.update(description=f"object edited by {k} at {j}", box=[1 + k, 1 + j, 50 + k, 60 + j])
    return body


def test_concurrent_decisions_none_lost_none_duplicated(official_dataset):
    with BackgroundServer(create_app(dataset=official_dataset)) as server:
        assert server.host == "127.0.0.1"

        def annotate(k: int) -> list[int]:
            ids = []
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for j in range(PER_CLIENT):
                    body = _body(k, j)
                    r = client.post("/api/review/decision", json=body)
                    assert r.status_code == 200, r.text
                    assert r.json()["created"]
                    ids.append(r.json()["decision"]["id"])
                    if j % 5 == 0:  # a client retrying a request whose answer it did not see
                        retry = client.post("/api/review/decision", json=body).json()
                        assert not retry["created"] and retry["decision"]["id"] == ids[-1]
            return ids

        def undo_three(k: int) -> list[int]:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                return [
                    client.post("/api/review/undo", json={"annotator": f"annotator-{k}"}).json()["undone"]["id"]
                    for _ in range(3)
                ]

        with ThreadPoolExecutor(CLIENTS) as pool:
            ids_per_client = list(pool.map(annotate, range(CLIENTS)))
        with ThreadPoolExecutor(CLIENTS) as pool:
            undone_per_client = list(pool.map(undo_three, range(CLIENTS)))
        progress = httpx.get(f"{server.url}/api/review/progress").json()

    all_ids = [i for ids in ids_per_client for i in ids]
    assert len(all_ids) == len(set(all_ids)) == CLIENTS * PER_CLIENT
    dataset = ReviewDataset(official_dataset)
    store = ReviewStore(default_db_path(official_dataset), len(dataset), dataset.fingerprint)
    decisions = store.decisions()
    assert sorted(d.id for d in decisions) == sorted(all_ids)  # every answered decision is stored, once
    assert {d.request_id for d in decisions} == {f"c{k}-{j}" for k in range(CLIENTS) for j in range(PER_CLIENT)}
    by_id = {d.id: d for d in decisions}
    for k, ids in enumerate(ids_per_client):
        assert ids == sorted(ids)  # each client's decisions in the order it sent them
        for j, decision_id in enumerate(ids):
            d, sent = by_id[decision_id], _body(k, j)
            assert (d.index, d.annotator, d.action) == (sent["index"], sent["annotator"], sent["action"])
            assert d.created_at and (d.description == sent.get("description"))
        # undo took exactly this annotator's three latest decisions, newest first
        assert undone_per_client[k] == ids[::-1][:3]
    assert sum(d.undone_at is not None for d in decisions) == 3 * CLIENTS
    assert store.states() == store.recomputed_states()  # the cache agrees with the history
    assert progress["done"] == len(store.states())
    with sqlite3.connect(default_db_path(official_dataset)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
