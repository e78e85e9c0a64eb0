"""``rsvg train``: train MGVLF, the baseline or an ablation from a config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from rsvg.config import load_config


def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML config (see configs/).")],
    data: Annotated[Path | None, typer.Option(help="DIOR-RSVG-layout dataset folder (overrides data.root).")] = None,
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, history, predictions.")] = Path("runs/train"),
    resume: Annotated[bool, typer.Option(help="Continue the run in OUT from its last checkpoint.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (under torchrun: one GPU per process).")] = "auto",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one option: section.key=value (repeatable).")
    ] = None,
) -> None:
    """Train a grounding model; the best checkpoint on validation Pr@0.5 goes to OUT/best.

    Runs unchanged under `torchrun --nproc_per_node N rsvg train ...` (DDP, one process per GPU, or gloo on CPUs).
    """
    from rsvg.data.records import DatasetError
    from rsvg.engine.checkpoint import CheckpointError
    from rsvg.engine.distributed import launched_as_main
    from rsvg.engine.trainer import train as run_training
    from rsvg.models.backbones.weights import WeightsFormatError, WeightsNotFoundError

    console = Console(stderr=True)
    overrides = list(set_ or [])
    if data is not None:
        overrides.append(f"data.root={data}")
    try:
        cfg = load_config(config, overrides)
        result = run_training(cfg, out, resume=resume, device=device)
    except (
        FileNotFoundError,
        FileExistsError,
        ValueError,
        DatasetError,
        CheckpointError,
        WeightsNotFoundError,
        WeightsFormatError,
    ) as exc:
        console.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    if launched_as_main():  # under torchrun the summary is printed once, by rank 0
        Console().print(f"best validation Pr@0.5: {result['best_val_pr50']:.2f} — checkpoint: {out / 'best'}")
