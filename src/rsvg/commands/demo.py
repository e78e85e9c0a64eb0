"""``rsvg demo``: the main job end to end, with a report a researcher would want to read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo makes.")] = Path("demo_out"),
    images: Annotated[int, typer.Option(min=10, help="Synthetic scenes to generate.")] = 2700,
    seed: Annotated[int, typer.Option(help="Seed of the scenes, the construction and the split.")] = 0,
    config: Annotated[Path, typer.Option(help="Training config.")] = Path("configs/mgvlf_lite.yaml"),
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 2,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a training option: section.key=value.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes for scene generation and construction.")] = 2,
) -> None:
    """Synthetic scenes → dataset (build, check, stats) → training → test evaluation → OUT/report.html.

    A second run reuses every step whose options and inputs are unchanged (an interrupted training resumes), and a
    changed option re-runs only the steps that depend on it.
    """
    from rsvg.demo.pipeline import Demo, DemoOptions, trained_precision
    from rsvg.output_paths import check_output_folder

    console = Console()
    check_output_folder(out, "--out", inputs={"--config": config})
    opts = DemoOptions(
        out=out, images=images, seed=seed, config=config, epochs=epochs, overrides=list(set_ or []), workers=workers
    )
    try:
        path = Demo(opts, console).run_all()
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        console.print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from None
    import json

    metrics = json.loads((out / "eval" / "metrics.json").read_text())["overall"]
    from rsvg.demo.baselines import blind_pick_baseline, prior_box_baseline

    prior = prior_box_baseline(out / "rsvg")["Pr@0.5"]
    blind = blind_pick_baseline(out / "rsvg")["Pr@0.5"]
    v = metrics["values"]
    console.rule("result")
    console.print(
        f"test Pr@0.5 {v['Pr@0.5']:.2f} %  meanIoU {v['meanIoU']:.2f} %  cumIoU {v['cumIoU']:.2f} %  "
        f"on {metrics['count']} expressions\nquery-blind baselines: prior box {prior:.2f} %, blind pick {blind:.2f} %",
        highlight=False,
    )
    steps, encoders = trained_precision(out / "run")
    name = {"off": "fp32"}
    console.print(
        f"precision: frozen encoders' features {name.get(encoders, encoders)}, training and test steps "
        f"{name.get(steps, steps)}, weights fp32 (train.amp; --set train.amp=off for fp32 throughout)",
        highlight=False,
    )
    console.print(f"report: {path.resolve()}", highlight=False)
