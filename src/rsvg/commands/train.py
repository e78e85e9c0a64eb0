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
    A NaN or infinite loss stops the run with a message naming the epoch and step; OUT/last and OUT/best keep
    what was saved before it. A second run into the same OUT is refused while this one writes it.
    """
    from rsvg.data.records import DatasetError
    from rsvg.engine.checkpoint import CheckpointError
    from rsvg.engine.distributed import launched_as_main
    from rsvg.engine.trainer import train as run_training
    from rsvg.models.backbones.weights import WeightsFormatError, WeightsNotFoundError
    from rsvg.output_paths import check_output_folder

    console = Console(stderr=True)
    overrides = list(set_ or [])
    if data is not None:
        overrides.append(f"data.root={data}")
    try:
        cfg = load_config(config, overrides)
        # the run folder may not be, hold or lie inside the dataset; a run already there needs --resume (trainer)
        check_output_folder(out, "--out", inputs={"--data": cfg.data.root})
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
        Console().print(_summary(result, out), markup=False)


def _summary(result: dict, out: Path) -> str:
    """The closing line: the best validation Pr@0.5 and its checkpoint, naming only a checkpoint that exists."""
    best = out / "best"
    if result["best_val_pr50"] < 0 or not (best / "model.safetensors").is_file():
        return f"no validated checkpoint was written to {best}; the training checkpoint is {out / 'last'}"
    return f"best validation Pr@0.5: {result['best_val_pr50']:.2f} — checkpoint: {best}"
