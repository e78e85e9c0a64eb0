"""A review team under load: many annotators logged in at once, deciding while grounding requests run.

Used by ``rsvg bench review`` (decisions/s and latency) and by the crash test of the suite (the server killed
mid-load and restarted). Every annotator is a thread with its own HTTP client and session: it logs in, then for
each of its decisions reads an expression (as the page does), and accepts, rejects, edits (text and a moved box)
or undoes one of its own earlier decisions. Each decision carries a request id, and every request is retried on
a lost connection until it is answered, so every request a client sent ends up acknowledged exactly once; the
acknowledgements are what :func:`check_review` compares the database with.

Traffic goes to loopback only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsvg.data.dior_rsvg import GroundingDatasetWriter, GroundingObject
from rsvg.web.review_db import Decision, ItemState, ReviewStore, fold_decisions

CATEGORIES = ("airplane", "ship", "vehicle", "storagetank", "bridge", "harbor")
ACTION_WEIGHTS = {"accept": 0.35, "reject": 0.15, "edit": 0.3, "undo": 0.2}
RETRY_SECONDS = 180.0  # how long one request keeps retrying a lost connection (a restart takes seconds)


def write_review_dataset(out: Path, images: int = 50, objects_per_image: int = 4, seed: int = 0) -> Path:
    """A small DIOR-RSVG folder to review: noise images of 256 px with boxes and short expressions."""
    rng = np.random.default_rng(seed)
    with GroundingDatasetWriter(out) as writer:
        for i in range(images):
            image = rng.integers(0, 255, size=(256, 256, 3), dtype=np.uint8)
            objects = []
            for k in range(objects_per_image):
                x1, y1 = (int(v) for v in rng.integers(0, 180, 2))
                w, h = (int(v) for v in rng.integers(16, 70, 2))
                category = CATEGORIES[(i + k) % len(CATEGORIES)]
                objects.append(GroundingObject(category, (x1, y1, x1 + w, y1 + h), f"the {category} number {k + 1}"))
            writer.add_image(f"{i + 1:05d}", image, 256, 256, objects)
        total = images * objects_per_image
        cut = int(total * 0.7)
        return writer.commit({"train": range(cut), "val": range(cut, total)})


def free_port() -> int:
    """A TCP port free on loopback now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``rsvg serve`` in a child process on loopback, which can be killed (SIGKILL) and started again on the
    same port: what a crash test needs, and what a benchmark needs so clients and server do not share a GIL."""

    def __init__(self, serve_args: Sequence[str], log: Path, port: int | None = None) -> None:
        self.serve_args = list(serve_args)
        self.port = port or free_port()
        self.log = Path(log)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> ServerProcess:
        """Start the server and wait until it answers (or raise with the end of its log)."""
        import httpx

        cmd = [sys.executable, "-m", "rsvg.cli", "serve", *self.serve_args, "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsvg serve exited with {self.proc.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/auth/me", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"rsvg serve did not answer within {timeout:.0f} s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.is_file() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Ack:
    """One acknowledged request: a decision as the server stored it, or an undo of decision ``decision_id``."""

    kind: str  # "decision" or "undo"
    annotator: str
    decision_id: int
    index: int
    action: str = ""
    description: str | None = None
    box: tuple[float, float, float, float] | None = None
    request_id: str | None = None
    seconds: float = 0.0  # from the first attempt to the answer (retries included)
    attempts: int = 1


@dataclass
class LoadState:
    """Shared by the client threads: the acknowledgements so far (read by a test that kills the server)."""

    acks: list[Ack] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ack: Ack) -> None:
        with self.lock:
            self.acks.append(ack)

    def count(self) -> int:
        with self.lock:
            return len(self.acks)


@dataclass
class GroundStats:
    """What the grounding traffic got: answers by status, lost connections, and the answered latencies."""

    status: dict[int, int] = field(default_factory=dict)
    lost: int = 0
    seconds: list[float] = field(default_factory=list)


@dataclass
class LoadReport:
    """A load run: the acknowledgements, the wall time of the annotators' phase, and the grounding traffic."""

    acks: list[Ack]
    seconds: float
    annotators: int
    ground: GroundStats
    errors: list[str]

    @property
    def decisions_per_s(self) -> float:
        return len(self.acks) / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        values = [a.seconds for a in self.acks]
        return float(np.quantile(values, q)) * 1000 if values else float("nan")

    def summary(self) -> dict:
        g = self.ground
        kinds = {k: sum(a.action == k for a in self.acks if a.kind == "decision") for k in ACTION_WEIGHTS}
        kinds["undo"] = sum(a.kind == "undo" for a in self.acks)
        return {
            "annotators": self.annotators,
            "requests acknowledged": len(self.acks),
            **{f"  {k}": v for k, v in kinds.items()},
            "seconds": round(self.seconds, 2),
            "decisions/s": round(self.decisions_per_s, 1),
            "latency p50 ms": round(self.latency_ms(0.5), 1),
            "latency p95 ms": round(self.latency_ms(0.95), 1),
            "retried requests": sum(a.attempts > 1 for a in self.acks),
            "grounding answers": ", ".join(f"{k}: {v}" for k, v in sorted(g.status.items())) or "none sent",
            "grounding p95 ms": round(float(np.quantile(g.seconds, 0.95)) * 1000, 1) if g.seconds else "n/a",
            "client errors": len(self.errors),
        }


class _Client:
    """One logged-in HTTP client that retries a request on a lost connection (never on an answer)."""

    def __init__(self, url: str, name: str, password: str, deadline: float) -> None:
        import httpx

        self.httpx = httpx
        self.http = httpx.Client(base_url=url, timeout=60.0)
        self.name, self.password, self.deadline = name, password, deadline
        self.csrf = ""

    def request(self, method: str, path: str, **kwargs: object) -> tuple[object, int]:
        """The answer and how many attempts it took; raises once :data:`RETRY_SECONDS` have gone by."""
        attempts = 0
        started = time.monotonic()
        while True:
            attempts += 1
            try:
                headers = {"X-CSRF-Token": self.csrf} if method == "POST" and self.csrf else {}
                r = self.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
            except self.httpx.TransportError:
                if time.monotonic() - started > RETRY_SECONDS or time.monotonic() > self.deadline:
                    raise
                time.sleep(0.1)
                continue
            return r, attempts

    def login(self) -> None:
        r, _ = self.request("POST", "/api/auth/login", json={"name": self.name, "password": self.password})
        if r.status_code != 200:  # type: ignore[attr-defined]
            raise RuntimeError(f"{self.name} could not log in: {r.status_code} {r.text}")  # type: ignore[attr-defined]
        self.csrf = r.json()["csrf"]  # type: ignore[attr-defined]

    def close(self) -> None:
        self.http.close()


def _annotate(
    url: str, name: str, password: str, decisions: int, items: int, seed: int, state: LoadState, deadline: float
) -> None:
    rng = np.random.default_rng(seed)
    client = _Client(url, name, password, deadline)
    actions, weights = list(ACTION_WEIGHTS), np.array(list(ACTION_WEIGHTS.values()))
    mine: list[int] = []  # own decisions in force, that an undo may take back
    try:
        client.login()
        for k in range(decisions):
            if time.monotonic() > deadline:
                state.errors.append(f"{name}: out of time after {k} decisions")
                return
            action = str(rng.choice(actions, p=weights / weights.sum()))
            if action == "undo" and mine:
                target = mine.pop(int(rng.integers(len(mine))))
                t0 = time.monotonic()
                r, attempts = client.request("POST", "/api/review/undo", json={"decision_id": target})
                if r.status_code != 200:  # type: ignore[attr-defined]
                    state.errors.append(f"{name}: undo {target}: {r.status_code} {r.text}")  # type: ignore[attr-defined]
                    continue
                undone = r.json()["undone"]  # type: ignore[attr-defined]
                state.add(
                    Ack("undo", name, undone["id"], undone["index"], seconds=time.monotonic() - t0, attempts=attempts)
                )
                continue
            if action == "undo":
                action = "accept"
            index = int(rng.integers(items))
            r, _ = client.request("GET", f"/api/review/item/{index}")
            item = r.json()  # type: ignore[attr-defined]
            body: dict = {"index": index, "action": action, "request_id": f"{name}-{seed}-{k}"}
            if action == "edit":
                x1, y1, x2, y2 = item["box"]
                dx, dy = (float(v) for v in rng.normal(0, 3, 2))
                box = [max(0.0, x1 + dx), max(0.0, y1 + dy), min(item["width"], x2 + dx), min(item["height"], y2 + dy)]
                body |= {"box": [round(v, 1) for v in box], "description": f"{item['description']} ({name})"}
            t0 = time.monotonic()
            r, attempts = client.request("POST", "/api/review/decision", json=body)
            if r.status_code != 200:  # type: ignore[attr-defined]
                state.errors.append(f"{name}: {action} {index}: {r.status_code} {r.text}")  # type: ignore[attr-defined]
                continue
            d = r.json()["decision"]  # type: ignore[attr-defined]
            box = tuple(d["box"]) if d["box"] is not None else None
            state.add(
                Ack(
                    "decision",
                    name,
                    d["id"],
                    d["index"],
                    d["action"],
                    d["description"],
                    box,  # type: ignore[arg-type]
                    body["request_id"],
                    time.monotonic() - t0,
                    attempts,
                )
            )
            mine.append(d["id"])
    except Exception as exc:  # reported with the results, the run goes on
        state.errors.append(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        client.close()


def _ground_loop(
    url: str,
    name: str,
    password: str,
    image_ids: Sequence[str],
    stop: threading.Event,
    stats: GroundStats,
    deadline: float,
) -> None:
    client = _Client(url, name, password, deadline)
    try:
        client.login()
        k = 0
        while not stop.is_set() and time.monotonic() < deadline and k < 10_000:
            t0 = time.monotonic()
            try:
                r = client.http.post(
                    "/api/ground",
                    data={"query": "the ship number 1", "dataset_image": image_ids[k % len(image_ids)]},
                    headers={"X-CSRF-Token": client.csrf},
                )
            except client.httpx.TransportError:
                stats.lost += 1
                time.sleep(0.1)
                continue
            stats.status[r.status_code] = stats.status.get(r.status_code, 0) + 1
            if r.status_code == 200:
                stats.seconds.append(time.monotonic() - t0)
            k += 1
    except Exception:  # a grounding client that cannot log in sends nothing
        stats.lost += 1
    finally:
        client.close()


def run_review_load(
    url: str,
    accounts: Sequence[tuple[str, str]],
    decisions_each: int,
    items: int,
    *,
    ground_account: tuple[str, str] | None = None,
    ground_images: Sequence[str] = (),
    ground_clients: int = 2,
    seed: int = 0,
    state: LoadState | None = None,
    time_limit: float = 900.0,
    on_start: Callable[[], None] | None = None,
) -> LoadReport:
    """Run ``len(accounts)`` annotators of ``decisions_each`` decisions over expressions ``0..items-1`` (and
    ``ground_clients`` grounding loops on ``ground_images`` while they work); returns when all are done."""
    state = state or LoadState()
    deadline = time.monotonic() + time_limit
    stop = threading.Event()
    ground = GroundStats()
    grounders = []
    if ground_account is not None and ground_images:
        grounders = [
            threading.Thread(
                target=_ground_loop, args=(url, *ground_account, ground_images, stop, ground, deadline), daemon=True
            )
            for _ in range(ground_clients)
        ]
    workers = [
        threading.Thread(
            target=_annotate,
            args=(url, name, password, decisions_each, items, seed * 1000 + i, state, deadline),
            daemon=True,
        )
        for i, (name, password) in enumerate(accounts)
    ]
    for t in grounders:
        t.start()
    t0 = time.monotonic()
    for t in workers:
        t.start()
    if on_start is not None:
        on_start()
    for t in workers:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    seconds = time.monotonic() - t0
    stop.set()
    for t in grounders:
        t.join(60)
    return LoadReport(list(state.acks), seconds, len(accounts), ground, list(state.errors))


def expected_states(acks: Sequence[Ack]) -> dict[int, ItemState]:
    """The review state the acknowledgements imply: their decisions, with the acknowledged undos, folded."""
    undone = {a.decision_id for a in acks if a.kind == "undo"}
    by_item: dict[int, list[Decision]] = {}
    for a in sorted((a for a in acks if a.kind == "decision"), key=lambda a: a.decision_id):
        d = Decision(
            a.decision_id,
            a.index,
            a.annotator,
            a.action,
            a.description,
            a.box,
            "",
            "x" if a.decision_id in undone else None,
        )
        by_item.setdefault(a.index, []).append(d)
    states = {i: fold_decisions(ds) for i, ds in by_item.items()}
    return {i: s for i, s in states.items() if s.status != "unreviewed"}


def check_review(store: ReviewStore, acks: Sequence[Ack]) -> list[str]:
    """What in the database disagrees with the acknowledgements (empty: every acknowledged decision is there
    once, as acknowledged; nothing else is; exactly the acknowledged undos are undone)."""
    problems: list[str] = []
    stored = store.decisions()
    by_id = {d.id: d for d in stored}
    acked = {a.decision_id: a for a in acks if a.kind == "decision"}
    per_request: dict[str, int] = {}
    for d in stored:
        if d.request_id is not None:
            per_request[d.request_id] = per_request.get(d.request_id, 0) + 1
    for a in acked.values():
        d = by_id.get(a.decision_id)
        if d is None:
            problems.append(f"acknowledged decision {a.decision_id} ({a.request_id}) is not in the database")
        elif (d.index, d.annotator, d.action, d.request_id) != (a.index, a.annotator, a.action, a.request_id):
            problems.append(f"decision {a.decision_id} in the database differs from its acknowledgement")
        if a.request_id is not None and per_request.get(a.request_id, 0) != 1:
            problems.append(f"request {a.request_id} is in the database {per_request.get(a.request_id, 0)} times")
    extra = [d.id for d in stored if d.id not in acked]
    if extra:
        problems.append(f"{len(extra)} decisions in the database were never acknowledged: {extra[:5]}")
    undone_acked = {a.decision_id for a in acks if a.kind == "undo"}
    undone_db = {d.id for d in stored if d.undone_at is not None}
    if undone_acked != undone_db:
        problems.append(
            f"undone in the database but not acknowledged: {sorted(undone_db - undone_acked)[:5]}; acknowledged "
            f"but not undone: {sorted(undone_acked - undone_db)[:5]}"
        )
    expected = expected_states(acks)
    for states, what in ((store.states(), "state table"), (store.recomputed_states(stored), "history")):
        if {i: (s.status, s.description, s.box) for i, s in states.items()} != {
            i: (s.status, s.description, s.box) for i, s in expected.items()
        }:
            problems.append(f"the review state from the {what} differs from the acknowledged decisions")
    return problems
