"""Accounts, login, CSRF, roles and the grounding cap of the review server; `rsvg users`; agreement."""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rsvg.commands.serve import review_export, serve
from rsvg.commands.users import users_app
from rsvg.results import GroundingResult
from rsvg.web import accounts as accounts_module
from rsvg.web.accounts import FAILED_LOGIN_LIMIT, AccountError, AccountStore, LoginThrottled
from rsvg.web.agreement import agreement
from rsvg.web.app import create_app
from rsvg.web.dataset_view import default_db_path
from rsvg.web.guards import Limits
from rsvg.web.review_db import Decision
from rsvg.web.server import BackgroundServer

PASSWORD = "correct horse battery"


def _accounts(root: Path, *users: tuple[str, str]) -> AccountStore:
    store = AccountStore(default_db_path(root))
    for name, role in users:
        store.add_user(name, PASSWORD, role)
    return store


def _login(client: TestClient, name: str, password: str = PASSWORD) -> str:
    r = client.post("/api/auth/login", json={"name": name, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["csrf"]


# ---- the account store -------------------------------------------------------------------------------------


def test_passwords_are_salted_scrypt_hashes(tmp_path: Path):
    store = AccountStore(tmp_path / "review.sqlite3")
    store.add_user("alice", PASSWORD, "admin")
    store.add_user("bob", PASSWORD)
    with sqlite3.connect(store.path) as conn:
        rows = conn.execute("SELECT name, salt, hash, scrypt_n FROM users ORDER BY name").fetchall()
        raw = b"".join(bytes(v) if isinstance(v, bytes) else str(v).encode() for r in rows for v in r)
    assert PASSWORD.encode() not in raw
    (_, salt_a, hash_a, n), (_, salt_b, hash_b, _) = rows
    assert salt_a != salt_b and hash_a != hash_b and n >= 2**14  # same password, different salts and hashes
    assert hash_a == accounts_module.hash_password(PASSWORD, salt_a)
    assert [(u.name, u.role) for u in store.users()] == [("alice", "admin"), ("bob", "annotator")]
    with pytest.raises(AccountError, match="exists already"):
        store.add_user("alice", PASSWORD)
    with pytest.raises(AccountError, match="8 to 1024"):
        store.add_user("carol", "short")
    with pytest.raises(AccountError, match="role"):
        store.add_user("carol", PASSWORD, "root")
    with pytest.raises(AccountError, match="printable"):
        store.add_user(" carol", PASSWORD)


def test_login_sessions_expire_and_end_with_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = AccountStore(tmp_path / "review.sqlite3", session_seconds=3600)
    store.add_user("alice", PASSWORD)
    session = store.login("alice", PASSWORD, "127.0.0.1")
    assert session.token and store.session(session.token).user.name == "alice"
    with sqlite3.connect(store.path) as conn:  # only the token's digest is stored
        assert (
            conn.execute("SELECT COUNT(*) FROM login_sessions WHERE token_sha256 = ?", (session.token,)).fetchone()[0]
            == 0
        )
    assert store.session("not a token") is None and store.session(None) is None
    now = accounts_module.time.time()
    monkeypatch.setattr(accounts_module.time, "time", lambda: now + 3601)
    assert store.session(session.token) is None  # expired
    monkeypatch.undo()
    again = store.login("alice", PASSWORD)
    store.remove_user("alice")
    assert store.session(again.token) is None
    with pytest.raises(AccountError, match="no user"):
        store.remove_user("alice")


def test_failed_logins_are_throttled_per_name_and_per_client(tmp_path: Path):
    store = AccountStore(tmp_path / "review.sqlite3")
    store.add_user("alice", PASSWORD)
    store.add_user("bob", PASSWORD)
    for _ in range(FAILED_LOGIN_LIMIT):
        with pytest.raises(AccountError, match="wrong user name or password"):
            store.login("alice", "wrong password", "10.0.0.1")
    with pytest.raises(LoginThrottled) as throttled:  # even the right password, from another client
        store.login("alice", PASSWORD, "10.0.0.2")
    assert 0 < throttled.value.retry_after <= accounts_module.FAILED_LOGIN_WINDOW + 1
    with pytest.raises(LoginThrottled):  # the client that failed, with another name
        store.login("bob", PASSWORD, "10.0.0.1")
    assert store.login("bob", PASSWORD, "10.0.0.3").user.name == "bob"
    for _ in range(FAILED_LOGIN_LIMIT):  # unknown names count as failures too
        with pytest.raises(AccountError):
            store.login("nobody", PASSWORD, "10.0.0.4")
    with pytest.raises(LoginThrottled):
        store.login("nobody", PASSWORD, "10.0.0.5")


# ---- the server with accounts -------------------------------------------------------------------------------


def test_without_accounts_nothing_asks_for_a_login(official_dataset: Path):
    client = TestClient(create_app(dataset=official_dataset))
    assert client.get("/api/auth/me").json()["login_required"] is False
    assert client.get("/review").status_code == 200
    r = client.post("/api/review/decision", json={"index": 0, "action": "accept"})
    assert r.status_code == 422 and "annotator" in r.json()["detail"]
    r = client.post("/api/review/decision", json={"index": 0, "action": "accept", "annotator": "ann"})
    assert r.status_code == 200 and r.json()["decision"]["annotator"] == "ann"
    progress = client.get("/api/review/progress").json()
    assert progress["agreement"]["pairs"] == 0  # the local user sees the agreement
    assert len(client.get("/api/review/decisions").json()) == 1


def test_every_page_and_api_needs_a_login_once_accounts_exist(official_dataset: Path):
    _accounts(official_dataset, ("alice", "annotator"))
    client = TestClient(create_app(dataset=official_dataset))
    for page in ("/review", "/"):
        r = client.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    for path in ("/api/review/progress", "/api/review/item/0", "/api/status", "/dataset/images/00001", "/openapi.json"):
        assert client.get(path).status_code == 401, path
    assert client.post("/api/review/decision", json={"index": 0, "action": "accept"}).status_code == 401
    assert client.get("/login").status_code == 200 and client.get("/static/login.js").status_code == 200
    assert client.get("/api/auth/me").json() == {
        "login_required": True,
        "name": None,
        "role": None,
        "csrf": None,
        "expires_at": None,
    }
    assert client.post("/api/auth/login", json={"name": "alice", "password": "wrong password"}).status_code == 401
    r = client.post("/api/auth/login", json={"name": "alice", "password": PASSWORD})
    cookie = r.headers["set-cookie"]
    assert r.status_code == 200 and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure when the request came over HTTPS
    assert client.get("/review").status_code == 200 and client.get("/api/review/progress").status_code == 200
    assert client.get("/api/auth/me").json()["name"] == "alice"


def test_writes_need_the_csrf_token_and_record_the_logged_in_user(official_dataset: Path):
    _accounts(official_dataset, ("alice", "annotator"))
    client = TestClient(create_app(dataset=official_dataset))
    csrf = _login(client, "alice")
    body = {"index": 0, "action": "accept"}
    r = client.post("/api/review/decision", json=body)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    assert client.post("/api/review/decision", json=body, headers={"X-CSRF-Token": "x" + csrf}).status_code == 403
    r = client.post("/api/review/decision", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["decision"]["annotator"] == "alice"
    forged = {**body, "annotator": 'x"; DROP TABLE decisions;--'}
    r = client.post("/api/review/decision", json=forged, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403 and "logged in as 'alice'" in r.json()["detail"]
    # a page of another origin cannot post with the browser's cookie
    r = client.post("/api/review/decision", json=body, headers={"X-CSRF-Token": csrf, "Origin": "http://evil.test"})
    assert r.status_code == 403
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.post("/api/review/decision", json=body, headers={"X-CSRF-Token": csrf}).status_code == 401


def test_annotators_undo_their_own_and_admins_anyones(official_dataset: Path):
    _accounts(official_dataset, ("alice", "annotator"), ("bob", "annotator"), ("root", "admin"))
    app = create_app(dataset=official_dataset)
    alice, bob, admin = TestClient(app), TestClient(app), TestClient(app)
    tokens = {c: _login(c, n) for c, n in ((alice, "alice"), (bob, "bob"), (admin, "root"))}

    def post(c: TestClient, path: str, body: dict) -> httpx.Response:
        return c.post(path, json=body, headers={"X-CSRF-Token": tokens[c]})

    first = post(alice, "/api/review/decision", {"index": 2, "action": "reject"}).json()["decision"]
    r = post(bob, "/api/review/undo", {"decision_id": first["id"]})
    assert r.status_code == 403 and "only an admin" in r.json()["detail"]
    assert post(bob, "/api/review/undo", {}).json()["undone"] is None  # bob has nothing of his own
    r = post(admin, "/api/review/undo", {"decision_id": first["id"]})
    assert r.status_code == 200 and r.json()["undone"]["undone_by"] == "root"
    second = post(alice, "/api/review/decision", {"index": 3, "action": "accept"}).json()["decision"]
    assert post(alice, "/api/review/undo", {}).json()["undone"]["id"] == second["id"]
    # the history export and the agreement are the admins'
    assert alice.get("/api/review/decisions").status_code == 403
    assert alice.get("/api/review/progress").json()["agreement"] is None
    history = admin.get("/api/review/decisions").json()
    assert [(d["annotator"], d["undone_by"]) for d in history] == [("alice", "root"), ("alice", "alice")]
    assert admin.get("/api/review/progress").json()["agreement"] is not None


def test_grounding_requests_beyond_the_cap_get_429(official_dataset: Path):
    entered, release = threading.Event(), threading.Event()

    class HeldGrounder:
        def predict(self, image, query, return_attention=False, need_score=False):
            entered.set()
            assert release.wait(60), "the test never let the model go"
            return GroundingResult((1.0, 2.0, 3.0, 4.0), image.shape[1], image.shape[0])

    app = create_app(dataset=official_dataset, grounder=HeldGrounder(), limits=Limits(max_ground_requests=1))  # type: ignore[arg-type]
    form = {"query": "a ship", "dataset_image": "00001"}
    with BackgroundServer(app) as server, ThreadPoolExecutor(1) as pool:
        held = pool.submit(httpx.post, f"{server.url}/api/ground", data=form, timeout=90)
        try:
            assert entered.wait(60)
            r = httpx.post(f"{server.url}/api/ground", data=form, timeout=60)
            assert r.status_code == 429 and r.headers["retry-after"] == "1" and "try again" in r.json()["detail"]
        finally:
            release.set()
        assert held.result().status_code == 200
        assert httpx.post(f"{server.url}/api/ground", data=form, timeout=60).status_code == 200  # the slot is free
    with pytest.raises(ValueError, match="max_ground_requests"):
        Limits(max_ground_requests=0)


# ---- command line -------------------------------------------------------------------------------------------


def test_users_command_adds_lists_and_removes(official_dataset: Path):
    runner = CliRunner()
    r = runner.invoke(
        users_app,
        ["add", "alice", "--role", "admin", "--password-stdin", "--dataset", str(official_dataset)],
        input=PASSWORD + "\n",
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        users_app, ["add", "bob", "--password-stdin", "--dataset", str(official_dataset)], input="short\n"
    )
    assert r.exit_code == 2 and "8 to 1024" in r.output
    r = runner.invoke(users_app, ["add", "bob", "--role", "boss", "--dataset", str(official_dataset)])
    assert r.exit_code == 2 and "--role" in r.output
    assert runner.invoke(users_app, ["add", "bob"]).exit_code == 2  # no database named
    r = runner.invoke(users_app, ["list", "--dataset", str(official_dataset)])
    assert r.exit_code == 0 and "alice" in r.output and "admin" in r.output
    assert AccountStore(default_db_path(official_dataset)).login("alice", PASSWORD).user.is_admin
    assert runner.invoke(users_app, ["remove", "alice", "--dataset", str(official_dataset)]).exit_code == 0
    r = runner.invoke(users_app, ["remove", "alice", "--dataset", str(official_dataset)])
    assert r.exit_code == 2 and "no user" in r.output


def test_serve_refuses_the_network_without_accounts(official_dataset: Path, monkeypatch: pytest.MonkeyPatch):
    app = typer.Typer()
    app.command()(serve)
    started = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append(k["host"]))
    r = CliRunner().invoke(app, ["--dataset", str(official_dataset), "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "rsvg users add NAME --role admin --dataset" in r.output and not started
    _accounts(official_dataset, ("alice", "admin"))
    r = CliRunner().invoke(app, ["--dataset", str(official_dataset), "--host", "0.0.0.0"])
    assert r.exit_code == 0 and started == ["0.0.0.0"] and "login required: 1 accounts" in r.output


# ---- agreement ----------------------------------------------------------------------------------------------


def _d(i: int, item: int, who: str, action: str, box=None, undone: bool = False) -> Decision:
    text = "t" if action == "edit" else None
    return Decision(i, item, who, action, text, box, f"t{i}", "u" if undone else None)


def test_agreement_counts_pairs_verdicts_and_edit_iou():
    decisions = [
        _d(1, 0, "a", "accept"),
        _d(2, 0, "b", "accept"),
        _d(3, 0, "c", "reject"),  # 3 pairs, 1 same
        _d(4, 1, "a", "edit", (0, 0, 10, 10)),
        _d(5, 1, "b", "edit", (0, 0, 10, 20)),  # same verdict, IoU 0.5
        _d(6, 2, "a", "accept"),
        _d(7, 2, "b", "reject", undone=True),
        _d(8, 2, "b", "skip"),  # b has no verdict
        _d(9, 3, "a", "reject"),
        _d(10, 3, "a", "accept"),
        _d(11, 3, "b", "accept"),  # a's latest counts
    ]
    report = agreement(decisions).to_dict()
    assert (report["expressions"], report["pairs"], report["edited_pairs"]) == (3, 5, 1)
    assert report["same_verdict"] == pytest.approx(3 / 5) and report["mean_edit_iou"] == pytest.approx(0.5)
    ab = next(p for p in report["by_pair"] if p["annotators"] == ["a", "b"])
    assert (ab["expressions"], ab["same_verdict"], ab["both_edited"]) == (3, 1.0, 1)
    # per annotator: a and b agree on 3 of their 4 pairs (item 0 with c is the miss), c on none of 2
    by_name = {x["annotator"]: x for x in report["by_annotator"]}
    assert {n: (x["expressions"], x["pairs"]) for n, x in by_name.items()} == {"a": (3, 4), "b": (3, 4), "c": (1, 2)}
    assert by_name["a"]["same_verdict"] == pytest.approx(3 / 4) and by_name["c"]["same_verdict"] == 0.0
    assert agreement([]).to_dict()["same_verdict"] is None


def test_review_export_reports_agreement(official_dataset: Path, tmp_path: Path):
    client = TestClient(create_app(dataset=official_dataset))
    for who, action in (("a", "accept"), ("b", "reject")):
        client.post("/api/review/decision", json={"index": 1, "action": action, "annotator": who})
    app = typer.Typer()
    app.command()(review_export)
    r = CliRunner().invoke(app, [str(official_dataset), str(tmp_path / "out"), "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert "agreement" in r.output and "same verdict" in r.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["agreement"]["pairs"] == 1 and summary["agreement"]["same_verdict"] == 0.0
    assert summary["objects_out"] == summary["objects_in"] - 1  # the latest decision (b's reject) stands
    # a and b disagree on object 1: the export says so and names it
    assert summary["disputed"] == [1]
    assert "1 objects have annotators who disagree" in " ".join(r.output.split())
