"""``rsvg users``: the review tool's accounts (add, list, remove), kept in the review database."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

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


def _store(dataset: Path | None, db: Path | None) -> AccountStore:
    from rsvg.web.accounts import AccountError, AccountStore
    from rsvg.web.dataset_view import default_db_path

    if db is None and dataset is None:
        typer.echo("error: say which review database: --dataset ROOT or --db FILE", err=True)
        raise typer.Exit(2)
    if db is None:
        assert dataset is not None
        if not dataset.is_dir():
            typer.echo(f"error: --dataset {dataset}: no such folder", err=True)
            raise typer.Exit(2)
        db = default_db_path(dataset)
    try:
        return AccountStore(db)
    except (AccountError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


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
    """Add an account. The password is asked for twice (hidden), or read from standard input; only its salted
    scrypt hash is stored."""
    from rsvg.web.accounts import ROLES, AccountError, check_name, check_password

    try:
        check_name(name)
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if role not in ROLES:
        typer.echo(f"error: --role must be one of {', '.join(ROLES)}, got {role!r}", err=True)
        raise typer.Exit(2)
    store = _store(dataset, db)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    try:
        check_password(password)
        store.add_user(name, password, role)
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    Console(stderr=True).print(f"added {role} {name} to {store.path}", markup=False, highlight=False)


@users_app.command("list")
def list_users(dataset: DatasetOption = None, db: DbOption = None) -> None:
    """List the accounts and their roles."""
    store = _store(dataset, db)
    users = store.users()
    if not users:
        Console().print(f"no accounts in {store.path}: the server asks for no login (loopback only)", markup=False)
        return
    table = Table(title=f"accounts in {store.path}")
    table.add_column("name")
    table.add_column("role")
    table.add_column("created (UTC)")
    for u in users:
        table.add_row(u.name, u.role, datetime.fromtimestamp(u.created_at, UTC).strftime("%Y-%m-%d %H:%M"))
    Console().print(table)


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
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    Console(stderr=True).print(f"removed {name} from {store.path}", markup=False, highlight=False)
