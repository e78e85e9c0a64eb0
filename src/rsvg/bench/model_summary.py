"""The report of ``rsvg bench model``: the phases' raw results turned into checks, ratios, floors and projections.

A speed ratio between two paths means something only if both computed the same thing, so the check comes first:
the plain and the optimised path (and every ablated path) must have measured the same weights and given the same
boxes within :data:`RELATIVE_TOLERANCE`, or every ratio is withheld (``None``). Then each section of the report
is built from the phases that measured it: inference and training times side by side with their ratios, the
floor this machine sets and how close each path comes to it, each optimisation's cost when left out, bf16 beside
fp32, the loader against the training step, and a projection of a DIOR-RSVG training run from the measured FLOPs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch

from rsvg.bench.floor import floor_estimates
from rsvg.bench.machine import machine_info
from rsvg.bench.model_settings import (
    BF16_PHASE,
    BF16_TOLERANCE,
    OPTIMISATIONS,
    TRAIN_BF16_PHASE,
    BenchSettings,
    PhaseJob,
)
from rsvg.bench.projection import project_training
from rsvg.config import RunConfig

if TYPE_CHECKING:
    from rsvg.models.config import ModelConfig

DIOR_RSVG_TRAIN_EXPRESSIONS = 26_991
RELATIVE_TOLERANCE = 1e-4


def compare_boxes(plain: list, optimised: list) -> dict[str, float]:
    """Largest absolute difference of two box sets and that difference relative to the largest coordinate."""
    a = torch.tensor(plain, dtype=torch.float64)
    b = torch.tensor(optimised, dtype=torch.float64)
    diff = float((a - b).abs().max())
    scale = float(a.abs().max().clamp(min=1e-12))
    return {"max_abs_diff": diff, "max_rel_diff": diff / scale}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def box_difference(plain: dict[str, Any], other: dict[str, Any], bkey: str) -> float:
    """The larger of the batch-1 and batch-``B`` relative box differences of two inference phases."""
    return max(compare_boxes(plain[k]["boxes"], other[k]["boxes"])["max_rel_diff"] for k in ("batch1", bkey))


def bf16_summary(raw: dict[str, dict[str, Any]], bkey: str) -> dict[str, Any]:
    """bf16 beside fp32 on the optimised path: each batch's time, ``fp32 / bf16`` (above 1: bf16 is faster),
    and how far bf16's boxes are from fp32's; the ratios are withheld when that exceeds :data:`BF16_TOLERANCE`.
    With the training phases, also the training step's times and ratio, and the loss of the first step (the same
    weights and batch) in both, for the reader to see they compute the same thing."""
    fp32, bf16 = raw["infer_optimised"], raw[BF16_PHASE]
    diff = box_difference(fp32, bf16, bkey)
    passed = diff <= BF16_TOLERANCE
    out: dict[str, Any] = {
        "check": {"max_rel_diff_vs_fp32": diff, "tolerance": BF16_TOLERANCE, "passed": passed},
        "peak_rss_gib": bf16.get("peak_rss_gib"),
    }
    for key in ("batch1", bkey):
        field = "seconds" if key == "batch1" else "seconds_per_image"
        out[key] = {
            "fp32": fp32[key][field],
            "bf16": bf16[key][field],
            "spread": bf16[key]["spread"],
            "speedup": _ratio(fp32[key][field], bf16[key][field]) if passed else None,
        }
    if TRAIN_BF16_PHASE in raw and "train_optimised" in raw:
        t32, t16 = raw["train_optimised"], raw[TRAIN_BF16_PHASE]
        out["train"] = {
            "batch": t16["batch"],
            **{f"{k}_fp32": t32[k] for k in ("seconds", "forward_backward_s", "optimizer_s")},
            **{f"{k}_bf16": t16[k] for k in ("seconds", "forward_backward_s", "optimizer_s")},
            "spread": t16["spread"],
            "speedup": _ratio(t32["seconds"], t16["seconds"]),
            "first_loss_fp32": t32["first_loss"],
            "first_loss_bf16": t16["first_loss"],
            "peak_rss_gib": t16.get("peak_rss_gib"),
        }
    return out


def cached_summary(raw: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The training step over cached maps (``train_cached``), and in bf16 beside it with ``fp32 / bf16`` when
    measured; ``None`` when the config does not train over cached maps."""
    if "train_cached" not in raw:
        return None
    keys = ("seconds", "seconds_per_image", "forward_backward_s", "optimizer_s", "spread", "first_loss")
    fp32 = raw["train_cached"]
    out: dict[str, Any] = {"batch": fp32["batch"], "fp32": {k: fp32[k] for k in keys}}
    if "train_cached_bf16" in raw:
        bf16 = raw["train_cached_bf16"]
        out["bf16"] = {k: bf16[k] for k in keys}
        out["speedup"] = _ratio(fp32["seconds"], bf16["seconds"])
    return out


def ablation_summary(raw: dict[str, dict[str, Any]], bkey: str, ok: bool) -> dict[str, Any]:
    """Per optimisation: the optimised path's times without it, and ``without / optimised`` (above 1: it pays).

    Each ablated inference path is checked against the plain path's boxes, like the optimised one; the costs are
    withheld (``None``) unless the run's check passed (``ok``, which covers the ablated paths).
    """
    out: dict[str, Any] = {}
    opt_i, plain_i = raw["infer_optimised"], raw["infer_plain"]

    def cost(without: float, optimised: float) -> float | None:
        return _ratio(without, optimised) if ok else None

    for name in OPTIMISATIONS:
        row: dict[str, Any] = {"what": OPTIMISATIONS[name]}
        infer = raw.get(f"infer_without_{name}")
        train = raw.get(f"train_without_{name}")
        if name == "keep_freed_memory" and any((p or {}).get("allocator_kept") for p in (infer, train)):
            # run in-process after a phase that kept freed memory: the allocator cannot be set back
            row["not_measured"] = "in-process, after a phase that kept freed memory"
            infer = train = None
        if infer is not None:
            row["inference"] = {
                "batch1_s": infer["batch1"]["seconds"],
                f"{bkey}_s_per_image": infer[bkey]["seconds_per_image"],
                "batch1_cost_of_leaving_out": cost(infer["batch1"]["seconds"], opt_i["batch1"]["seconds"]),
                f"{bkey}_cost_of_leaving_out": cost(infer[bkey]["seconds_per_image"], opt_i[bkey]["seconds_per_image"]),
                "max_rel_diff_vs_plain": box_difference(plain_i, infer, bkey),
                "peak_rss_gib": infer["peak_rss_gib"],
            }
        if train is not None and "train_optimised" in raw:
            row["training"] = {
                "step_s": train["seconds"],
                "optimizer_s": train["optimizer_s"],
                "cost_of_leaving_out": cost(train["seconds"], raw["train_optimised"]["seconds"]),
                "peak_rss_gib": train["peak_rss_gib"],
            }
        if len(row) > 1:
            out[name] = row
    return out


def check_summary(raw: dict[str, dict[str, Any]], bkey: str) -> dict[str, Any]:
    """Whether every inference path measured the plain path's weights and gave its boxes within
    :data:`RELATIVE_TOLERANCE`, at batch 1 and at batch ``B``; ``passed`` decides whether any ratio is reported."""
    plain, opt = raw["infer_plain"], raw["infer_optimised"]
    check = {"tolerance": RELATIVE_TOLERANCE, "same_weights": plain["weights"] == opt["weights"]}
    for key in ("batch1", bkey):
        check[key] = compare_boxes(plain[key]["boxes"], opt[key]["boxes"])
    check["max_rel_diff"] = max(check[k]["max_rel_diff"] for k in ("batch1", bkey))
    # every ablated inference path (--ablate) must give the plain path's boxes too, or no ratio is reported
    ablated = {n: p for n, p in raw.items() if n.startswith("infer_without_")}
    if ablated:
        check["ablated_max_rel_diff"] = max(box_difference(plain, p, bkey) for p in ablated.values())
    worst = max(check["max_rel_diff"], check.get("ablated_max_rel_diff", 0.0))
    same_weights = all(p["weights"] == plain["weights"] for p in (opt, *ablated.values()))
    check["same_weights"] = same_weights
    check["passed"] = bool(same_weights and worst < RELATIVE_TOLERANCE)
    return check


def _without_boxes(phase: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in phase.items() if k != "boxes"}


def inference_summary(plain: dict[str, Any], opt: dict[str, Any], bkey: str, ok: bool) -> dict[str, Any]:
    """Per batch: both paths' times and ``plain / optimised`` (above 1: the optimised path is faster), the ratio
    withheld unless the check passed (``ok``)."""
    inference = {}
    for key in ("batch1", bkey):
        p, o = _without_boxes(plain[key]), _without_boxes(opt[key])
        inference[key] = {
            "batch": p["batch"],
            "plain": p,
            "optimised": o,
            "speedup": _ratio(p["seconds"], o["seconds"]) if ok else None,
        }
    return inference


def training_summary(raw: dict[str, dict[str, Any]], job: PhaseJob, ok: bool) -> dict[str, Any] | None:
    """Both paths' training steps, ``plain / optimised``, and what the optimised step means for an epoch of
    DIOR-RSVG on this machine; ``None`` when training was not measured (``--skip-train``)."""
    if "train_optimised" not in raw:
        return None
    tp, to = raw["train_plain"], raw["train_optimised"]
    return {
        "batch": job.train_batch,
        "plain": tp,
        "optimised": to,
        "speedup": _ratio(tp["seconds"], to["seconds"]) if ok else None,
        "optimised_images_per_s": job.train_batch / to["seconds"],
        "projected_dior_rsvg_epoch_s": DIOR_RSVG_TRAIN_EXPRESSIONS * to["seconds"] / job.train_batch,
    }


def floor_summary(floor_raw: dict[str, Any], inference: dict[str, Any], bkey: str) -> dict[str, Any]:
    """The floor this machine sets for a forward (:func:`rsvg.bench.floor.floor_estimates`), how close the
    optimised path comes to it (1 = at the floor), and the GFLOP/s the optimised path reaches."""
    flops = floor_raw["flops"]
    best_backbone = min(floor_raw["backbone_default"]["seconds"], floor_raw["backbone_channels_last"]["seconds"])
    est = floor_estimates(flops["model"], flops["backbone"], floor_raw["matmul"]["gflops"], best_backbone)
    b1 = inference["batch1"]["optimised"]["seconds"]
    bn = inference[bkey]["optimised"]["seconds_per_image"]
    out = {
        "matmul_n": floor_raw["matmul"]["n"],
        "matmul_gflops": floor_raw["matmul"]["gflops"],
        "backbone_default_s": floor_raw["backbone_default"]["seconds"],
        "backbone_channels_last_s": floor_raw["backbone_channels_last"]["seconds"],
        **est,
        "batch1_vs_floor": _ratio(est["floor_s"], b1),
        f"{bkey}_vs_floor": _ratio(est["floor_s"], bn),
        "batch1_vs_matmul_floor": _ratio(est["matmul_floor_s"], b1),
        "achieved_gflops_batch1": flops["model_trimmed_text"] / b1 / 1e9,
        f"achieved_gflops_{bkey}": flops["model_trimmed_text"] / bn / 1e9,
    }
    bf16 = floor_raw.get("matmul_bf16")
    if bf16:  # bf16 over fp32 matmul rate: no step runs faster than this in bf16 here
        out["matmul_bf16_gflops"] = bf16["gflops"]
        out["bf16_matmul_ratio"] = _ratio(floor_raw["matmul"]["seconds"], bf16["seconds"])
    return out


def projection_summary(
    floor_raw: dict[str, Any], data: dict[str, Any], training: dict[str, Any] | None, job: PhaseJob
) -> dict[str, Any]:
    """A DIOR-RSVG training run projected from the measured FLOPs and loader rate
    (:func:`rsvg.bench.projection.project_training`), and, when training was measured, the share of this
    machine's matmul rate its step reaches under the same FLOP model."""
    flops = floor_raw["flops"]
    projection = project_training(
        flops["model_trimmed_text"] / 1e9,
        expressions=DIOR_RSVG_TRAIN_EXPRESSIONS,
        loader_samples_per_s_per_worker=data["samples_per_s"] / max(job.workers, 1),
    )
    if training is not None:
        # the same FLOP model on this machine: what share of its matmul rate the measured training step reaches
        achieved = job.train_batch * projection["training_gflops_per_image"] / training["optimised"]["seconds"]
        projection["this_machine"] = {
            "training_gflops_per_s": achieved,
            "of_matmul_rate": achieved / floor_raw["matmul"]["gflops"],
        }
    return projection


def settings_summary(settings: BenchSettings, job: PhaseJob, notes: list[str]) -> dict[str, Any]:
    """The settings as given, with the device-dependent values the run resolved and the notes on the model."""
    return {
        **{k: v for k, v in asdict(settings).items() if k != "isolate"},
        "isolated_phases": settings.isolate,
        "batch": job.batch,
        "train_batch": job.train_batch,
        "amp": job.amp,
        "workers": job.workers,
        "notes": notes,
    }


def model_summary(m: ModelConfig, params: dict[str, int]) -> dict[str, Any]:
    """The model measured: its backbone, text encoder, sizes and parameter counts."""
    return {
        "backbone": m.backbone,
        "text_encoder": m.text_encoder,
        "image_size": m.image_size,
        "max_tokens": m.max_tokens,
        "arch": m.arch,
        "hidden_dim": getattr(m, "hidden_dim", None),
        "params": params,
    }


def flops_summary(flops: dict[str, int]) -> dict[str, Any]:
    """FLOPs per image in GFLOPs (text padded and trimmed, backbone and text encoder alone) and the token counts."""
    return {
        "per_image_gflops": flops["model"] / 1e9,
        "per_image_trimmed_text_gflops": flops["model_trimmed_text"] / 1e9,
        "backbone_gflops": flops["backbone"] / 1e9,
        "text_encoder_gflops": flops["text_encoder"] / 1e9,
        "text_tokens_padded": flops["text_tokens_padded"],
        "text_tokens_trimmed": flops["text_tokens_trimmed"],
    }


def paths_summary(plain: dict[str, Any], opt: dict[str, Any], compiled: bool) -> dict[str, Any]:
    """What the plain and the optimised path each ran, as the report prints it."""
    return {
        "plain": {
            "text": "padded to max_tokens",
            "layout": "default (NCHW)",
            "attention": "explicit softmax",
            "text_encoder_attention": plain["text_attention"],
            "grad_mode": "no_grad (inference)",
            "compiled": False,
        },
        "optimised": {
            "text": "trimmed to the longest query of the batch",
            "layout": "channels-last backbone and input",
            "attention": "scaled_dot_product_attention",
            "text_encoder_attention": opt["text_attention"],
            "grad_mode": "inference_mode (inference)",
            "compiled": compiled,
        },
    }


def summarise(
    raw: dict[str, dict[str, Any]], settings: BenchSettings, cfg: RunConfig, job: PhaseJob, notes: list[str]
) -> dict[str, Any]:
    """Turn the phases' raw results into the report: check, ratios, floor, memory, projections."""
    floor_raw = raw["floor"]
    plain, opt = raw["infer_plain"], raw["infer_optimised"]
    bkey = f"batch{job.batch}"
    check = check_summary(raw, bkey)
    ok = check["passed"]
    inference = inference_summary(plain, opt, bkey, ok)
    training = training_summary(raw, job, ok)
    floor = floor_summary(floor_raw, inference, bkey)
    ablation = ablation_summary(raw, bkey, ok) if settings.ablate else None
    bf16 = bf16_summary(raw, bkey) if BF16_PHASE in raw else None
    data = raw["data"]
    projection = projection_summary(floor_raw, data, training, job)
    memory = {name: raw[name]["peak_rss_gib"] for name in raw if "peak_rss_gib" in raw[name]}
    gpu_memory = {name: raw[name]["peak_gpu_gib"] for name in raw if "peak_gpu_gib" in raw[name]}
    rates = {"inference": job.batch / inference[bkey]["optimised"]["seconds"]}
    if training is not None:
        rates["training"] = training["optimised_images_per_s"]
    return {
        "benchmark": "rsvg bench model",
        "machine": machine_info(),
        "settings": settings_summary(settings, job, notes),
        "model": model_summary(cfg.model, floor_raw["params"]),
        "flops": flops_summary(floor_raw["flops"]),
        "paths": paths_summary(plain, opt, settings.compile),
        "check": check,
        "inference": inference,
        "training": training,
        "training_cached": cached_summary(raw),
        "ablation": ablation,
        "bf16": bf16,
        "images_per_s": rates,
        "data": {
            **data,
            "keeps_up_with_training": training is None or data["samples_per_s"] >= rates["training"],
        },
        "floor": floor,
        "projection": projection,
        "peak_rss_gib": memory,
        "peak_gpu_gib": gpu_memory or None,
    }
