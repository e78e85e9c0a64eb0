"""Rich tables of what the data commands report: a dataset construction's summary and a dataset check.

Shared by the command line (``rsvg build``, ``rsvg check-data``, ``rsvg review-export``) and the demo pipeline.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rsvg.construct.build import PAPER_STEP_SHARES, SUMMARY_FILE, BuildSummary, describe_skipped
from rsvg.data.check import CheckReport

# skipped images and objects named on screen; build_summary.json names every one
SKIPPED_SHOWN = 5


def print_summary(summary: BuildSummary, console: Console, summary_file: Path | None = None) -> None:
    """Render a :class:`BuildSummary` as rich tables, then its warnings and the first :data:`SKIPPED_SHOWN`
    images and objects skipped for a problem of the input (``summary_file``, where all are listed, is named)."""
    table = Table(title=f"grounding dataset: {summary.out}", show_header=False)
    table.add_row("images read / written", f"{summary.images_read} / {summary.images_written}")
    table.add_row("objects read", str(summary.objects_read))
    table.add_row("expressions", str(summary.expressions))
    table.add_row("splits", ", ".join(f"{k} {v}" for k, v in summary.splits.items()))
    shares = summary.step_shares
    for step in shares:
        table.add_row(f"{step} (paper on DIOR)", f"{shares[step]:.2f} % ({PAPER_STEP_SHARES[step]:.2f} %)")
    table.add_row(
        "time", f"{summary.seconds:.1f} s ({summary.images_per_second:.1f} images/s, {summary.workers} worker(s))"
    )
    console.print(table)
    for title, counts in (("objects dropped", summary.objects_dropped), ("images skipped", summary.images_skipped)):
        if counts:
            t = Table(title=title)
            t.add_column("reason")
            t.add_column("count", justify="right")
            for reason, n in counts.items():
                t.add_row(reason, str(n))
            console.print(t)
    print_skipped(summary, console, summary_file)
    for warning in summary.warnings:
        console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)


def print_skipped(summary: BuildSummary, console: Console, summary_file: Path | None = None) -> None:
    """One line per image or object left out for a problem of the input, the first :data:`SKIPPED_SHOWN` of them,
    and how many more ``summary_file`` lists."""
    for entry in summary.skipped[:SKIPPED_SHOWN]:
        console.print(f"skipped: {describe_skipped(entry)}", style="yellow", markup=False, highlight=False)
    more = len(summary.skipped) - SKIPPED_SHOWN
    if more > 0:
        where = summary_file if summary_file is not None else SUMMARY_FILE
        console.print(f"... {more} more, see {where}", style="yellow", markup=False, highlight=False)


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
