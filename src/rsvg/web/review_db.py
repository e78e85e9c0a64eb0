"""The annotators' review decisions in SQLite (paper Sec. III, step 4: worker verification).

Every decision is one row of an append-only history: which object (its global index), who, what
(``accept``, ``reject``, ``edit`` with the corrected text and box, or ``skip``), and when. Undo marks a row as
undone instead of deleting it, so the whole history stays. The state of an object is the fold of its rows that
are not undone (:func:`fold_decisions`): the latest accept/reject/edit decides the status, the latest edit gives
the text and box, and a skip changes nothing. A small cache table holds that state per object, updated in the
same transaction as the decision, so the review pages can filter tens of thousands of objects quickly.

When several annotators judged one object, each has a verdict of their own (the fold of their own decisions).
An object whose annotators' verdicts differ is *disputed*: the latest decision still gives its text and box, and
a second cache table lists it, so that an admin can find the disputes, read each verdict and settle them (a new
decision, or undoing the one they judge wrong).

The file runs in WAL mode with ``synchronous=FULL``; each write is one ``BEGIN IMMEDIATE`` transaction, committed
before the call returns. A client-chosen ``request_id`` (unique) makes a retried request harmless.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rsvg.data.records import BoxXYXY
from rsvg.errors import ReviewDBError, ReviewPermissionError
from rsvg.web.sqlite_file import SQLiteFile, location_problem

ACTIONS: tuple[str, ...] = ("accept", "reject", "edit", "skip")
STATUSES: tuple[str, ...] = ("unreviewed", "accepted", "rejected", "edited")
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item INTEGER NOT NULL CHECK (item >= 0),
    annotator TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('accept', 'reject', 'edit', 'skip')),
    description TEXT,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL,
    created_at TEXT NOT NULL,
    undone_at TEXT,
    undone_by TEXT,
    request_id TEXT UNIQUE,
    CHECK (action != 'edit' OR (description IS NOT NULL AND x1 IS NOT NULL AND y1 IS NOT NULL
                                AND x2 IS NOT NULL AND y2 IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS decisions_item ON decisions (item, id);
CREATE INDEX IF NOT EXISTS decisions_annotator ON decisions (annotator, id);
CREATE TABLE IF NOT EXISTS item_state (
    item INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    description TEXT,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL,
    decision_id INTEGER NOT NULL,
    annotator TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS disputed (item INTEGER PRIMARY KEY);
"""


@dataclass(frozen=True)
class Decision:
    """One row of the review history."""

    id: int
    index: int
    annotator: str
    action: str
    description: str | None
    box: BoxXYXY | None
    created_at: str
    undone_at: str | None = None
    undone_by: str | None = None
    request_id: str | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "index": self.index,
            "annotator": self.annotator,
            "action": self.action,
            "description": self.description,
            "box": list(self.box) if self.box is not None else None,
            "created_at": self.created_at,
            "undone_at": self.undone_at,
            "undone_by": self.undone_by,
        }


@dataclass(frozen=True)
class ItemState:
    """The effective review state of one object: status, and the corrected text and box if it was edited."""

    status: str = "unreviewed"
    description: str | None = None  # None: the original text stands
    box: BoxXYXY | None = None  # None: the original box stands
    decision_id: int | None = None
    annotator: str | None = None
    at: str | None = None


def fold_decisions(decisions: Iterable[Decision]) -> ItemState:
    """The state that the decisions of one object (oldest first) leave; undone ones and skips change nothing."""
    state = ItemState()
    for d in decisions:
        if d.undone_at is not None or d.action == "skip":
            continue
        description, box = state.description, state.box
        if d.action == "edit":
            description, box = d.description, d.box
        # An accept keeps an earlier correction: the annotator accepted what the page showed.
        status = "rejected" if d.action == "reject" else "edited" if box is not None else "accepted"
        state = ItemState(status, description, box, d.id, d.annotator, d.created_at)
    return state


def annotator_verdicts(decisions: Iterable[Decision]) -> dict[str, ItemState]:
    """Each annotator's own verdict on one object (decisions oldest first); annotators whose decisions there
    all were undone or skips are left out."""
    own: dict[str, list[Decision]] = {}
    for d in decisions:
        own.setdefault(d.annotator, []).append(d)
    folded = {name: fold_decisions(ds) for name, ds in own.items()}
    return {name: state for name, state in sorted(folded.items()) if state.status != "unreviewed"}


def is_disputed(verdicts: dict[str, ItemState]) -> bool:
    """Whether annotators gave one object different verdicts (accepted, edited, rejected)."""
    return len({v.status for v in verdicts.values()}) > 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _row_to_decision(row: sqlite3.Row) -> Decision:
    box = None if row["x1"] is None else (row["x1"], row["y1"], row["x2"], row["y2"])
    return Decision(
        id=row["id"],
        index=row["item"],
        annotator=row["annotator"],
        action=row["action"],
        description=row["description"],
        box=box,
        created_at=row["created_at"],
        undone_at=row["undone_at"],
        undone_by=row["undone_by"],
        request_id=row["request_id"],
    )


class ReviewStore(SQLiteFile):
    """The decisions of one dataset, in one SQLite file (safe to use from many threads and processes)."""

    def __init__(self, path: Path, total: int, fingerprint: str, *, create: bool = True) -> None:
        """Open or create ``path`` (``create`` false: only open) for a dataset of ``total`` objects; refuse
        another dataset's file, a folder, a path whose folder does not exist (none is created: a mistyped
        ``--db`` would otherwise become an empty review) and, without ``create``, a missing file."""
        self.path = Path(path)
        self.total = total
        self.fingerprint = fingerprint
        problem = location_problem(self.path, create)
        if problem is not None:
            raise ReviewDBError(problem)
        try:
            conn = self._connect()
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if meta and "disputed_table" not in meta:
                    self._fill_disputed(conn)  # a file written before the table existed
                if not meta:
                    conn.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [
                            ("schema_version", SCHEMA_VERSION),
                            ("objects", str(total)),
                            ("fingerprint", fingerprint),
                            ("created_at", _now()),
                        ],
                    )
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('disputed_table', '1')")
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise ReviewDBError(
                f"{self.path}: not a usable review database ({exc}); if the dataset folder is read-only, keep the "
                "review file elsewhere with --db"
            ) from None
        self._check_meta(meta)

    def _check_meta(self, meta: dict[str, str]) -> None:
        if not meta:
            return
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise ReviewDBError(
                f"{self.path}: review database schema {meta.get('schema_version')!r} is not "
                f"{SCHEMA_VERSION!r} (written by another rsvg version)"
            )
        if meta.get("fingerprint") != self.fingerprint:
            raise ReviewDBError(
                f"{self.path} holds the review of another version of this dataset ({meta.get('objects')} objects "
                f"then, {self.total} now, or changed annotations): its decisions would land on the wrong "
                "objects. Restore the dataset, or start a new review file with --db."
            )

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.total:
            raise ReviewDBError(f"object index {index} outside 0..{self.total - 1}")

    def record(
        self,
        index: int,
        annotator: str,
        action: str,
        description: str | None = None,
        box: BoxXYXY | None = None,
        request_id: str | None = None,
    ) -> tuple[Decision, bool]:
        """Append a decision; returns it and whether it is new (``False``: the same ``request_id`` was
        recorded before, and that earlier decision is returned). An edit needs both text and box."""
        self._check_index(index)
        if action not in ACTIONS:
            raise ReviewDBError(f"action must be one of {ACTIONS}, got {action!r}")
        if not annotator:
            raise ReviewDBError("a decision needs an annotator name")
        if action == "edit":
            if description is None or box is None:
                raise ReviewDBError("an edit records the corrected text and box")
        else:
            description, box = None, None
        coords = tuple(float(v) for v in box) if box is not None else (None, None, None, None)
        with self._write() as conn:
            if request_id is not None:
                row = conn.execute("SELECT * FROM decisions WHERE request_id = ?", (request_id,)).fetchone()
                if row is not None:
                    return _row_to_decision(row), False
            cur = conn.execute(
                "INSERT INTO decisions (item, annotator, action, description, x1, y1, x2, y2, created_at, request_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (index, annotator, action, description, *coords, _now(), request_id),
            )
            decision = _row_to_decision(
                conn.execute("SELECT * FROM decisions WHERE id = ?", (cur.lastrowid,)).fetchone()
            )
            self._refresh_state(conn, index)
        return decision, True

    def undo(self, annotator: str, decision_id: int | None = None, *, own_only: bool = False) -> Decision | None:
        """Undo ``decision_id`` (or the annotator's latest decision still in force); returns the undone
        decision, or ``None`` when there is nothing left to undo. Undoing an undone decision changes nothing.
        With ``own_only`` (an annotator, not an admin), another annotator's decision raises
        :class:`ReviewPermissionError`, checked in the same transaction as the undo."""
        with self._write() as conn:
            if decision_id is None:
                row = conn.execute(
                    "SELECT * FROM decisions WHERE annotator = ? AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
                    (annotator,),
                ).fetchone()
            else:
                row = conn.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,)).fetchone()
            if row is None:
                return None
            if own_only and row["annotator"] != annotator:
                raise ReviewPermissionError(
                    f"decision {row['id']} is {row['annotator']}'s: only an admin can undo another's decision"
                )
            if row["undone_at"] is None:
                conn.execute(
                    "UPDATE decisions SET undone_at = ?, undone_by = ? WHERE id = ?", (_now(), annotator, row["id"])
                )
                self._refresh_state(conn, row["item"])
            return _row_to_decision(conn.execute("SELECT * FROM decisions WHERE id = ?", (row["id"],)).fetchone())

    @classmethod
    def _fill_disputed(cls, conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT DISTINCT item FROM decisions").fetchall()
        for (index,) in rows:
            cls._refresh_state(conn, index)

    @staticmethod
    def _refresh_state(conn: sqlite3.Connection, index: int) -> None:
        rows = conn.execute("SELECT * FROM decisions WHERE item = ? ORDER BY id", (index,)).fetchall()
        decisions = [_row_to_decision(r) for r in rows]
        if is_disputed(annotator_verdicts(decisions)):
            conn.execute("INSERT OR IGNORE INTO disputed (item) VALUES (?)", (index,))
        else:
            conn.execute("DELETE FROM disputed WHERE item = ?", (index,))
        state = fold_decisions(decisions)
        if state.status == "unreviewed":
            conn.execute("DELETE FROM item_state WHERE item = ?", (index,))
            return
        coords = state.box if state.box is not None else (None, None, None, None)
        conn.execute(
            "INSERT OR REPLACE INTO item_state (item, status, description, x1, y1, x2, y2, decision_id, annotator, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (index, state.status, state.description, *coords, state.decision_id, state.annotator, state.at),
        )

    def history(self, index: int) -> list[Decision]:
        """Every decision about one object, oldest first (undone ones included, marked)."""
        self._check_index(index)
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM decisions WHERE item = ? ORDER BY id", (index,)).fetchall()
        return [_row_to_decision(r) for r in rows]

    def decisions(self) -> list[Decision]:
        """The whole history, oldest first."""
        with self._read() as conn:
            return [_row_to_decision(r) for r in conn.execute("SELECT * FROM decisions ORDER BY id").fetchall()]

    def state(self, index: int) -> ItemState:
        """The effective state of one object."""
        self._check_index(index)
        with self._read() as conn:
            row = conn.execute("SELECT * FROM item_state WHERE item = ?", (index,)).fetchone()
        return ItemState() if row is None else self._row_to_state(row)

    def states(self) -> dict[int, ItemState]:
        """The effective state of every reviewed object (objects missing from the dict are unreviewed)."""
        with self._read() as conn:
            return {r["item"]: self._row_to_state(r) for r in conn.execute("SELECT * FROM item_state").fetchall()}

    def statuses(self) -> dict[int, str]:
        """Just the status of every reviewed object (the cheap query behind filters and progress)."""
        with self._read() as conn:
            return dict(conn.execute("SELECT item, status FROM item_state").fetchall())

    def disputed(self) -> set[int]:
        """The objects whose annotators' verdicts differ (see the module docstring)."""
        with self._read() as conn:
            return {r[0] for r in conn.execute("SELECT item FROM disputed").fetchall()}

    def recomputed_states(self, history: list[Decision] | None = None) -> dict[int, ItemState]:
        """The states folded afresh from the history (what the export uses; equals :meth:`states`), from
        ``history`` when the caller has read it already."""
        by_item: dict[int, list[Decision]] = {}
        for d in self.decisions() if history is None else history:
            by_item.setdefault(d.index, []).append(d)
        out = {i: fold_decisions(ds) for i, ds in by_item.items()}
        return {i: s for i, s in out.items() if s.status != "unreviewed"}

    def annotator_counts(self) -> dict[str, int]:
        """Decisions in force (not undone, skips excluded) per annotator."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT annotator, COUNT(*) FROM decisions WHERE undone_at IS NULL AND action != 'skip' "
                "GROUP BY annotator ORDER BY annotator"
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    @staticmethod
    def _row_to_state(row: sqlite3.Row) -> ItemState:
        box = None if row["x1"] is None else (row["x1"], row["y1"], row["x2"], row["y2"])
        return ItemState(row["status"], row["description"], box, row["decision_id"], row["annotator"], row["at"])
