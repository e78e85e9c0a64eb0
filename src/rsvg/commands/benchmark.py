"""``rsvg benchmark``: the paper's Table II on any dataset, every row trained and tested under one protocol."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def benchmark(
    data: Annotated[Path, typer.Argument(help="DIOR-RSVG-layout dataset folder.")],
    out: Annotated[Path, typer.Option(help="Folder for the rows' runs and the table.")] = Path("benchmark_out"),
    methods: Annotated[str, typer.Option(help="all, or row names separated by commas (see --dry-run).")] = "all",
    variant: Annotated[str, typer.Option(help="paper (the references' configs) or lite (CPU encoders).")] = "paper",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one option of every row: section.key=value.")
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the paper variant's pretrained files under their published names (yolov3.weights, "
            "detr-r50-e632da11.pth, detr-r101-2c7b67e5.pth, resnet50-0676ba61.pth, vgg16_reducedfc.pth, "
            "bert-base-uncased/, glove.840B.300d.txt): each row is given the ones it reads."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="train.seed of every row.")] = 0,
    nproc_per_node: Annotated[int, typer.Option(min=1, help="Train each row under torchrun with N processes.")] = 1,
    dry_run: Annotated[bool, typer.Option(help="Print the plan and every row's commands; run nothing.")] = False,
) -> None:
    """Train every method of the paper's Table II (and MGVLF and its baseline (a)) on DATA with the same splits and
    seed, evaluate each on the test split with the seven metrics, and write OUT/table.md, table.json and table.html.

    A row whose config and data are unchanged is reused; an interrupted row resumes; a failed row is reported with
    its log and the others go on. On DIOR-RSVG's official split the paper's figures stand beside each row.
    """
    from rsvg.benchmark.plan import is_official_split, plan_rows
    from rsvg.benchmark.progress import estimate_left, progress_table
    from rsvg.benchmark.rows import rows_named
    from rsvg.benchmark.runner import RowResult, reusable, run_row
    from rsvg.benchmark.table import build_table, write_table
    from rsvg.commands.failures import EXIT_BAD_INPUT, report
    from rsvg.output_paths import check_output_folder

    console = Console(soft_wrap=True)  # commands stay on one line, to be copied
    if variant not in ("paper", "lite"):
        raise typer.BadParameter(f"{variant!r}: choose paper or lite", param_hint="--variant")
    try:
        rows = rows_named(methods)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--methods: "), param_hint="--methods") from None
    if not (data / "train.txt").is_file():
        report(f"{data}: not a DIOR-RSVG-layout dataset (no train.txt); rsvg check-data says what is missing")
        raise typer.Exit(EXIT_BAD_INPUT)
    check_output_folder(out, "--out", inputs={"DATA": data})
    try:
        plans = plan_rows(rows, variant, data, out, list(set_ or []), seed, weights)
    except ValueError as exc:
        report(str(exc))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    official = is_official_split(data)
    console.print(f"{len(plans)} rows, variant {variant}, on {data}" + (" (DIOR-RSVG's official split)" if official
                  else ""), markup=False)  # fmt: skip
    for plan in plans:
        if plan.config is None:
            console.print(f"  {plan.row.name}: not run: {plan.row.lite_note}", markup=False)
            continue
        console.print(f"  {plan.row.name}: {plan.config} {' '.join(plan.overrides)}", markup=False)
        for command in plan.commands(data, nproc_per_node):
            console.print(f"    {command}", markup=False, highlight=False)
    if dry_run:
        return

    from rsvg.demo.baselines import blind_pick_baseline, prior_box_baseline

    results: dict[str, RowResult] = {}
    ran_seconds: list[float] = []  # train + eval seconds of each row that ran in this call
    started = time.perf_counter()
    runnable = [p for p in plans if p.config is not None]
    for plan in plans:
        if plan.config is not None and not reusable(plan):
            left = estimate_left(plans, results, ran_seconds)
            console.print(progress_table(plans, results, plan.row.name, time.perf_counter() - started, left))
        result = run_row(plan, data, nproc_per_node=nproc_per_node, say=lambda m: console.print(m, markup=False))
        results[plan.row.name] = result
        if plan.config is None:
            continue
        if result.status in ("done", "failed"):
            ran_seconds.append(result.train_seconds + result.eval_seconds)
        spent = time.perf_counter() - started
        done = sum(1 for p in runnable if p.row.name in results)
        left = estimate_left(plans, results, ran_seconds)
        score = f"test Pr@0.5 {result.metrics['Pr@0.5']:.2f}" if result.metrics else result.error.splitlines()[0]
        console.print(
            f"[{done}/{len(runnable)}] {plan.row.name}: {result.status}, {score}; {spent / 60:.1f} min so far"
            + (f", about {left / 60:.0f} min left" if left else ""),
            markup=False,
        )
    baselines = {"blind pick": blind_pick_baseline(data), "prior box": prior_box_baseline(data)}
    table = build_table(plans, list(results.values()), baselines, official)
    title = f"Table II on {data.name}, {variant} variant"
    write_table(out, table, title)
    console.print(f"wrote {out / 'table.md'}, {out / 'table.json'} and {out / 'table.html'}", markup=False)
    failed = [r.name for r in results.values() if r.status == "failed"]
    if failed:
        console.print(f"failed rows (see their logs in {out / 'rows'}): {', '.join(failed)}", style="red", markup=False)
        raise typer.Exit(1)
