"""``rsvg bench features``: the frozen backbone's feature cache, one batch size against another.

Training with a frozen backbone (the lite config) first computes every image's map once
(:func:`rsvg.engine.feature_cache.compute_image_features`). This measures that computation — the folded,
channels-last backbone on random images of the config's input size, no disk — at the batch size the cache now
uses (:func:`~rsvg.engine.feature_cache.backbone_batch_size`) and at a baseline batch size (the old choice, the
config's ``train.eval_batch_size``), in the same process, alternating, and reports the ratio.

With ``model.zoom`` it measures the second look's crops the same way: :func:`~rsvg.models.stages.zoom.crop_map` on
``images`` random crops of ``zoom_window × zoom_scale`` pixels, as many at once as it reads them now (a few on a
CPU) and all at once (the baseline: how validation and the test step encoded them before).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from rsvg.bench.machine import check_device
from rsvg.config import load_config
from rsvg.engine.feature_cache import backbone_batch_size
from rsvg.models.build import build_model
from rsvg.models.stages.zoom import CPU_CROPS_AT_ONCE, crop_map


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
    batches = {"cache": backbone_batch_size(dev, cfg.train.eval_batch_size), "baseline": baseline}
    best = {name: float("inf") for name in batches}

    def one_pass(step: int) -> float:
        t0 = time.perf_counter()
        for start in range(0, images, step):
            model.feature_map(backbone(x[start : start + step]), x[start : start + step])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        one_pass(min(images, 2))  # warm-up
        for _ in range(repeats):
            for name, step in batches.items():
                best[name] = min(best[name], one_pass(step))
    crops = _crop_timings(model, images, repeats, dev) if cfg.model.zoom else {}
    return {
        "config": str(config),
        "image_size": size,
        "images": images,
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "cache_batch": batches["cache"],
        "cache_ms_per_image": 1000 * best["cache"] / images,
        "baseline_batch": baseline,
        "baseline_ms_per_image": 1000 * best["baseline"] / images,
        "speedup": best["baseline"] / best["cache"],
        **crops,
    }


def _crop_timings(model: torch.nn.Module, crops: int, repeats: int, dev: torch.device) -> dict:
    """ms per crop of the second look's input, read as :func:`~rsvg.models.stages.zoom.crop_map` reads it now and all at
    once (the best of ``repeats`` alternating passes), by the backbone as inference holds it (BatchNorm folded,
    the default memory layout)."""
    cfg = model.cfg
    side = cfg.zoom_window * cfg.zoom_scale
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(crops, 3, side, side, generator=generator).to(dev)
    backbone = copy.deepcopy(model.backbone).eval().to(dev)
    backbone.fold_frozen_batchnorm()
    now = CPU_CROPS_AT_ONCE if dev.type == "cpu" else crops
    best = {"now": float("inf"), "all": float("inf")}

    def one_pass(at_once: int) -> float:
        t0 = time.perf_counter()
        crop_map(backbone, x, at_once)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        one_pass(now)  # warm-up
        for _ in range(repeats):
            best["now"] = min(best["now"], one_pass(now))
            best["all"] = min(best["all"], one_pass(crops))
    return {
        "crop_size": side,
        "crops": crops,
        "crops_at_once": now,
        "crop_ms": 1000 * best["now"] / crops,
        "crops_all_at_once_ms": 1000 * best["all"] / crops,
        "crop_speedup": best["all"] / best["now"],
    }
