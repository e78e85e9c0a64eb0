"""Rich tables of what the data commands report: a dataset construction's summary and a dataset check.

Shared by the command line (``rsvg build``, ``rsvg check-data``) and the demo pipeline.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from rsvg.construct.build import PAPER_STEP_SHARES, BuildSummary
from rsvg.data.check import CheckReport


def print_summary(summary: BuildSummary, console: Console) -> None:
    """Render a :class:`BuildSummary` as rich tables."""
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
