"""``rsvg users``: the review tool's accounts (add, list, remove, unlock), kept in the review database.

The database is named by ``--dataset ROOT`` (``ROOT/review.sqlite3``) or ``--db FILE``. A ``--dataset`` that is
not a DIOR-RSVG folder and a ``--db`` in a folder that does not exist are refused, so a mistyped name never
becomes a new, empty database; only ``add`` creates the database file, the other commands refuse a missing one.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from rsvg.commands.failures import EXIT_BAD_INPUT, report
from rsvg.errors import RsvgError

if TYPE_CHECKING:
    from rsvg.web.accounts import AccountStore

users_app = typer.Typer(
    help="Accounts of the review tool. With at least one account, rsvg serve asks every browser and API client "
    "to log in, and records each decision under the logged-in user.",
    no_args_is_help=True,
)

DatasetOption = Annotated[
    Path | None, typer.Option(help="The reviewed DIOR-RSVG folder (its review database is ROOT/review.sqlite3).")
]
DbOption = Annotated[Path | None, typer.Option(help="The review database, where it is not ROOT/review.sqlite3.")]


def _refuse(message: str) -> typer.Exit:
    """Print ``error: message`` and give the exit to raise (these commands also run outside the ``rsvg`` group)."""
    report(message)
    return typer.Exit(EXIT_BAD_INPUT)


def _database(dataset: Path | None, db: Path | None) -> Path:
    """The review database the options name; a ``--dataset`` must be an existing DIOR-RSVG folder."""
    from rsvg.web.dataset_view import default_db_path

    if db is None and dataset is None:
        raise _refuse("say which review database: --dataset ROOT or --db FILE")
    if db is not None:
        return db
    assert dataset is not None
    if not dataset.is_dir():
        raise _refuse(f"--dataset {dataset}: no such folder")
    if not (dataset / "Annotations").is_dir():
        raise _refuse(
            f"--dataset {dataset}: not a DIOR-RSVG dataset (no Annotations/ folder); give the reviewed dataset's "
            "folder, or the review database with --db FILE"
        )
    return default_db_path(dataset)


def _store(dataset: Path | None, db: Path | None, *, create: bool = False) -> AccountStore:
    """The accounts of the database the options name; only ``create`` makes a new database file."""
    from rsvg.web.accounts import AccountStore

    path = _database(dataset, db)
    if not create and not path.exists() and not path.is_dir():
        how = f"--dataset {dataset}" if db is None else f"--db {db}"
        raise _refuse(f"{path}: no review database there, so no accounts (rsvg users add NAME {how} creates it)")
    try:
        return AccountStore(path, create=create)
    except (RsvgError, OSError) as exc:
        raise _refuse(str(exc)) from None


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The user name (what decisions are recorded under).")],
    role: Annotated[
        str,
        typer.Option(
            help="annotator (decides, undoes their own) or admin (also undoes anyone's, sees agreement, exports)."
        ),
    ] = "annotator",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    dataset: DatasetOption = None,
    db: DbOption = None,
) -> None:
    """Add an account (the review database is created if it does not exist yet). The password is asked for
    twice (hidden), or read from standard input; only its salted scrypt hash is stored."""
    from rsvg.web.accounts import ROLES, AccountError, check_name, check_password

    try:
        check_name(name)
    except AccountError as exc:
        raise _refuse(str(exc)) from None
    if role not in ROLES:
        raise _refuse(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    store = _store(dataset, db, create=True)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
        store.add_user(name, password, role)
    except AccountError as exc:
        raise _refuse(str(exc)) from None
    Console(stderr=True).print(f"added {role} {name} to {store.path}", markup=False, highlight=False)


@users_app.command("list")
def list_users(dataset: DatasetOption = None, db: DbOption = None) -> None:
    """List the accounts, their roles, and which names and addresses failed logins lock now."""
    path = _database(dataset, db)
    if db is None and not path.exists():  # a dataset never served with accounts: nothing to create
        Console().print(f"no accounts: {path} does not exist yet (rsvg users add creates it)", markup=False)
        return
    store = _store(dataset, db)
    users = store.users()
    locked = store.locked()
    if not users:
        Console().print(f"no accounts in {store.path}: the server asks for no login (loopback only)", markup=False)
        return
    table = Table(title=f"accounts in {store.path}")
    table.add_column("name")
    table.add_column("role")
    table.add_column("created (UTC)")
    table.add_column("login")
    for u in users:
        left = locked.get(("name", u.name))
        state = f"locked for {left} s (rsvg users unlock {u.name})" if left else "open"
        table.add_row(u.name, u.role, datetime.fromtimestamp(u.created_at, UTC).strftime("%Y-%m-%d %H:%M"), state)
    Console().print(table)
    for (kind, who), left in sorted(locked.items()):
        if kind == "client":
            Console().print(
                f"address {who} is locked for {left} s: every login from it is refused (rsvg users unlock "
                f"--address {who})",
                markup=False,
                highlight=False,
            )


@users_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
    dataset: DatasetOption = None,
    db: DbOption = None,
) -> None:
    """Remove an account and end its sessions. Its decisions stay in the review history under its name."""
    from rsvg.web.accounts import AccountError

    store = _store(dataset, db)
    try:
        store.remove_user(name)
    except AccountError as exc:
        raise _refuse(str(exc)) from None
    Console(stderr=True).print(f"removed {name} from {store.path}", markup=False, highlight=False)


@users_app.command("unlock")
def unlock(
    name: Annotated[str | None, typer.Argument(help="The user name whose failed logins to forget.")] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Also (or instead) forget the failed logins from this client address, e.g. 203.0.113.7."),
    ] = None,
    dataset: DatasetOption = None,
    db: DbOption = None,
) -> None:
    """Lift a login lock now instead of after 15 minutes: forget the failed logins of a user name, of a client
    address, or both. Five failures within 15 minutes lock a name (whoever typed them) and an address (everyone
    behind it)."""
    from rsvg.web.accounts import AccountError

    if name is None and address is None:
        raise _refuse("say what to unlock: a user NAME, --address ADDRESS, or both")
    store = _store(dataset, db)
    try:
        removed = store.clear_failures(name, address)
    except AccountError as exc:
        raise _refuse(str(exc)) from None
    if not removed and address is None and all(u.name != name for u in store.users()):
        raise _refuse(f"no user {name!r} in {store.path}, and no failed logins under that name")
    what = " and ".join(x for x in (name and f"user {name}", address and f"address {address}") if x)
    Console(stderr=True).print(
        f"unlocked {what}: forgot {removed} failed login(s) in {store.path}", markup=False, highlight=False
    )
