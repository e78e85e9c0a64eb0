"""``rsvg stats``: the paper's dataset analysis (Fig. 3, Fig. 4) for a DIOR-RSVG-style dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rsvg.data.records import DatasetError


def stats(
    root: Annotated[
        Path, typer.Argument(help="Grounding dataset folder (Annotations/, JPEGImages/, train/val/test.txt).")
    ],
    out: Annotated[Path, typer.Argument(help="Folder for the figures, stats.json and stats.md (created).")],
) -> None:
    """Category, attribute, relation, length, box and word statistics, with the figures of the paper.

    Works on datasets built by ``rsvg build`` (attributes from their provenance) and on the official
    DIOR-RSVG (attributes read from the text).
    """
    from rsvg.construct.stats import dataset_stats, outside_row, outside_words_text
    from rsvg.construct.steps import TEXT_INFERRED_NOTE, steps_label
    from rsvg.construct.vocabulary import LOCATION_PHRASES
    from rsvg.output_paths import check_output_folder

    console = Console()
    if not root.is_dir():
        raise typer.BadParameter(f"folder not found: {root}", param_hint="ROOT")
    check_output_folder(out, "OUT", inputs={"ROOT": root}, may_lie_inside_inputs=True)
    try:
        result = dataset_stats(root, out)
    except DatasetError as exc:
        console.print(f"error: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    length, content, paper = result["length"], result["content_percent"], result["paper"]
    table = Table(title=f"dataset statistics: {root}")
    table.add_column("")
    table.add_column("this dataset", justify="right")
    table.add_column("paper (DIOR-RSVG)", justify="right")
    table.add_row("images", str(result["images"]), str(paper["images"]))
    table.add_row("expressions", str(result["expressions"]), str(paper["expressions"]))
    table.add_row("mean length (words)", f"{length['mean']:.2f}", str(paper["length_mean"]))
    table.add_row(
        "min / max length", f"{length['min']} / {length['max']}", f"{paper['length_min']} / {paper['length_max']}"
    )
    table.add_row("vocabulary", str(result["vocabulary"]), str(paper["vocabulary"]))
    table.add_row("not DIOR-RSVG words (% / % distinct)", outside_row(result), "0 / 0")
    estimated = steps_label(result)
    for step in ("cat+", "att+", "rel+"):
        label = f"{step} (%, {estimated})" if estimated else f"{step} (%)"
        table.add_row(label, f"{content[step]:.2f}", str(paper[step]))
    dior = result["dior_rsvg_text"]
    table.add_row("relation sentences (%)", f"{content['rel']:.2f}", str(dior["sentences_percent"]))
    for word, share in dior["location_phrases_percent"].items():
        table.add_row(
            f"  {LOCATION_PHRASES[word]} (% of locations)",
            f"{result['location_phrases_percent'][word]:.2f}",
            str(share),
        )
    console.print(table)
    outside = outside_words_text(result)
    if outside:
        console.print(outside, highlight=False, markup=False)
    if estimated:
        console.print(TEXT_INFERRED_NOTE, highlight=False)
    console.print(f"wrote {', '.join(result['figures'])}, stats.json and stats.md to {out}")
