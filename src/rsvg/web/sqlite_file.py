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
