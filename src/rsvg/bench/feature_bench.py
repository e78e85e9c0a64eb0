"""``rsvg bench features``: the frozen backbone's feature cache, one batch size against another.

Training with a frozen backbone (the lite config) first computes every image's map once
(:func:`rsvg.engine.feature_cache.compute_image_features`). This measures that computation — the folded,
channels-last backbone on random images of the config's input size, no disk — at the batch size the cache now
uses (:func:`~rsvg.engine.feature_cache.backbone_batch_size`) and at a baseline batch size (the old choice, the
config's ``train.eval_batch_size``), in the same process, alternating, and reports the ratio. Where the device has
native bf16 units (what ``train.amp: auto`` computes the cache in, :func:`rsvg.engine.amp.choose_amp`), the cache's
batch is also timed under bf16 autocast in the same passes, with ``fp32 / bf16`` and how far its maps are from
fp32's (relative norm of the difference).

A model's stages add what they read besides the cached maps, each measured by the stage itself
(:meth:`~rsvg.models.stages.base.Stage.feature_timings`): the second look's crops, as many at once as it reads them
now and all at once.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from rsvg.bench.machine import check_device
from rsvg.config import load_config
from rsvg.engine.amp import autocast_context
from rsvg.engine.feature_cache import backbone_batch_size
from rsvg.engine.precision import resolve_precision
from rsvg.models.build import build_model


def benchmark_features(
    config: str | Path,
    images: int = 64,
    baseline_batch: int | None = None,
    threads: int | None = None,
    repeats: int = 3,
    device: str = "cpu",
    overrides: list[str] | None = None,
) -> dict:
    """Milliseconds per image of the cached backbone maps at the cache's batch size and at ``baseline_batch``
    (default: the config's ``train.eval_batch_size``); the best of ``repeats`` alternating passes over the same
    ``images`` random images each. ``overrides`` are ``key=value`` settings applied to the config."""
    if images < 1 or repeats < 1:
        raise ValueError("images and repeats must be at least 1")
    check_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    cfg = load_config(config, overrides)
    dev = torch.device(device)
    model = build_model(cfg.model, load_pretrained=False).eval()
    backbone = copy.deepcopy(model.backbone).eval()
    backbone.fold_frozen_batchnorm()
    backbone.to(dev, memory_format=torch.channels_last)
    size = cfg.model.image_size
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(images, 3, size, size, generator=generator).to(dev).contiguous(memory_format=torch.channels_last)
    baseline = baseline_batch or cfg.train.eval_batch_size
    cache_batch = backbone_batch_size(dev, cfg.train.eval_batch_size)
    runs = {"cache": (cache_batch, "off"), "baseline": (baseline, "off")}
    bf16 = resolve_precision("auto", dev).name == "bf16"
    if bf16:
        runs["cache_bf16"] = (cache_batch, "bf16")
    best = {name: float("inf") for name in runs}

    def one_pass(step: int, amp: str = "off") -> float:
        t0 = time.perf_counter()
        for start in range(0, images, step):
            with autocast_context(dev, amp):
                model.encode_image(x[start : start + step], backbone)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        one_pass(min(images, 2))  # warm-up
        if bf16:
            one_pass(min(images, 2), "bf16")
        for _ in range(repeats):
            for name, (step, amp) in runs.items():
                best[name] = min(best[name], one_pass(step, amp))
        extra: dict = {}
        if bf16:
            few = x[: min(images, 8)]
            exact = torch.cat([model.encode_image(few[i : i + 1], backbone) for i in range(len(few))]).float()
            with autocast_context(dev, "bf16"):
                half = torch.cat([model.encode_image(few[i : i + 1], backbone) for i in range(len(few))]).float()
            extra = {
                "cache_bf16_ms_per_image": 1000 * best["cache_bf16"] / images,
                "bf16_speedup": best["cache"] / best["cache_bf16"],
                "bf16_rel_diff": float((half - exact).norm() / exact.norm().clamp(min=1e-12)),
            }
    # what the stages read besides the cached maps, measured by each stage itself (the second look's crops)
    crops: dict = {}
    for stage in model.stage_list():
        crops.update(stage.feature_timings(model, images, repeats, dev))
    return {
        "config": str(config),
        "image_size": size,
        "images": images,
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "cache_batch": cache_batch,
        "cache_ms_per_image": 1000 * best["cache"] / images,
        "baseline_batch": baseline,
        "baseline_ms_per_image": 1000 * best["baseline"] / images,
        "speedup": best["baseline"] / best["cache"],
        **extra,
        **crops,
    }
