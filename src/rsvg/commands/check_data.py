"""``rsvg check-data``: what a dataset holds and every problem in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rsvg.data.check import check_dataset
from rsvg.data.records import DatasetError
from rsvg.data.xmlio import atomic_write_text
from rsvg.output_paths import check_output_file
from rsvg.reports import print_report


def check_data(
    root: Annotated[
        Path,
        typer.Argument(
            help="Dataset folder: DIOR-RSVG layout (Annotations/, JPEGImages/, "
            "train/val/test.txt) or a DIOR/VOC detection folder."
        ),
    ],
    kind: Annotated[str, typer.Option(help="auto (decide by layout), grounding or detection.")] = "auto",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report as JSON here (a file outside ROOT).")
    ] = None,
    max_problems: Annotated[
        int | None, typer.Option(min=0, help="Print at most this many problem lines (all are counted).")
    ] = None,
) -> None:
    """Print images, objects, per-split counts, categories, expression length stats and every problem.

    Exits 1 when the dataset is broken: whatever rsvg train or rsvg eval would refuse (an empty split, split
    indices out of range, repeated or in two splits, an object listed in a split with a bad box, an empty
    description or a class that is not a DIOR class, malformed XML, a missing split file) and every missing, empty,
    truncated, unreadable or mis-sized image, in a grounding or a detection folder; 2 when the folder cannot be read.
    """
    console = Console()
    if kind not in ("auto", "grounding", "detection"):
        raise typer.BadParameter("must be auto, grounding or detection", param_hint="--kind")
    if json_out is not None:
        check_output_file(json_out, "--json", inputs={"ROOT": root})
    try:
        report = check_dataset(root, kind)
    except DatasetError as exc:
        console.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    print_report(report, console, max_problems)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2))
    raise typer.Exit(0 if report.ok else 1)
