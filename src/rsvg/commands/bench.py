"""``rsvg bench``: reproducible speed measurements, each printed with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(
    help="Speed measurements (each prints the machine, threads and versions).", no_args_is_help=True
)


def machine_info() -> dict[str, str | int]:
    """CPU model, core count, Python and torch versions, threads: printed with every benchmark."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


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
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results here.")] = None,
) -> None:
    """Synthetic scene generation speed on one core (generation + JPEG encoding, no disk)."""
    from rsvg.synth import benchmark_synth

    print_bench("rsvg bench synth", benchmark_synth(images=images, size=size), Console(), json_out)


@bench_app.command("build")
def bench_build(
    images: Annotated[int, typer.Option(min=1, help="Synthetic scenes to build from (made first, not timed).")] = 100,
    size: Annotated[int, typer.Option(min=64, help="Scene side in pixels.")] = 800,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 2,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results here.")] = None,
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
