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
    """Evaluate in original pixel coordinates: Pr@0.5..0.9 (IoU > k), meanIoU, cumIoU, and per category.

    An empty split, a checkpoint whose weights are NaN or infinite, or an --out that is a file or holds the
    checkpoint or the dataset is refused before anything is written."""
    import json
    import time

    from rsvg.data.dataset import require_samples
    from rsvg.data.dior_rsvg import SPLITS
    from rsvg.data.records import DatasetError
    from rsvg.data.xmlio import atomic_write_text
    from rsvg.engine import distributed as dist
    from rsvg.engine.checkpoint import CheckpointError
    from rsvg.engine.evaluate import eval_loader, metrics_from_rows, predict_all, write_predictions
    from rsvg.errors import NonFiniteError
    from rsvg.inference import Grounder

    if split not in SPLITS:
        raise typer.BadParameter(f"{split!r} is not a split; choose {', '.join(SPLITS)}", param_hint="--split")
    console = Console()
    try:
        out = _check_out(out, checkpoint, data, split)
        dev = dist.init_distributed(device)
        grounder = Grounder.from_checkpoint(checkpoint, device=str(dev), precision=precision)
        dataset = grounder.dataset(data, split)
        require_samples(dataset, "there is nothing to evaluate")
    except (CheckpointError, DatasetError, ValueError, FileNotFoundError) as exc:
        console.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    loader = eval_loader(dataset, batch_size, workers, dev)
    if dist.is_main():
        console.print(grounder.precision.describe(), markup=False)
    started = time.perf_counter()
    try:
        rows = predict_all(grounder.model, loader, dev, image_size=grounder.image_size, amp=grounder.precision.amp)
    except NonFiniteError as exc:
        raise NonFiniteError(f"{checkpoint} on {data} [{split}]: {exc}") from None
    seconds = time.perf_counter() - started
    if not dist.is_main():
        return
    report = metrics_from_rows(rows)
    _require_finite(report.to_dict()["overall"], checkpoint)
    console.print(
        f"{checkpoint} on {data} [{split}], {len(rows)} samples in {seconds:.1f} s, {grounder.precision.name} "
        "(percent; Pr@k counts IoU > k)",
        markup=False,
    )
    console.print(report.table(), markup=False, highlight=False)
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


def _check_out(out: Path | None, checkpoint: Path, data: Path, split: str) -> Path:
    """The output folder (default ``CHECKPOINT/eval_SPLIT``), refused when it is a file or is or holds the
    checkpoint or the dataset; inside the checkpoint folder is where the default lies, so that is allowed."""
    from rsvg.output_paths import check_output_folder

    folder = checkpoint.parent if checkpoint.is_file() else checkpoint
    out = out or folder / f"eval_{split}"
    check_output_folder(out, "--out", inputs={"--checkpoint": folder}, may_lie_inside_inputs=True)
    check_output_folder(out, "--out", inputs={"--data": data})
    return out


def _require_finite(overall: dict, checkpoint: Path) -> None:
    """Never report a NaN metric as a result (an empty split and NaN boxes are refused before; this is the last
    guard)."""
    import math

    from rsvg.errors import NonFiniteError

    bad = [k for k, v in overall.get("values", {}).items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteError(f"{checkpoint}: the metrics {bad} are not finite numbers; nothing was written")
