"""The timed phases of ``rsvg bench model``: inference and one training step, on one path of the model each.

``infer_*`` phases time batch 1 (latency) and the throughput batch (seconds per image), and keep the boxes of both
batches so that the summary can check every path against the plain one; ``train_*`` phases time one step as the
trainer runs it, split into forward+backward and the optimiser step. Each time is the median of ``repeats`` runs
after ``warmup`` untimed ones (the first call, which pays for lazy initialisation and compilation, is reported
apart), with the spread of the runs to show how quiet the machine was. Each phase also reports its resident
memory after building the model and its peak, which belong to the phase alone when it runs in its own process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from rsvg.bench.machine import GIB, median, peak_rss_bytes, rss_bytes, timed_runs
from rsvg.bench.model_inputs import (
    add_stage_inputs,
    exact_fp32,
    load_model,
    make_batch,
    make_samples,
    path_context,
    set_path,
    weights_digest,
)
from rsvg.bench.model_settings import ALL, PhaseJob
from rsvg.config import config_from_dict


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """``AdamW fused``, ``AdamW foreach`` or ``AdamW for-loop``: which implementation its step runs."""
    group = optimizer.param_groups[0]
    if group.get("fused"):
        kind = "fused"
    elif group.get("foreach") is not None:
        kind = "foreach" if group["foreach"] else "for-loop"
    else:  # torch's default: foreach when every tensor is on a GPU, else the per-parameter loop
        kind = "foreach" if all(p.is_cuda for g in optimizer.param_groups for p in g["params"]) else "for-loop"
    return f"{type(optimizer).__name__} {kind}"


def spread(times: list[float]) -> float:
    """Slowest over fastest run: near 1 on a quiet machine; well above it when other jobs share the cores."""
    return max(times) / max(min(times), 1e-12)


def _sync(device: str) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.startswith("cuda") else None


def _maybe_compile(model: Any, job: PhaseJob, opts: frozenset[str]) -> Any:
    return torch.compile(model) if opts == ALL and job.settings.compile else model


def phase_infer(job: PhaseJob, opts: frozenset[str], amp: str | None = None) -> dict[str, Any]:
    """Batch-1 latency and per-image time at ``job.batch``, and the boxes of both batches for the check: in exact
    fp32, or, for a phase timed under ``amp`` (the ``infer_bf16`` phase), in that precision."""
    amp = job.amp if amp is None else amp
    s = job.settings
    lm = load_model(job)
    model = lm.model.eval()
    out: dict[str, Any] = {"model_load_s": lm.seconds, "weights": weights_digest(model)}
    if "fold_bn" in opts:
        out["folded_norms"] = model.backbone.fold_frozen_batchnorm()
    out["text_attention"] = set_path(model, opts)
    out["model_rss_gib"] = rss_bytes() / GIB
    from rsvg.engine.batching import forward_batch

    net = _maybe_compile(model, job, opts)
    samples = make_samples(max(job.batch, 1), model.image_size, model.max_tokens, lm.tokenizer, s.seed)
    sync = _sync(s.device)
    for key, n in (("batch1", 1), (f"batch{job.batch}", job.batch)):
        batch = make_batch(samples[:n], opts, s.device)

        def run(batch: dict[str, Any] = batch) -> Any:
            with path_context(opts, amp, s.device, grad=False):
                return forward_batch(net, batch)

        first = time.perf_counter()
        run()
        if sync is not None:
            sync()
        first_s = time.perf_counter() - first
        times = timed_runs(run, s.repeats, max(s.warmup - 1, 0), sync)
        with exact_fp32(s.device), path_context(opts, "off" if amp == job.amp else amp, s.device, grad=False):
            boxes = forward_batch(net, batch).boxes.float().cpu()
        out[key] = {
            "batch": n,
            "seconds": median(times),
            "seconds_per_image": median(times) / n,
            "runs": times,
            "spread": spread(times),
            "first_call_s": first_s,
            "text_tokens": int(batch["input_ids"].shape[1]),
            "boxes": boxes.tolist(),
        }
    out["peak_rss_gib"] = peak_rss_bytes() / GIB
    if s.device.startswith("cuda"):
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / GIB
    return out


@torch.no_grad()
def cache_inputs(model: Any, samples: list[dict[str, Any]], cache_text: bool) -> None:
    """Replace each sample's image by its frozen backbone's map in float16 and encode its query once with the frozen
    text encoder, as :class:`~rsvg.engine.trainer.Trainer` does before training (in fp32: the step is what is
    timed)."""
    from rsvg.engine.feature_cache import folded_backbone

    backbone = folded_backbone(model)
    for sample in samples:
        image = sample.pop("image")
        sample["image_features"] = model.encode_image(image[None], backbone)[0].half().float()
    if cache_text and getattr(model.text, "frozen", False) and hasattr(model.text, "precompute"):
        model.text.cache_enabled = True
        queries = [s["input_ids"][: int(s["attention_mask"].sum())].tolist() for s in samples]
        model.text.precompute(queries)


def phase_train(job: PhaseJob, opts: frozenset[str], amp: str | None = None, cached: bool = False) -> dict[str, Any]:
    """One training step at ``job.train_batch`` as the trainer runs it (:func:`rsvg.engine.step.train_step`),
    split into forward+backward (with gradient clipping) and the optimiser step, under the run's autocast or,
    for the ``train_*bf16`` phases, ``amp``. ``cached``: the step over the frozen encoders' stored maps and
    queries at ``train.batch_size`` (:func:`cache_inputs`), as the trainer runs a config that caches them."""
    amp = job.amp if amp is None else amp
    from rsvg.engine.optim import build_optimizer
    from rsvg.engine.step import train_step

    s = job.settings
    run_cfg = config_from_dict(job.run)
    lm = load_model(job)
    model = lm.model.train()
    text_attention = set_path(model, opts)
    out: dict[str, Any] = {
        "text_attention": text_attention,
        "model_load_s": lm.seconds,
        "model_rss_gib": rss_bytes() / GIB,
    }
    fused = None if "fused_adamw" in opts else False  # None: fused wherever torch supports it
    optimizer = build_optimizer(model, run_cfg.train, model.pretrained_parameter_names(), fused=fused)
    out["optimizer"] = optimizer_kind(optimizer)
    scaler = torch.amp.GradScaler(torch.device(s.device).type, enabled=amp == "fp16")
    net = _maybe_compile(model, job, opts)
    n = run_cfg.train.batch_size if cached else job.train_batch
    samples = make_samples(n, model.image_size, model.max_tokens, lm.tokenizer, s.seed + 1)
    add_stage_inputs(samples, model, s.seed + 2)
    if cached:
        cache_inputs(model, samples, run_cfg.model.cache_text_features)
    batch = make_batch(samples, opts, s.device)
    sync = _sync(s.device)
    parts: list[tuple[float, float]] = []
    losses: list[float] = []  # the first is the loss of the model as built, the same weights in every phase

    def step() -> None:
        with path_context(opts, "off", s.device, grad=True):  # train_step applies the autocast itself
            result = train_step(
                net,
                model,
                batch,
                optimizer,
                scaler,
                run_cfg.loss,
                amp=amp,
                grad_clip=run_cfg.train.grad_clip,
                sync=sync,
            )
        parts.append((result.forward_backward_s, result.optimizer_s))
        losses.append(float(result.losses["loss"].detach()))

    first = time.perf_counter()
    step()
    first_s = time.perf_counter() - first
    times = timed_runs(step, s.repeats, max(s.warmup - 1, 0), sync)
    timed = parts[-s.repeats :]
    out.update(
        {
            "batch": n,
            "seconds": median(times),
            "seconds_per_image": median(times) / n,
            "forward_backward_s": median([a for a, _ in timed]),
            "optimizer_s": median([b for _, b in timed]),
            "runs": times,
            "spread": spread(times),
            "first_call_s": first_s,
            "text_tokens": int(batch["input_ids"].shape[1]),
            "first_loss": losses[0],
            "peak_rss_gib": peak_rss_bytes() / GIB,
        }
    )
    if s.device.startswith("cuda"):
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / GIB
    return out
