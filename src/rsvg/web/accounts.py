"""Accounts of the review tool: users and roles, password hashes, login sessions and failed-login limits.

Everything lives in the review database (its own tables beside the decisions), so a team's users, their open
sessions and the review itself are one file to back up. Passwords are kept only as salted scrypt hashes
(memory-hard: 16 MiB and about 50 ms per check with the parameters below), with the parameters stored beside each
hash so they can be raised later without locking anyone out. A session is a random token in an HttpOnly cookie;
the database keeps only its SHA-256, so a copy of the file cannot be used to log in. Each session has its own
CSRF token that every state-changing request must echo in a header.

Failed logins are counted per user name and per client address over a sliding window; past the limit, further
attempts are refused (HTTP 429) until the window has moved on, whether or not the password would be right.
Anyone can thus lock a user they can name out for the window, and one address (a team behind one NAT or proxy)
locks everyone who logs in from it; an admin lifts a lock at once with :meth:`AccountStore.clear_failures`
(``rsvg users unlock``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from rsvg.errors import AccountError, LoginThrottled
from rsvg.web.sqlite_file import SQLiteFile, location_problem

ROLES: tuple[str, ...] = ("annotator", "admin")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
NAME_MAX_LENGTH = 64
SESSION_SECONDS = 12 * 3600
FAILED_LOGIN_LIMIT = 5  # failures per name, and per client address, within the window
FAILED_LOGIN_WINDOW = 15 * 60

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('annotator', 'admin')),
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    scrypt_n INTEGER NOT NULL,
    scrypt_r INTEGER NOT NULL,
    scrypt_p INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS login_sessions (
    token_sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_sessions_name ON login_sessions (name);
CREATE TABLE IF NOT EXISTS login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    client TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
"""


@dataclass(frozen=True)
class User:
    """A review-tool account."""

    name: str
    role: str
    created_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class LoginSession:
    """A logged-in user's session: the cookie's token (only at creation), its CSRF token and expiry."""

    user: User
    csrf: str
    expires_at: float
    token: str | None = None


def check_name(name: str) -> str:
    """The user name, or :class:`AccountError`: 1–64 printable characters, no leading or trailing spaces."""
    if not name or name != name.strip() or len(name) > NAME_MAX_LENGTH or not name.isprintable():
        raise AccountError(
            f"user name {name!r} must be 1–{NAME_MAX_LENGTH} printable characters without surrounding spaces"
        )
    return name


def check_password(password: str) -> str:
    """The password, or :class:`AccountError` when it is shorter than 8 or longer than 1024 characters."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    """scrypt(password, salt) with the given cost, 32 bytes."""
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# checked against when the name is unknown, so a login takes as long whether or not the user exists
_DUMMY_SALT = secrets.token_bytes(16)
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16), _DUMMY_SALT)


class AccountStore(SQLiteFile):
    """Users, sessions and failed logins in the SQLite file at ``path`` (created if missing)."""

    def __init__(self, path: Path, session_seconds: int = SESSION_SECONDS, *, create: bool = True) -> None:
        """Open the accounts of the database at ``path``, created there if missing unless ``create`` is false;
        :class:`AccountError` names the path when it is a folder, its folder does not exist, or (``create``
        false) there is no file."""
        self.path = Path(path)
        self.session_seconds = session_seconds
        problem = location_problem(self.path, create)
        if problem is not None:
            raise AccountError(problem)
        try:
            with self._write() as conn:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise AccountError(f"{self.path}: not a usable review database ({exc})") from None

    # ---- users -------------------------------------------------------------------------------------------

    def add_user(self, name: str, password: str, role: str = "annotator") -> User:
        """Create an account; :class:`AccountError` if the name is taken or invalid, or the role unknown."""
        check_name(name)
        check_password(password)
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        salt = secrets.token_bytes(16)
        digest = hash_password(password, salt)
        now = time.time()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is not None:
                raise AccountError(f"user {name!r} exists already (remove it first to change it)")
            conn.execute(
                "INSERT INTO users (name, role, salt, hash, scrypt_n, scrypt_r, scrypt_p, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, role, salt, digest, SCRYPT_N, SCRYPT_R, SCRYPT_P, now),
            )
        return User(name, role, now)

    def remove_user(self, name: str) -> None:
        """Delete an account and end its sessions (its decisions stay in the history, under its name)."""
        with self._write() as conn:
            if conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise AccountError(f"no user {name!r}")
            conn.execute("DELETE FROM login_sessions WHERE name = ?", (name,))

    def users(self) -> list[User]:
        """Every account, by name."""
        with self._read() as conn:
            rows = conn.execute("SELECT name, role, created_at FROM users ORDER BY name").fetchall()
        return [User(r["name"], r["role"], r["created_at"]) for r in rows]

    def has_users(self) -> bool:
        """Whether any account exists (then every page and API but the login needs a session)."""
        return self.request_login(None)[0]

    # ---- login -------------------------------------------------------------------------------------------

    def _throttle(self, conn: sqlite3.Connection, name: str, client: str, now: float) -> None:
        since = now - FAILED_LOGIN_WINDOW
        for column, value in (("name", name), ("client", client)):
            rows = conn.execute(
                f"SELECT at FROM login_failures WHERE {column} = ? AND at > ? ORDER BY at DESC LIMIT ?",
                (value, since, FAILED_LOGIN_LIMIT),
            ).fetchall()
            if len(rows) >= FAILED_LOGIN_LIMIT:
                oldest = rows[-1]["at"]
                raise LoginThrottled(max(1, int(oldest + FAILED_LOGIN_WINDOW - now) + 1))

    def locked(self, now: float | None = None) -> dict[tuple[str, str], int]:
        """What failed logins lock now: ``{("name", NAME) or ("client", ADDRESS): seconds left}``."""
        now = time.time() if now is None else now
        since = now - FAILED_LOGIN_WINDOW
        out: dict[tuple[str, str], int] = {}
        with self._read() as conn:
            for column in ("name", "client"):
                rows = conn.execute(
                    f"SELECT {column} AS who, COUNT(*) AS n, MIN(at) AS oldest FROM "
                    f"(SELECT {column}, at, ROW_NUMBER() OVER (PARTITION BY {column} ORDER BY at DESC) AS k "
                    f"FROM login_failures WHERE at > ?) WHERE k <= ? GROUP BY {column}",
                    (since, FAILED_LOGIN_LIMIT),
                ).fetchall()
                for r in rows:
                    if r["n"] >= FAILED_LOGIN_LIMIT:
                        out[(column, r["who"])] = max(1, int(r["oldest"] + FAILED_LOGIN_WINDOW - now) + 1)
        return out

    def clear_failures(self, name: str | None = None, client: str | None = None) -> int:
        """Forget the failed logins of a user name and/or of a client address, which lifts the lock they put
        on it at once (``rsvg users unlock``); returns how many were forgotten."""
        if name is None and client is None:
            raise AccountError("say whose failed logins to clear: a user name or a client address")
        removed = 0
        with self._write() as conn:
            if name is not None:
                removed += conn.execute("DELETE FROM login_failures WHERE name = ?", (name,)).rowcount
            if client is not None:
                removed += conn.execute("DELETE FROM login_failures WHERE client = ?", (client,)).rowcount
        return removed

    def login(self, name: str, password: str, client: str = "") -> LoginSession:
        """Check the password and open a session; :class:`AccountError` for a wrong name or password (the same
        message for both), :class:`LoginThrottled` after too many failures for this name or client."""
        now = time.time()
        with self._write() as conn:
            conn.execute("DELETE FROM login_failures WHERE at <= ?", (now - FAILED_LOGIN_WINDOW,))
            self._throttle(conn, name, client, now)
            row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            hash_password(password, _DUMMY_SALT)  # as slow as a real check
            ok = False
        else:
            digest = hash_password(password, row["salt"], row["scrypt_n"], row["scrypt_r"], row["scrypt_p"])
            ok = hmac.compare_digest(digest, row["hash"])
        if not ok:
            with self._write() as conn:
                conn.execute("INSERT INTO login_failures (name, client, at) VALUES (?, ?, ?)", (name, client, now))
            raise AccountError("wrong user name or password")
        with self._write() as conn:
            conn.execute("DELETE FROM login_failures WHERE name = ?", (name,))
            conn.execute("DELETE FROM login_sessions WHERE expires_at <= ?", (now,))
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            expires = now + self.session_seconds
            conn.execute(
                "INSERT INTO login_sessions (token_sha256, name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (_token_digest(token), name, csrf, now, expires),
            )
        return LoginSession(User(row["name"], row["role"], row["created_at"]), csrf, expires, token)

    def session(self, token: str | None) -> LoginSession | None:
        """The live session of a cookie's token, or ``None`` (no token, unknown, expired or user removed)."""
        with self._read() as conn:
            return self._session(conn, token)

    def request_login(self, token: str | None) -> tuple[bool, LoginSession | None]:
        """Whether any account exists, and the live session of ``token``: what every request needs, read in one
        connection."""
        with self._read() as conn:
            if conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None:
                return False, None
            return True, self._session(conn, token)

    @staticmethod
    def _session(conn: sqlite3.Connection, token: str | None) -> LoginSession | None:
        if not token or len(token) > 256:
            return None
        row = conn.execute(
            "SELECT s.csrf, s.expires_at, u.name, u.role, u.created_at FROM login_sessions s "
            "JOIN users u ON u.name = s.name WHERE s.token_sha256 = ? AND s.expires_at > ?",
            (_token_digest(token), time.time()),
        ).fetchone()
        if row is None:
            return None
        return LoginSession(User(row["name"], row["role"], row["created_at"]), row["csrf"], row["expires_at"])

    def logout(self, token: str | None) -> None:
        """End the session of ``token`` (nothing happens for an unknown one)."""
        if token:
            with self._write() as conn:
                conn.execute("DELETE FROM login_sessions WHERE token_sha256 = ?", (_token_digest(token),))
