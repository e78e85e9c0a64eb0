"""``rsvg build``: turn a DIOR/VOC detection dataset into a DIOR-RSVG-style grounding dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rsvg.construct.build import SUMMARY_FILE, build_dataset
from rsvg.construct.classmap import load_class_mapping
from rsvg.construct.split import parse_split
from rsvg.data.records import DatasetError
from rsvg.output_paths import check_output_folder
from rsvg.reports import print_summary


def build(
    detection_root: Annotated[
        Path,
        typer.Argument(
            help="Detection dataset folder: DIOR (Annotations/Horizontal Bounding Boxes/, "
            "JPEGImages-trainval/, JPEGImages-test/) or VOC (Annotations/, JPEGImages/)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Argument(
            help="Output folder for the grounding dataset (must not exist, nor be, hold or lie inside DETECTION_ROOT)."
        ),
    ],
    seed: Annotated[int, typer.Option(min=0, help="Random seed: the same seed gives the same dataset.")] = 0,
    split: Annotated[
        str,
        typer.Option(
            help="train,val,test fractions of the expressions (or percentages); the paper's text says 0.4,0.1,0.5."
        ),
    ] = "0.7,0.1,0.2",
    workers: Annotated[int, typer.Option(min=1, help="Processes (the output does not depend on it).")] = 1,
    class_map: Annotated[
        Path | None,
        typer.Option(help="YAML or JSON file mapping other class names to DIOR classes, e.g. {car: vehicle}."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT if it exists (the old one stays until the new one is complete).")
    ] = False,
) -> None:
    """Build image/expression/box triplets from detection boxes: box sampling, 7 attributes, template
    expressions that are unambiguous by construction (paper Sec. III, steps 1-3)."""
    console = Console()
    # a file, an input, the current folder: refused with or without --overwrite (the existing-folder check follows)
    check_output_folder(out, "OUT", inputs={"DETECTION_ROOT": detection_root, "--class-map": class_map}, overwrite=True)
    if out.exists() and not overwrite:
        raise typer.BadParameter(f"{out} already exists (choose another folder or pass --overwrite)", param_hint="OUT")
    try:
        ratios = parse_split(split)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--split") from None
    mapping = None
    if class_map is not None:
        try:
            mapping = load_class_mapping(class_map)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--class-map") from None
    if not detection_root.is_dir():
        what = "is a file, not a folder" if detection_root.exists() else "not found"
        raise typer.BadParameter(f"{detection_root} {what}", param_hint="DETECTION_ROOT")
    columns = (TextColumn("building"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("build", total=None)
            summary = build_dataset(
                detection_root,
                out,
                seed=seed,
                split=ratios,
                workers=workers,
                class_mapping=mapping,
                overwrite=overwrite,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except DatasetError as exc:
        console.print(f"error: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    print_summary(summary, console, Path(out) / SUMMARY_FILE)
