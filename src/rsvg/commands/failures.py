"""How the command line reports a refusal: one ``error: ...`` line and exit 2, never a Python traceback.

Every command runs inside :class:`ErrorReportingGroup`, so a :class:`rsvg.errors.RsvgError` raised anywhere
below a command (a dataset, checkpoint, config or output-path check) and an operating-system error on a file
(disk full, permission denied, a file where a folder goes) end the same way, whichever command met them.
Errors of any other type are bugs and keep their traceback.
"""

from __future__ import annotations

import errno
import sys
from typing import Any

import click
import typer.core

from rsvg.errors import RsvgError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def describe_os_error(exc: OSError) -> str:
    """``No space left on device: runs/x/last`` rather than ``[Errno 28] ...: 'runs/x/last'``."""
    what = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        what += " (free some space, then run the command again: nothing complete was replaced)"
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{what}: {' -> '.join(names)}" if names else what


def report(message: str) -> None:
    """Print ``error: message`` on standard error (the message is printed as it is: no markup)."""
    text = message if message.startswith("error: ") else f"error: {message}"
    click.echo(text, err=True)


class ErrorReportingGroup(typer.core.TyperGroup):
    """The ``rsvg`` command group: turns rsvg's own errors and file-system errors into one line and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RsvgError as exc:
            report(str(exc))
        except OSError as exc:
            if exc.errno is None and not exc.filename:
                raise
            report(describe_os_error(exc))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.stderr.flush()
            raise typer.Exit(EXIT_INTERRUPTED) from None
        raise typer.Exit(EXIT_BAD_INPUT)
