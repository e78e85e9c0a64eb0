"""``rsvg ground``: the box of a query on your own image, as JSON, and a picture with the attention map."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

# above this share of [UNK] tokens a query is warned about (refused with --strict)
UNKNOWN_QUERY_SHARE = 0.5


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    """(image, query) pairs from a CSV with columns image,query or a JSONL file of {"image", "query"}."""
    if not path.is_file():
        raise FileNotFoundError(f"batch file not found: {path}")
    pairs: list[tuple[str, str]] = []
    if path.suffix.lower() == ".jsonl":
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pairs.append((str(row["image"]), str(row["query"])))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{n}: expected a JSON object with 'image' and 'query'") from None
    else:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"image", "query"} <= set(reader.fieldnames):
                raise ValueError(f"{path}: the CSV needs a header with the columns image and query")
            pairs = [(row["image"], row["query"]) for row in reader]
    base = path.parent
    return [(str(Path(img) if Path(img).is_absolute() else base / img), q) for img, q in pairs]


def ground(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint folder written by rsvg train (e.g. runs/x/best).")],
    image: Annotated[Path | None, typer.Argument(help="Image file (JPEG, PNG, TIFF, ...).")] = None,
    query: Annotated[str | None, typer.Argument(help='The referring expression, e.g. "the red vehicle".')] = None,
    batch: Annotated[
        Path | None, typer.Option(help="CSV (image,query) or JSONL file of pairs instead of IMAGE QUERY.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the PNG pictures (box + attention).")] = Path("grounding_out"),
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    heatmap: Annotated[
        str,
        typer.Option(
            help="mlcm: the MLCM attention map (paper Fig. 6; the head's map where the model has none); "
            "head: where the box head looks (cell scores or [REG] attention)."
        ),
    ] = "mlcm",
    strict: Annotated[
        bool, typer.Option(help="Refuse a query whose tokens are mostly unknown to the text encoder (else a warning).")
    ] = False,
    precision: Annotated[
        str, typer.Option(help="fp32, bf16, or auto: bf16 where the CPU or GPU has native bf16 units.")
    ] = "fp32",
) -> None:
    """Print the box in original pixels as JSON and write a PNG with the box and the attention heatmap."""
    from rsvg.data.image_io import ImageReadError, read_image_rgb
    from rsvg.data.tokenizer import QueryTooLongError, shorten
    from rsvg.engine.checkpoint import CheckpointError
    from rsvg.inference import Grounder
    from rsvg.viz import answer_boxes, overlay, save_png

    err = Console(stderr=True)
    if heatmap not in ("mlcm", "head"):
        raise typer.BadParameter("choose mlcm or head", param_hint="--heatmap")
    if batch is None and (image is None or query is None):
        raise typer.BadParameter("give IMAGE and QUERY, or --batch FILE")
    try:
        pairs = _read_pairs(batch) if batch is not None else [(str(image), str(query))]
        grounder = Grounder.from_checkpoint(checkpoint, device=device, precision=precision)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        err.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    err.print(grounder.precision.describe(), markup=False)
    failures = 0
    for k, (img_path, q) in enumerate(pairs):
        unknown = grounder.tokenizer.unknown_share(q) if hasattr(grounder.tokenizer, "unknown_share") else 0.0
        if unknown > UNKNOWN_QUERY_SHARE:
            note = (
                f"{unknown:.0%} of the query's tokens are unknown to the text encoder ([UNK]): {shorten(q)!r}; "
                "the model reads English expressions"
            )
            if strict:
                err.print(f"error: {note} (--strict)", style="red", markup=False)
                failures += 1
                continue
            err.print(f"warning: {note}; the box below means little", style="yellow", markup=False)
        try:
            rgb = read_image_rgb(img_path)
            result = grounder.predict(rgb, q, return_attention=True)
        except ImageReadError as exc:  # its message names the file
            err.print(f"error: {exc}", style="red", markup=False)
            failures += 1
            continue
        except (QueryTooLongError, ValueError) as exc:
            err.print(f"error: {img_path}: {exc}", style="red", markup=False)
            failures += 1
            continue
        picture = out / f"{k:04d}_{Path(img_path).stem}.png"
        heat = result.mlcm_attention if heatmap == "mlcm" and result.mlcm_attention is not None else result.attention
        save_png(picture, overlay(rgb, answer_boxes(result), heat))
        typer.echo(json.dumps({"image": img_path, "query": q, **result.to_dict(), "picture": str(picture)}))
    if failures:
        raise typer.Exit(1 if failures < len(pairs) else 2)
