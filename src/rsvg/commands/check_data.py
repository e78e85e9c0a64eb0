"""``rsvg check-data``: what a dataset holds and every problem in it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rsvg.data.check import CheckReport, check_dataset
from rsvg.data.records import DatasetError
from rsvg.data.xmlio import atomic_write_text


def print_report(report: CheckReport, console: Console, max_problems: int | None = None) -> None:
    """Render a :class:`CheckReport` as rich tables."""
    summary = Table(title=f"{report.kind} dataset: {report.root}", show_header=False)
    summary.add_row("images", str(report.images))
    summary.add_row("objects", str(report.objects))
    for split, n in report.split_counts.items():
        summary.add_row(f"split {split}", str(n))
    for pair, n in report.shared_images.items():
        summary.add_row(f"images shared {pair}", f"{n} (expected for DIOR-RSVG; expressions are not shared)")
    if report.expression_words:
        w = report.expression_words
        summary.add_row(
            "expression words",
            f"mean {w['mean']:.2f}, min {w['min']:.0f}, max {w['max']:.0f}, vocabulary {w['vocabulary']:.0f}",
        )
    console.print(summary)
    if report.categories:
        cats = Table(title="categories")
        cats.add_column("category")
        cats.add_column("objects", justify="right")
        for name, n in report.categories.items():
            cats.add_row(name, str(n))
        console.print(cats)
    if report.problems:
        counts = Counter((p.severity, p.kind) for p in report.problems)
        table = Table(title="problems")
        table.add_column("severity")
        table.add_column("kind")
        table.add_column("count", justify="right")
        for (sev, kind), n in sorted(counts.items()):
            table.add_row(sev, kind, str(n))
        console.print(table)
        shown = report.problems if max_problems is None else report.problems[:max_problems]
        for p in shown:
            console.print(str(p), style="red" if p.severity == "error" else "yellow", markup=False, highlight=False)
        if len(shown) < len(report.problems):
            console.print(f"... {len(report.problems) - len(shown)} more (use --max-problems or --json)")
    verdict = "OK" if report.ok else f"BROKEN: {len(report.errors)} error(s)"
    console.print(f"[bold]{verdict}[/bold]" + (f", {len(report.problems) - len(report.errors)} warning(s)"))


def check_data(
    root: Annotated[
        Path,
        typer.Argument(
            help="Dataset folder: DIOR-RSVG layout (Annotations/, JPEGImages/, "
            "train/val/test.txt) or a DIOR/VOC detection folder."
        ),
    ],
    kind: Annotated[str, typer.Option(help="auto (decide by layout), grounding or detection.")] = "auto",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full report as JSON here.")] = None,
    max_problems: Annotated[
        int | None, typer.Option(help="Print at most this many problem lines (all are counted).")
    ] = None,
) -> None:
    """Print images, objects, per-split counts, categories, expression length stats and every problem.

    Exits 1 when the dataset is broken (overlapping or out-of-range split indices; missing, empty, truncated or
    mis-sized images; empty descriptions, malformed XML, missing split files), 2 when the folder cannot be read.
    """
    console = Console()
    if kind not in ("auto", "grounding", "detection"):
        raise typer.BadParameter("must be auto, grounding or detection", param_hint="--kind")
    try:
        report = check_dataset(root, kind)
    except DatasetError as exc:
        console.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    print_report(report, console, max_problems)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2))
    raise typer.Exit(0 if report.ok else 1)
