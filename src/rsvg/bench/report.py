"""Rich tables for ``rsvg bench model`` results (the JSON holds the same numbers and more)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def _x(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


NOISY_SPREAD = 1.5


def _noisy(result: dict[str, Any]) -> list[str]:
    """The measurements whose repeats disagree by more than :data:`NOISY_SPREAD`."""
    found = []
    for key, row in result["inference"].items():
        for path in ("plain", "optimised"):
            if row[path].get("spread", 1.0) > NOISY_SPREAD:
                found.append(f"{key} {path}")
    if result["training"] is not None:
        for path in ("plain", "optimised"):
            if result["training"][path].get("spread", 1.0) > NOISY_SPREAD:
                found.append(f"training {path}")
    return found


def render_model_bench(result: dict[str, Any], console: Console) -> None:
    """Print the timing table, the floor table and the machine table of a :func:`benchmark_model` result."""
    s = result["settings"]
    m = result["model"]
    title = (
        f"rsvg bench model — {m['backbone']} + {m['text_encoder']}, {m['image_size']}², Nt={m['max_tokens']}, "
        f"{s['device']}, {result['machine']['torch_threads']} threads, amp {s['amp']}"
        + (", compiled" if s["compile"] else "")
        + f", median of {s['repeats']}"
    )
    t = Table(title=title)
    t.add_column("measurement")
    t.add_column("plain", justify="right")
    t.add_column("optimised", justify="right")
    t.add_column("plain / optimised", justify="right")
    for row in result["inference"].values():
        n = row["batch"]
        if n == 1:
            label, field = "inference, batch 1 (s)", "seconds"
        else:
            label, field = f"inference, batch {n} (s/image)", "seconds_per_image"
        t.add_row(label, _f(row["plain"][field]), _f(row["optimised"][field]), _x(row["speedup"]))
    tr = result["training"]
    if tr is not None:
        p, o = tr["plain"], tr["optimised"]
        t.add_row(f"training step, batch {tr['batch']} (s)", _f(p["seconds"]), _f(o["seconds"]), _x(tr["speedup"]))
        t.add_row("  forward + backward (s)", _f(p["forward_backward_s"]), _f(o["forward_backward_s"]), "")
        t.add_row("  optimiser step (s)", _f(p["optimizer_s"]), _f(o["optimizer_s"]), o["optimizer"])
    tc = result.get("training_cached")
    if tc:
        t.add_row(f"training step over cached maps, batch {tc['batch']} (s)", "", _f(tc["fp32"]["seconds"]), "fp32")
        if "bf16" in tc:
            t.add_row("  same in bf16 (s)", "", _f(tc["bf16"]["seconds"]), _x(tc["speedup"]) + " fp32/bf16")
    mem = result["peak_rss_gib"]
    for phase_key, label in (("infer", "peak RSS, inference (GiB)"), ("train", "peak RSS, training (GiB)")):
        if f"{phase_key}_plain" in mem:
            t.add_row(label, _f(mem[f"{phase_key}_plain"], 2), _f(mem[f"{phase_key}_optimised"], 2), "")
    gpu = result.get("peak_gpu_gib") or {}
    for phase_key, label in (("infer", "peak GPU mem., inference (GiB)"), ("train", "peak GPU mem., training (GiB)")):
        if f"{phase_key}_plain" in gpu:
            t.add_row(label, _f(gpu[f"{phase_key}_plain"], 2), _f(gpu[f"{phase_key}_optimised"], 2), "")
    b16 = result.get("bf16")
    if b16:
        for key, row in b16.items():
            if not key.startswith("batch"):
                continue
            unit = "s" if key == "batch1" else "s/image"
            t.add_row(f"  same, optimised in bf16 ({unit})", "", _f(row["bf16"]), _x(row["speedup"]) + " fp32/bf16")
        tb = b16.get("train")
        if tb:
            t.add_row(
                f"  training step, batch {tb['batch']}, in bf16 (s)",
                "",
                _f(tb["seconds_bf16"]),
                _x(tb["speedup"]) + " fp32/bf16",
            )
            losses = f"{tb['first_loss_fp32']:.4g} / {tb['first_loss_bf16']:.4g}"
            t.add_row("  first-step loss, fp32 / bf16", "", losses, "")
        bc = b16["check"]
        verdict = "within" if bc["passed"] else "[red]BEYOND: no bf16 ratio[/red]"
        t.add_row(
            "max rel. box difference bf16 vs fp32", "", _f(bc["max_rel_diff_vs_fp32"]), f"{verdict} {bc['tolerance']:g}"
        )
    c = result["check"]
    verdict = "same boxes" if c["passed"] else "[red]DIFFERENT: no ratio[/red]"
    t.add_row("max rel. box difference (fp32)", "", _f(c["max_rel_diff"]), verdict)
    fl = result["flops"]
    t.add_row(
        "GFLOPs/image (text padded, trimmed)",
        _f(fl["per_image_gflops"], 2),
        _f(fl["per_image_trimmed_text_gflops"], 2),
        "",
    )
    parts = f"{fl['backbone_gflops']:.2f}, {fl['text_encoder_gflops']:.2f}"
    t.add_row("  backbone, text encoder (GFLOPs)", parts, parts, "")
    rates = result["images_per_s"]
    t.add_row("images/s: inference, training", "", f"{rates['inference']:.2f}, {_f(rates.get('training'), 2)}", "")
    d = result["data"]
    t.add_row(
        f"data loading, {d['workers']} workers (samples/s)",
        "",
        _f(d["samples_per_s"], 1),
        "keeps up" if d["keeps_up_with_training"] else "[yellow]slower than training[/yellow]",
    )
    if tr is not None:
        t.add_row("DIOR-RSVG epoch, projected (h)", "", _f(tr["projected_dior_rsvg_epoch_s"] / 3600, 2), "")
    console.print(t)
    noisy = _noisy(result)
    if noisy:
        console.print(
            f"[yellow]noisy: the slowest of the repeats is over {NOISY_SPREAD}× the fastest in {', '.join(noisy)} "
            f"(1-min load average {result['machine'].get('load_average_1min', '?')} on "
            f"{result['machine']['cores']} cores): other jobs share this machine; rerun on a quiet one[/yellow]"
        )

    ablation = result.get("ablation")
    if ablation:
        at = Table(title="each optimisation: the optimised path without it (cost > 1×: it pays)")
        at.add_column("left out")
        at.add_column("inference b1 (s)", justify="right")
        at.add_column("cost", justify="right")
        bkey = next(k for k in result["inference"] if k != "batch1")
        at.add_column(f"{bkey} (s/image)", justify="right")
        at.add_column("cost", justify="right")
        at.add_column("train step (s)", justify="right")
        at.add_column("cost", justify="right")
        for name, row in ablation.items():
            if "not_measured" in row:
                at.add_row(name, f"not measured: {row['not_measured']}", *[""] * 5)
                continue
            i, tr_ = row.get("inference") or {}, row.get("training") or {}
            at.add_row(
                name,
                _f(i.get("batch1_s")),
                _x(i.get("batch1_cost_of_leaving_out")),
                _f(i.get(f"{bkey}_s_per_image")),
                _x(i.get(f"{bkey}_cost_of_leaving_out")),
                _f(tr_.get("step_s")),
                _x(tr_.get("cost_of_leaving_out")),
            )
        console.print(at)

    f = result["floor"]
    ft = Table(title="floor on this machine", show_header=False)
    ft.add_row(f"fp32 matmul {f['matmul_n']}² (GFLOP/s)", _f(f["matmul_gflops"], 1))
    if "matmul_bf16_gflops" in f:
        ft.add_row(f"bf16 matmul {f['matmul_n']}² (GFLOP/s)", _f(f["matmul_bf16_gflops"], 1))
        ft.add_row("bf16 / fp32 matmul rate: the most bf16 can speed a step here", _x(f["bf16_matmul_ratio"]))
    ft.add_row("backbone alone, batch 1, default layout (s)", _f(f["backbone_default_s"]))
    ft.add_row("backbone alone, batch 1, channels-last (s)", _f(f["backbone_channels_last_s"]))
    ft.add_row("floor: all FLOPs at the matmul rate (s/image)", _f(f["matmul_floor_s"]))
    ft.add_row("floor: best backbone + rest at the matmul rate (s/image)", _f(f["floor_s"]))
    for key, value in f.items():
        if key.endswith("_vs_floor"):
            ft.add_row(f"floor / measured, {key.removesuffix('_vs_floor')} (1 = at the floor)", _f(value, 2))
        elif key.startswith("achieved_gflops_"):
            ft.add_row(f"achieved GFLOP/s, {key.removeprefix('achieved_gflops_')}", _f(value, 1))
    console.print(ft)

    render_projection(result.get("projection"), console)

    mt = Table(title="machine", show_header=False)
    for k, v in result["machine"].items():
        mt.add_row(k, _f(v))
    mt.add_row(
        "params (total / trainable, M)", f"{m['params']['total'] / 1e6:.2f} / {m['params']['trainable'] / 1e6:.2f}"
    )
    for note in s["notes"]:
        mt.add_row("note", note)
    console.print(mt)


def _span(pair: list[float], digits: int = 1) -> str:
    lo, hi = pair
    return f"{lo:.{digits}f}–{hi:.{digits}f}"


def render_projection(projection: dict[str, Any] | None, console: Console) -> None:
    """Print the GPU projection of :func:`rsvg.bench.projection.project_training` (marked as a projection)."""
    if not projection:
        return
    lo, hi = projection["utilisation"]
    pt = Table(
        title=(
            f"PROJECTION, not measured: DIOR-RSVG training ({projection['expressions']:,} expressions) at "
            f"{projection['training_gflops_per_image']:.0f} GFLOPs per training image (3× the forward), "
            f"{lo:.0%}–{hi:.0%} of each GPU's peak, DDP at {projection['ddp_efficiency']:.0%} per extra GPU"
        )
    )
    for col in ("GPU", "precision", "GPUs", "images/s", "epoch (min)", f"{projection['epochs']} epochs (h)"):
        pt.add_column(col, justify="left" if col == "GPU" else "right")
    workers = any("loader_workers" in r for r in projection["rows"])
    if workers:
        pt.add_column("loader workers", justify="right")
    for r in projection["rows"]:
        cells = [
            r["accelerator"],
            r["precision"],
            str(r["gpus"]),
            _span(r["images_per_s"], 0),
            _span(r["epoch_min"]),
            _span(r["run_h"]),
        ]
        if workers:
            cells.append(str(r.get("loader_workers", "–")))
        pt.add_row(*cells)
    console.print(pt)
    here = projection.get("this_machine")
    if here:
        console.print(
            f"this machine's training step: {here['training_gflops_per_s']:.1f} GFLOP/s by the same count, "
            f"{here['of_matmul_rate']:.0%} of its fp32 matmul rate"
        )
