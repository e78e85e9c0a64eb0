"""Options several commands share, checked while the command line is parsed (before any work is done)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer

from rsvg.errors import OutputPathError
from rsvg.output_paths import check_output_file


def output_file_callback(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Refuse an output file option that is a folder or lies under a file, naming the option."""
    if value is None:
        return None
    name = param.opts[0] if param.opts else param.name
    try:
        check_output_file(value, name)
    except OutputPathError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{name} "), param_hint=name) from None
    return value


JsonOut = Annotated[
    Path | None,
    typer.Option("--json", help="Also write the results here (a file).", callback=output_file_callback),
]
