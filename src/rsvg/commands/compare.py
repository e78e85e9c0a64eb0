"""``rsvg compare``: two predictions files on the same expressions, compared pair by pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def compare(
    first: Annotated[Path, typer.Argument(help="predictions.jsonl of the first model or run.")],
    second: Annotated[Path, typer.Argument(help="predictions.jsonl of the second, on the same expressions.")],
    names: Annotated[str, typer.Option(help="What to call the two, comma-separated.")] = "first,second",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the comparison here.")] = None,
) -> None:
    """The seven metrics of both, how many answers moved, how many are right (IoU > 0.5) for only one of the two,
    and an exact sign test on those: is the difference more than chance? The rows of the two files must be the
    same expressions (same index, image, query and ground truth); the first that differs is named."""
    from rsvg.commands.failures import EXIT_BAD_INPUT, report
    from rsvg.metrics import METRIC_NAMES
    from rsvg.output_paths import check_output_file
    from rsvg.paired import compare_predictions, read_predictions

    console = Console()
    parts = [n.strip() for n in names.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise typer.BadParameter("give two different names, e.g. fp32,bf16", param_hint="--names")
    if json_out is not None:
        check_output_file(json_out, "--json", inputs={"FIRST": first, "SECOND": second})
    try:
        result = compare_predictions(read_predictions(first), read_predictions(second))
    except (FileNotFoundError, ValueError) as exc:  # RowsError is a ValueError: its message names file and line
        report(str(exc))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    a, b = parts
    width = max(len(a), len(b), 5)
    console.print(f"{'':<{width}}  " + "  ".join(f"{m:>7}" for m in METRIC_NAMES), markup=False, highlight=False)
    for name, values in ((a, result.metrics_a), (b, result.metrics_b)):
        row = "  ".join(f"{values[m]:7.2f}" for m in METRIC_NAMES)
        console.print(f"{name:<{width}}  {row}", markup=False, highlight=False)
    console.print(result.summary(a, b), markup=False, highlight=False)
    if json_out is not None:
        from rsvg.data.xmlio import atomic_write_text

        atomic_write_text(
            json_out,
            json.dumps({"first": str(first), "second": str(second), "names": parts, **result.to_dict()}, indent=2),
        )
