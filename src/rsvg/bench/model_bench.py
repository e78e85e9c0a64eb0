"""``rsvg bench model``: the grounding model's speed, memory and FLOPs, plain and optimised, in one run.

What one run measures (every time is the median of ``repeats`` runs after ``warmup`` untimed ones):

- **floor** — a 2048² fp32 matrix product (GFLOP/s) and the backbone alone at the config's input size
  (batch 1, default layout and channels-last); FLOPs per image (``FlopCounterMode`` on one batch-1 forward,
  text padded to ``Nt``, and the backbone and text encoder alone); parameter counts.
- **inference** — seconds at batch 1 and seconds per image at batch ``batch`` (8 on the CPU), for two paths
  over the same weights:

  * *plain*: text padded to ``Nt``, default memory layout, explicit-softmax attention (our transformer under
    :func:`rsvg.models.transformer.plain_attention`, the text encoder's ``eager`` attention), ``torch.no_grad``;
  * *optimised*: channels-last backbone and input, fused ``scaled_dot_product_attention``, text trimmed to the
    longest query of the batch (:func:`rsvg.engine.batching.collate`), ``torch.inference_mode``, optionally
    ``torch.compile`` and autocast (bf16 on CUDA).

  Both give their boxes in fp32; the speed ratio is reported only when they agree (relative difference below
  1e-4).
- **training** — one step at batch ``train_batch`` (2 on the CPU): forward, loss, backward, gradient clipping,
  AdamW step, as :class:`rsvg.engine.trainer.Trainer` does it, for both paths.
- **bf16** — where the CPU or GPU has native bf16 units (``--bf16``): the optimised inference path and training
  step again under bf16 autocast, beside fp32 in the same run, with ``fp32 / bf16``; bf16's boxes are checked
  against fp32's.
- **training over cached maps** — for a config whose backbone is frozen and whose maps the trainer caches (the
  lite configs): the step as the trainer then runs it, over the frozen encoders' stored maps and queries at
  ``train.batch_size``, optimised, in fp32 and (with bf16) in bf16: what ``train.amp: auto`` decides by.
- **data** — samples/s of the training input pipeline (decode, letterbox, normalise, tokenise, collate) over
  synthetic 800×800 JPEGs, with the config's loader worker count.
- **memory** — each of these phases runs in its own spawned process, so each peak resident set size (and
  peak GPU memory on CUDA) belongs to that phase alone: the Python interpreter, torch, the model and the
  phase's work.

All phases call the model's own forward (:func:`rsvg.engine.batching.forward_batch`), the code training and
inference run.

Where each part lives: the settings and phase names in :mod:`rsvg.bench.model_settings`; the model, its synthetic
inputs and the switches between paths in :mod:`rsvg.bench.model_inputs`; the phases in
:mod:`rsvg.bench.floor_phase`, :mod:`rsvg.bench.timing_phases` and :mod:`rsvg.bench.data_phase`; running a phase
in its own process in :mod:`rsvg.bench.phase_process`; the check, ratios and projections in
:mod:`rsvg.bench.model_summary`. This module runs them in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from rsvg.bench.machine import check_device, load_average
from rsvg.bench.model_settings import (
    BF16_PHASE,
    CACHED_PHASES,
    INFERENCE_OPTIMISATIONS,
    PHASES,
    TRAIN_BF16_PHASE,
    TRAINING_OPTIMISATIONS,
    BenchSettings,
    PhaseJob,
    resolve_run_config,
    resolve_settings,
    wants_bf16,
)
from rsvg.bench.model_summary import summarise
from rsvg.bench.phase_process import run_phase
from rsvg.engine.feature_cache import caches_backbone_maps
from rsvg.errors import BenchError


def plan_phases(settings: BenchSettings, amp: str, cached: bool = False) -> list[str]:
    """The phases one run measures, in order: :data:`~rsvg.bench.model_settings.PHASES`, each ablated path with
    ``--ablate``, no training with ``--skip-train``, and bf16 inference and training each right after the
    optimised fp32 one where :func:`~rsvg.bench.model_settings.wants_bf16`; for a config that trains over cached
    maps (``cached``), that step too, in fp32 and (with bf16) in bf16."""
    phases = list(PHASES)
    if settings.ablate:
        phases += [f"infer_without_{o}" for o in INFERENCE_OPTIMISATIONS]
        phases += [f"train_without_{o}" for o in TRAINING_OPTIMISATIONS]
    phases = [p for p in phases if not (settings.skip_train and p.startswith("train"))]
    if wants_bf16(settings, amp):
        phases.insert(phases.index("infer_optimised") + 1, BF16_PHASE)
        if "train_optimised" in phases:
            phases.insert(phases.index("train_optimised") + 1, TRAIN_BF16_PHASE)
    if cached and not settings.skip_train:
        at = phases.index("data")
        phases[at:at] = list(CACHED_PHASES if wants_bf16(settings, amp) else CACHED_PHASES[:1])
    return phases


def benchmark_model(settings: BenchSettings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every phase and return the results as a JSON-ready dict (see the module docstring)."""
    say = progress or (lambda _msg: None)
    check_device(settings.device)
    if settings.repeats < 1 or settings.warmup < 0:
        raise BenchError("repeats must be at least 1 and warmup at least 0")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    cfg, notes = resolve_run_config(settings)
    batch, train_batch, amp, workers = resolve_settings(settings, cfg)
    job = PhaseJob(settings, cfg.to_dict(), batch, train_batch, amp, workers)
    phases = plan_phases(settings, amp, cached=caches_backbone_maps(cfg))
    raw: dict[str, dict[str, Any]] = {}
    load_at_start = load_average()
    t_start = time.perf_counter()
    for i, name in enumerate(phases, 1):
        say(f"[{i}/{len(phases)}] {name} ...")
        raw[name] = run_phase(name, job)
        say(f"[{i}/{len(phases)}] {name} done in {raw[name]['phase_s']:.1f} s")
    result = summarise(raw, settings, cfg, job, notes)
    result["total_s"] = time.perf_counter() - t_start
    result["phase_seconds"] = {name: out["phase_s"] for name, out in raw.items()}
    result["machine"]["load_average_1min_at_start"] = load_at_start
    return result
