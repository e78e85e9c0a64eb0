"""Collect what scripts/gpu_check.sh measured into OUT/summary.json and OUT/summary.md.

Reads OUT/status.tsv (each step's exit status and seconds), the bench JSONs (bench_{off,bf16}[_compiled].json),
the runs' history.json (training samples/s), the evaluation's metrics.json, and projects one DIOR-RSVG epoch
(26,991 training expressions) and the paper's 150 epochs from the measured training rate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DIOR_RSVG_TRAIN = 26_991
PAPER_EPOCHS = 150


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _bench_row(name: str, bench: dict[str, Any]) -> dict[str, Any]:
    inference = bench.get("inference", {})
    keys = sorted(inference, key=lambda k: int(k.removeprefix("batch")))
    row: dict[str, Any] = {"variant": name}
    for key in keys:
        opt = inference[key]["optimised"]
        row[f"{key}_ms_per_image"] = 1000 * opt.get("seconds_per_image", opt["seconds"] / inference[key]["batch"])
    training = bench.get("training")
    if training:
        row["train_batch"] = training["batch"]
        row["train_step_s"] = training["optimised"]["seconds"]
        row["train_samples_per_s"] = training["optimised_images_per_s"]
    gpu = bench.get("peak_gpu_gib") or {}
    if gpu:
        row["peak_gpu_gib"] = max(gpu.values())
    row["check_passed"] = bench.get("check", {}).get("passed")
    return row


def _train_rate(run: Path) -> float | None:
    history = _load(run / "history.json")
    if not history:
        return None
    rates = [h["samples_per_s"] for h in history if "samples_per_s" in h]
    return max(rates) if rates else None


def summarise(out: Path) -> dict[str, Any]:
    steps = []
    status = out / "status.tsv"
    if status.is_file():
        for line in status.read_text().splitlines():
            name, rc, seconds = line.split("\t")
            steps.append({"step": name, "exit": int(rc), "seconds": int(seconds)})
    benches = []
    for name in ("off", "off_compiled", "bf16", "bf16_compiled"):
        bench = _load(out / f"bench_{name}.json")
        if bench:
            benches.append(_bench_row(name, bench))
    machine = next((b["machine"] for n in ("off", "bf16") if (b := _load(out / f"bench_{n}.json"))), None)
    rates = {
        "paper_train": _train_rate(out / "run"),
        "paper_torchrun_1": _train_rate(out / "ddp1"),
        "paper_torchrun_2": _train_rate(out / "ddp2"),
        "lite_gpu": _train_rate(out / "lite_gpu"),
        "lite_cpu": _train_rate(out / "lite_cpu"),
    }
    projection = {}
    best = rates["paper_train"]
    if best:
        epoch = DIOR_RSVG_TRAIN / best
        projection = {
            "samples_per_s": best,
            "dior_rsvg_epoch_min": epoch / 60,
            "paper_150_epochs_h": epoch * PAPER_EPOCHS / 3600,
            "note": "training steps only, from the paper config's measured rate (no validation)",
        }
    metrics = _load(out / "eval" / "metrics.json")
    ratio = rates["lite_gpu"] / rates["lite_cpu"] if rates["lite_gpu"] and rates["lite_cpu"] else None
    return {
        "steps": steps,
        "failed": [s["step"] for s in steps if s["exit"] != 0],
        "machine": machine,
        "bench": benches,
        "training_samples_per_s": rates,
        "lite_gpu_over_cpu": ratio,
        "projection": projection,
        "eval_overall": (metrics or {}).get("overall"),
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "—" if v is None else str(v)


def markdown(s: dict[str, Any]) -> str:
    lines = ["# GPU check", ""]
    if s["machine"]:
        lines += [f"Machine: `{json.dumps(s['machine'])[:400]}`", ""]
    lines += ["| step | exit | seconds |", "|---|---:|---:|"]
    lines += [f"| {x['step']} | {x['exit']} | {x['seconds']} |" for x in s["steps"]]
    lines += ["", f"Failed steps: {', '.join(s['failed']) or 'none'}", ""]
    if s["bench"]:
        cols = sorted({k for row in s["bench"] for k in row} - {"variant"})
        lines += ["## rsvg bench model (paper config, random weights)", ""]
        lines += ["| variant | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        lines += [f"| {r['variant']} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in s["bench"]]
        lines.append("")
    lines += ["## Training throughput (samples/s)", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in s["training_samples_per_s"].items()]
    lines += [f"- lite config, GPU over this machine's CPU: {_fmt(s['lite_gpu_over_cpu'])}", ""]
    if s["projection"]:
        p = s["projection"]
        lines += [
            f"Projection ({p['note']}): one DIOR-RSVG epoch {p['dior_rsvg_epoch_min']:.1f} min, "
            f"150 epochs {p['paper_150_epochs_h']:.1f} h at {p['samples_per_s']:.1f} samples/s.",
            "",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "gpu_check_out")
    summary = summarise(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
