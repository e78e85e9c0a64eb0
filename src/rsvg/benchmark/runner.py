"""Running a benchmark's rows one after the other, each as its own ``rsvg train`` and ``rsvg eval`` processes.

A row is reused when its folder holds a finished row of the same key (:mod:`rsvg.benchmark.plan`); a row
interrupted during training resumes from its run folder's last checkpoint (``rsvg train --resume``); a row whose key
changed starts again from an empty folder. A failed row is recorded with the tail of its log, and the next row runs.
Each row's state is ``ROW/row.json``, written whole (temporary file, then rename) after every change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsvg.benchmark.plan import RowPlan, rsvg_argv
from rsvg.data.xmlio import atomic_write_text

__all__ = ["RowResult", "reusable", "run_row"]

#: lines of a failed step's log kept in its result
LOG_TAIL = 30


@dataclass
class RowResult:
    """What happened to one row: ``status`` is ``done``, ``reused``, ``failed`` or ``skipped`` (no such variant)."""

    name: str
    status: str
    key: str = ""
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _state(plan: RowPlan) -> dict[str, Any]:
    try:
        return json.loads((plan.folder / "row.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _save(plan: RowPlan, result: RowResult) -> None:
    plan.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan.folder / "row.json", json.dumps(result.to_dict(), indent=2))


def _run_logged(command: list[str], log: Path) -> tuple[int, float]:
    """Run ``command`` with its output appended to ``log``; its exit code and wall seconds."""
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        # unbuffered and wide: the log follows the run line by line, one line per message
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode
    return code, time.perf_counter() - started


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return "\n".join(lines[-LOG_TAIL:])


def _finished(plan: RowPlan, state: dict[str, Any]) -> bool:
    finished = state.get("key") == plan.key and state.get("status") in ("done", "reused")
    return finished and (plan.eval_dir / "predictions.jsonl").is_file()


def reusable(plan: RowPlan) -> bool:
    """Whether the row's folder holds a finished row of the same key, with its test predictions."""
    return _finished(plan, _state(plan))


def run_row(
    plan: RowPlan,
    data: Path,
    *,
    nproc_per_node: int = 1,
    say: Callable[[str], None] = print,
) -> RowResult:
    """Run (or reuse, or resume) one row and return what happened; never raises for a failing row."""
    if plan.config is None:
        return RowResult(plan.row.name, "skipped", error=plan.row.lite_note)
    state = _state(plan)
    if _finished(plan, state):
        return RowResult(**{**state, "status": "reused"})
    resume = state.get("key") == plan.key and (plan.run_dir / "last").exists()
    if not resume and plan.folder.exists():  # another key, or nothing to resume: start from an empty folder
        shutil.rmtree(plan.folder)
    plan.folder.mkdir(parents=True, exist_ok=True)
    result = RowResult(plan.row.name, "running", plan.key, train_seconds=float(state.get("train_seconds", 0.0)))
    _save(plan, result)
    log = plan.folder / "train.log"
    say(f"{plan.row.name}: {'resuming' if resume else 'training'} ({plan.config}), log {log}")
    train = rsvg_argv([*plan.train_args(data), *(["--resume"] if resume else [])], nproc_per_node, sys.executable)
    code, seconds = _run_logged(train, log)
    result.train_seconds += seconds
    if code != 0:
        result.status, result.error = "failed", f"rsvg train exited with {code}:\n{_tail(log)}"
        _save(plan, result)
        return result
    log = plan.folder / "eval.log"
    if plan.eval_dir.exists():
        shutil.rmtree(plan.eval_dir)
    code, result.eval_seconds = _run_logged(rsvg_argv(plan.eval_args(data), python=sys.executable), log)
    metrics_file = plan.eval_dir / "metrics.json"
    if code != 0 or not metrics_file.is_file():
        result.status, result.error = "failed", f"rsvg eval exited with {code}:\n{_tail(log)}"
        _save(plan, result)
        return result
    report = json.loads(metrics_file.read_text())
    result.metrics = dict(report["overall"]["values"])
    result.samples = int(report["overall"]["count"])
    result.eval_seconds = float(report.get("seconds", result.eval_seconds))
    result.status = "done"
    _save(plan, result)
    return result
