"""The benchmark's progress table, printed before each row that runs: every row done, running or left, the time
spent so far and an estimate of the time left (the mean time of the rows that ran in this call, times the rows
left)."""

from __future__ import annotations

from rich.table import Table

from rsvg.benchmark.plan import RowPlan
from rsvg.benchmark.runner import RowResult

__all__ = ["estimate_left", "progress_table"]


def estimate_left(plans: list[RowPlan], results: dict[str, RowResult], ran_seconds: list[float]) -> float | None:
    """Seconds the rows without a result should take, at the mean of ``ran_seconds`` (the rows that trained and
    were evaluated in this call); ``None`` before the first has."""
    left = sum(1 for p in plans if p.config is not None and p.row.name not in results)
    if not left:
        return 0.0
    return sum(ran_seconds) / len(ran_seconds) * left if ran_seconds else None


def progress_table(
    plans: list[RowPlan], results: dict[str, RowResult], running: str, spent: float, left: float | None
) -> Table:
    """The rows in order with their state (``running`` names the one starting now), and a caption with the
    ``spent`` seconds and the estimate ``left`` (``None``: not known yet)."""
    runnable = [p for p in plans if p.config is not None]
    done = sum(1 for p in runnable if p.row.name in results)
    estimate = "estimate after the first row" if left is None else f"about {left / 60:.0f} min left"
    table = Table(
        title=f"benchmark: {done} of {len(runnable)} rows finished, {spent / 60:.1f} min spent, {estimate}",
        title_justify="left",
    )
    for column in ("row", "state", "training min", "test Pr@0.5"):
        table.add_column(column, justify="left" if column in ("row", "state") else "right")
    for plan in runnable:
        name = plan.row.name
        result = results.get(name)
        if result is not None:
            score = f"{result.metrics['Pr@0.5']:.2f}" if result.metrics else "—"
            table.add_row(name, result.status, f"{result.train_seconds / 60:.1f}", score)
        else:
            table.add_row(name, "running" if name == running else "left", "", "")
    return table
