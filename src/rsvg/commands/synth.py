"""``rsvg synth``: write synthetic top-down aerial scenes as a DIOR-layout detection dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rsvg.data.records import DatasetError
from rsvg.output_paths import check_output_folder


def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (Annotations/*.xml and JPEGImages/*.jpg are written).")],
    images: Annotated[int, typer.Option(min=1, help="Number of scenes.")] = 100,
    seed: Annotated[int, typer.Option(min=0, help="Random seed: the same seed gives the same files.")] = 0,
    size: Annotated[int, typer.Option(min=64, help="Side of the square scenes in pixels (DIOR: 800).")] = 800,
    workers: Annotated[int, typer.Option(min=1, help="Processes (the output does not depend on it).")] = 1,
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT if it exists (the old one stays until the new one is complete).")
    ] = False,
) -> None:
    """Generate synthetic aerial scenes with objects of all 20 DIOR categories (the built-in default data)."""
    from rsvg.synth import write_synthetic_dataset

    check_output_folder(out, "OUT", overwrite=overwrite)
    console = Console()
    try:
        summary = write_synthetic_dataset(out, images, seed=seed, size=size, workers=workers, overwrite=overwrite)
    except (DatasetError, FileExistsError) as exc:
        console.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    table = Table(title=f"synthetic scenes: {out}", show_header=False)
    table.add_row("images", str(summary.images))
    table.add_row("objects", str(summary.objects))
    table.add_row("categories", str(len(summary.per_category)))
    table.add_row("time", f"{summary.seconds:.1f} s ({summary.images / max(summary.seconds, 1e-9):.1f} images/s)")
    console.print(table)
