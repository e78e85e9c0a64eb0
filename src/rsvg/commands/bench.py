"""``rsvg bench``: reproducible speed measurements, each printed with the machine it ran on."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rsvg.bench.machine import machine_info
from rsvg.commands.options import JsonOut

bench_app = typer.Typer(
    help="Speed measurements (each prints the machine, threads and versions).", no_args_is_help=True
)


def print_bench(title: str, results: dict, console: Console, json_out: Path | None) -> None:
    """Print a benchmark's results and the machine; optionally save both as JSON."""
    info = machine_info()
    table = Table(title=title, show_header=False)
    for k, v in {**results, **{f"machine.{k}": v for k, v in info.items()}}.items():
        table.add_row(k, f"{v:.2f}" if isinstance(v, float) else str(v))
    console.print(table)
    if json_out is not None:
        from rsvg.data.xmlio import atomic_write_text

        atomic_write_text(json_out, json.dumps({"benchmark": title, "results": results, "machine": info}, indent=2))


@bench_app.command("synth")
def bench_synth(
    images: Annotated[int, typer.Option(min=1, help="Scenes to generate (after one warm-up scene).")] = 50,
    size: Annotated[int, typer.Option(min=64, help="Scene side in pixels.")] = 800,
    json_out: JsonOut = None,
) -> None:
    """Synthetic scene generation speed on one core (generation + JPEG encoding, no disk)."""
    from rsvg.synth import benchmark_synth

    print_bench("rsvg bench synth", benchmark_synth(images=images, size=size), Console(), json_out)


@bench_app.command("build")
def bench_build(
    images: Annotated[int, typer.Option(min=1, help="Synthetic scenes to build from (made first, not timed).")] = 100,
    size: Annotated[int, typer.Option(min=64, help="Scene side in pixels.")] = 800,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 2,
    json_out: JsonOut = None,
) -> None:
    """Dataset construction speed (rsvg build) in images/s on synthetic scenes."""
    from rsvg.construct.build import benchmark_build_summary

    summary = benchmark_build_summary(images=images, size=size, workers=workers)
    results = {
        "images": summary.images_written,
        "expressions": summary.expressions,
        "workers": workers,
        "images_per_s": summary.images_per_second,
    }
    print_bench("rsvg bench build", results, Console(), json_out)


@bench_app.command("features")
def bench_features(
    config: Annotated[Path, typer.Option("--config", "-c", help="Run config (model and train sections).")] = Path(
        "configs/mgvlf_lite.yaml"
    ),
    images: Annotated[int, typer.Option(min=1, help="Random images per pass.")] = 64,
    baseline_batch: Annotated[
        int | None, typer.Option(min=1, help="Batch size to compare with (default: the config's eval batch).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Torch threads (default: torch's).")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Alternating passes; the best of each is kept.")] = 3,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Config override key=value.")] = None,
    json_out: JsonOut = None,
) -> None:
    """The frozen backbone's feature cache: ms per image at the cache's batch size against a baseline batch."""
    from rsvg.bench.feature_bench import benchmark_features
    from rsvg.errors import BenchError

    try:
        results = benchmark_features(config, images, baseline_batch, threads, repeats, device, overrides)
    except (BenchError, FileNotFoundError, ValueError) as exc:
        Console(stderr=True).print(f"[red]rsvg bench features: {exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    print_bench("rsvg bench features", results, Console(), json_out)


@bench_app.command("model")
def bench_model(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Run config (YAML): its model at random init; with --checkpoint: batches, workers."
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override one config value: section.key=value (repeatable).")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Measure a trained checkpoint folder instead of the config at random init.")
    ] = None,
    random_text: Annotated[
        bool,
        typer.Option(
            "--random-text", help="A text encoder folder that is not here becomes bert-base-random (random weights)."
        ),
    ] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads (default: torch's, the cores).")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per measurement (the median is reported).")] = 3,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs before them (at least the first call).")] = 1,
    batch: Annotated[
        int | None, typer.Option(min=1, help="Inference throughput batch (default 8 on cpu, eval_batch_size on cuda).")
    ] = None,
    train_batch: Annotated[
        int | None, typer.Option(min=1, help="Training-step batch (default 2 on cpu, train.batch_size on cuda).")
    ] = None,
    amp: Annotated[
        str | None,
        typer.Option(help="Autocast of the whole run: auto, off, bf16, fp16 (default: train.amp on cuda, off on cpu)."),
    ] = None,
    compile_model: Annotated[bool, typer.Option("--compile", help="torch.compile the optimised path.")] = False,
    ablate: Annotated[
        bool,
        typer.Option("--ablate", help="Also time the optimised path without each optimisation in turn (slower)."),
    ] = False,
    skip_train: Annotated[bool, typer.Option("--skip-train", help="Leave out the training steps.")] = False,
    bf16: Annotated[
        bool | None,
        typer.Option(
            "--bf16/--no-bf16",
            help="Also time inference and the training step in bf16 beside fp32, bf16's boxes checked against fp32's "
            "(default: where the CPU or GPU has native bf16 units).",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=0, help="Data loader workers (default: data.workers).")] = None,
    data_images: Annotated[int, typer.Option(min=1, help="Synthetic 800x800 JPEGs for the data-loading rate.")] = 16,
    data_samples: Annotated[int, typer.Option(min=1, help="Samples per timed pass of the data loader.")] = 128,
    matmul_size: Annotated[int, typer.Option(min=16, help="Side of the fp32 matrix product of the floor.")] = 2048,
    in_process: Annotated[
        bool,
        typer.Option("--in-process", help="Run every phase in this process (faster; peak memory is then cumulative)."),
    ] = False,
    json_out: JsonOut = None,
) -> None:
    """The model's inference latency and throughput, training step, peak memory, data-loading rate and FLOPs,
    plain eager against optimised (same weights, same boxes), and the machine's floor."""
    from rsvg.bench.model_bench import benchmark_model
    from rsvg.bench.model_settings import BenchSettings
    from rsvg.bench.report import render_model_bench
    from rsvg.errors import BenchError

    if config is None and checkpoint is None:
        raise typer.BadParameter("give --config (random init) or --checkpoint", param_hint="--config")
    console = Console()
    err = Console(stderr=True)
    settings = BenchSettings(
        config=None if config is None else str(config),
        overrides=list(overrides or []),
        checkpoint=None if checkpoint is None else str(checkpoint),
        random_text=random_text,
        device=device,
        threads=threads,
        repeats=repeats,
        warmup=warmup,
        batch=batch,
        train_batch=train_batch,
        amp=amp,
        compile=compile_model,
        ablate=ablate,
        skip_train=skip_train,
        bf16=bf16,
        workers=workers,
        data_images=data_images,
        data_samples=data_samples,
        matmul_n=matmul_size,
        isolate=not in_process,
    )
    try:
        result = benchmark_model(settings, progress=lambda msg: err.print(msg, highlight=False))
    except (BenchError, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]rsvg bench model: {exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    result["command"] = " ".join(["rsvg", *sys.argv[1:]]) if sys.argv and "rsvg" in sys.argv[0] else None
    render_model_bench(result, console)
    if json_out is not None:
        from rsvg.data.xmlio import atomic_write_text

        atomic_write_text(json_out, json.dumps(result, indent=2))
    if not result["check"]["passed"]:
        err.print(
            f"[red]plain and optimised boxes differ (max relative difference {result['check']['max_rel_diff']:.2e} "
            f">= {result['check']['tolerance']:g}, same weights: {result['check']['same_weights']})[/red]"
        )
        raise typer.Exit(1)


@bench_app.command("scene")
def bench_scene(
    checkpoint: Annotated[
        Path | None, typer.Option(help="A trained checkpoint folder (default: the config's model at random init).")
    ] = None,
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Run config whose model is timed at random init.")
    ] = Path("configs/mgvlf_lite.yaml"),
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Config override key=value.")] = None,
    size: Annotated[int, typer.Option(help="Side of the synthetic scene in pixels (less for a quick run).")] = 10_000,
    scale: Annotated[float, typer.Option(help="Scene pixels per model pixel.")] = 1.0,
    overlap: Annotated[float, typer.Option(help="Overlap of neighbouring tiles, a fraction of the side.")] = 0.25,
    tile_batch: Annotated[
        int | None, typer.Option(help="Tiles grounded at once (default: 1 on a CPU, 8 on a GPU).")
    ] = None,
    compress: Annotated[str, typer.Option(help="Compression of the scene file: none, deflate or lzw.")] = "none",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    precision: Annotated[str, typer.Option(help="fp32, bf16 or auto.")] = "fp32",
    threads: Annotated[int | None, typer.Option(help="Torch threads (default: torch's).")] = None,
    folder: Annotated[
        Path | None, typer.Option(help="Where the temporary scene file goes (default: the system's temp folder).")
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """Scene grounding speed: tiles/s and the time for a 10,000 x 10,000 scene (a synthetic GeoTIFF written into a
    temporary folder first, not timed; a smaller --size projects the 10,000² time from its tiles/s)."""
    import torch

    from rsvg.bench.machine import check_device
    from rsvg.bench.scene_bench import benchmark_scene, load_predictor
    from rsvg.engine.checkpoint import CheckpointError
    from rsvg.errors import BenchError
    from rsvg.geo.raster import SceneError

    err = Console(stderr=True)
    try:
        if size < 64:
            raise ValueError(f"--size {size}: the scene must be at least 64 pixels a side")
        if not scale > 0:
            raise ValueError(f"--scale {scale}: give a positive number of scene pixels per model pixel")
        if tile_batch is not None and tile_batch < 1:
            raise ValueError(f"--tile-batch {tile_batch}: give at least 1")
        if threads is not None:
            if threads < 1:
                raise ValueError(f"--threads {threads}: give at least 1")
            torch.set_num_threads(threads)
        check_device(device)
        predictor, model_line = load_predictor(checkpoint, config, list(overrides or []), device, precision)
        err.print(f"timing {model_line} on a {size}x{size} synthetic scene ...", highlight=False)
        results = benchmark_scene(
            predictor, size, scale=scale, overlap=overlap, batch=tile_batch, compress=compress, folder=folder
        )
    except (BenchError, CheckpointError, SceneError, FileNotFoundError, ValueError) as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    results = {"model": model_line, "device": device, "precision": precision, **results}
    print_bench("rsvg bench scene", results, Console(), json_out)


@bench_app.command("review")
def bench_review(
    annotators: Annotated[int, typer.Option(min=1, max=200, help="Annotators logged in at once.")] = 20,
    decisions: Annotated[int, typer.Option(min=1, max=10_000, help="Decisions per annotator.")] = 100,
    images: Annotated[int, typer.Option(min=1, help="Images of the review dataset (4 expressions each).")] = 50,
    checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint folder: grounding requests then run beside the review.")
    ] = None,
    json_out: JsonOut = None,
) -> None:
    """The review server (rsvg serve, in a child process on loopback) under a team of logged-in annotators:
    decisions/s and latency, against one annotator alone in the same run, checked against the database."""
    from rsvg.bench.review_bench import benchmark_review

    err = Console(stderr=True)
    results = benchmark_review(
        annotators, decisions, images, checkpoint, progress=lambda msg: err.print(msg, highlight=False)
    )
    print_bench("rsvg bench review", results, Console(), json_out)
    if not results["database check"].startswith("every"):
        raise typer.Exit(1)
