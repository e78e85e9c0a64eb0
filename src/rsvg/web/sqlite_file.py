"""The review database's SQLite connections, shared by the decisions store and the accounts store.

Each call opens its own connection (safe from many threads and processes), waits up to 30 s for a lock, syncs
every commit to disk (``synchronous=FULL``) and enforces foreign keys. A write is one ``BEGIN IMMEDIATE``
transaction, committed before the block's caller goes on, rolled back if the block raises.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def location_problem(path: Path, create: bool) -> str | None:
    """Why a database file cannot be opened at ``path``, or ``None``: it is a folder, its folder does not exist
    (no folder is created for it: a mistyped path would otherwise become an empty database), or, where
    ``create`` is false, there is no file yet."""
    if path.is_dir():
        return f"{path} is a folder; give the review database file (e.g. {path / 'review.sqlite3'})"
    if not path.parent.is_dir():
        return f"{path}: the folder {path.parent} does not exist"
    if not create and not path.exists():
        return f"{path}: no review database there"
    return None


class SQLiteFile:
    """Connections to the SQLite file at ``path`` (subclasses set ``self.path``)."""

    path: Path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (durably) before the block's caller goes on."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()
