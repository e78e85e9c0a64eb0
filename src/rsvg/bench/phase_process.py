"""Running one phase of ``rsvg bench model``, by default in a process of its own, so that its memory is its own.

A process's peak resident set size (and peak GPU memory) only grows, so phases run one after another in one
process would each report the largest peak so far. Run in a fresh spawned process, each phase's peak is that of
the Python interpreter, torch, the model and the phase's own work, which is what a user running only that
(inference alone, training alone, the loader) would see. ``--in-process`` runs them here instead: faster, but
each peak then includes the phases before it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

from rsvg.bench.data_phase import phase_data
from rsvg.bench.floor_phase import phase_floor
from rsvg.bench.model_settings import (
    ALL,
    BF16_PHASE,
    CACHED_PHASES,
    PHASES,
    TRAIN_BF16_PHASE,
    PhaseJob,
    keeps_freed_memory,
    phase_optimisations,
)
from rsvg.bench.timing_phases import phase_infer, phase_train
from rsvg.engine.allocator import allocator_state, keep_freed_memory


def run_phase_here(name: str, job: PhaseJob) -> dict[str, Any]:
    """Run one phase in this process (threads and allocator set first). In a process of its own the plain path
    runs with the system allocator; in-process, once a phase has kept freed memory every later phase does too
    (each phase records which it had)."""
    if job.settings.threads:
        torch.set_num_threads(job.settings.threads)
    if keeps_freed_memory(name):
        keep_freed_memory()
    t0 = time.perf_counter()
    if name == "floor":
        out = phase_floor(job)
    elif name == BF16_PHASE:
        out = phase_infer(job, ALL, amp="bf16")
    elif name == TRAIN_BF16_PHASE:
        out = phase_train(job, ALL, amp="bf16")
    elif name in CACHED_PHASES:
        out = phase_train(job, ALL, amp="bf16" if name == CACHED_PHASES[1] else "off", cached=True)
    elif name.startswith("infer_"):
        out = phase_infer(job, phase_optimisations(name))
    elif name.startswith("train_"):
        out = phase_train(job, phase_optimisations(name))
    elif name == "data":
        out = phase_data(job)
    else:
        raise ValueError(f"unknown phase {name!r}; phases: {PHASES}")
    out["threads"] = torch.get_num_threads()
    out["allocator_kept"] = allocator_state().kept
    out["pid"] = os.getpid()
    out["phase_s"] = time.perf_counter() - t0
    return out


def run_phase(name: str, job: PhaseJob) -> dict[str, Any]:
    """Run one phase, in a fresh spawned process when ``job.settings.isolate`` (its peak memory is its own)."""
    if not job.settings.isolate:
        return run_phase_here(name, job)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(run_phase_here, name, job).result()
