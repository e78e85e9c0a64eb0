"""``rsvg eval``: the seven metrics of a checkpoint on a split, per category, with a predictions file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint folder written by rsvg train (e.g. runs/x/best).")],
    data: Annotated[Path, typer.Option(help="DIOR-RSVG-layout dataset folder.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json and predictions.jsonl.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    workers: Annotated[int, typer.Option(min=0, help="Data-loading processes.")] = 2,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    precision: Annotated[
        str, typer.Option(help="fp32, bf16, or auto: bf16 where the CPU or GPU has native bf16 units.")
    ] = "fp32",
) -> None:
    """Evaluate in original pixel coordinates: Pr@0.5..0.9 (IoU > k), meanIoU, cumIoU, and per category."""
    import json
    import time

    from rsvg.data.records import DatasetError
    from rsvg.data.xmlio import atomic_write_text
    from rsvg.engine import distributed as dist
    from rsvg.engine.checkpoint import CheckpointError
    from rsvg.engine.evaluate import eval_loader, gather_rows, metrics_from_rows, predict, write_predictions
    from rsvg.inference import Grounder

    console = Console()
    try:
        dev = dist.init_distributed(device)
        grounder = Grounder.from_checkpoint(checkpoint, device=str(dev), precision=precision)
        dataset = grounder.dataset(data, split)
    except (CheckpointError, DatasetError, ValueError, FileNotFoundError) as exc:
        console.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    loader = eval_loader(dataset, batch_size, workers, dev)
    if dist.is_main():
        console.print(grounder.precision.describe(), markup=False)
    started = time.perf_counter()
    rows = gather_rows(predict(grounder.model, loader, dev, image_size=grounder.image_size, amp=grounder.precision.amp))
    seconds = time.perf_counter() - started
    if not dist.is_main():
        return
    report = metrics_from_rows(rows)
    console.print(
        f"{checkpoint} on {data} [{split}], {len(rows)} samples in {seconds:.1f} s, {grounder.precision.name} "
        "(percent; Pr@k counts IoU > k)",
        markup=False,
    )
    console.print(report.table(), markup=False, highlight=False)
    out = out or Path(checkpoint) / f"eval_{split}"
    data_json = report.to_dict() | {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "split": split,
        "precision": grounder.precision.name,
        "seconds": round(seconds, 2),
    }
    atomic_write_text(out / "metrics.json", json.dumps(data_json, indent=2))
    write_predictions(out / "predictions.jsonl", rows)
    console.print(f"wrote {out / 'metrics.json'} and {out / 'predictions.jsonl'}")
