"""The ``floor`` phase of ``rsvg bench model``: what this machine and this model set as the lower bound of a forward.

It measures the machine's fp32 matrix-product rate (and its bf16 rate where bf16 is timed) and the backbone alone
at the config's input size in both memory layouts, and counts the model's FLOPs per image (text padded to ``Nt``
and trimmed, the backbone and the text encoder alone) and its parameters. The summary turns these into the floor a
forward cannot beat here and into the share of the matmul rate each measured path reaches
(:mod:`rsvg.bench.floor`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rsvg.bench.model_inputs import load_model, make_batch, make_samples, set_path
from rsvg.bench.model_settings import NONE, PhaseJob, wants_bf16


def phase_floor(job: PhaseJob) -> dict[str, Any]:
    """Matmul rate, backbone alone in both layouts, FLOPs and parameter counts."""
    from torch.utils.flop_counter import FlopCounterMode

    from rsvg.bench.floor import backbone_seconds, matmul_gflops
    from rsvg.models.transformer import plain_attention

    s = job.settings
    lm = load_model(job)
    model = lm.model.eval()
    out: dict[str, Any] = {"matmul": matmul_gflops(s.matmul_n, repeats=max(s.repeats, 3), device=s.device)}
    if wants_bf16(s, job.amp):  # the ceiling of the bf16 phases' speed-ups
        out["matmul_bf16"] = matmul_gflops(s.matmul_n, repeats=max(s.repeats, 3), device=s.device, dtype=torch.bfloat16)
    for name, cl in (("default", False), ("channels_last", True)):
        out[f"backbone_{name}"] = backbone_seconds(
            model.backbone, model.image_size, channels_last=cl, repeats=s.repeats, warmup=s.warmup, device=s.device
        )
    model.backbone.to(memory_format=torch.contiguous_format)

    # FLOPs with every attention as explicit matrix products (the counter sees each one).
    set_path(model, NONE)
    sample = make_samples(1, model.image_size, model.max_tokens, lm.tokenizer, s.seed)
    padded = make_batch(sample, NONE, s.device)
    trimmed = make_batch(sample, frozenset({"trim_text"}), s.device)

    def count(fn: Callable[[], Any]) -> int:
        with torch.no_grad(), plain_attention(), FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())

    from rsvg.engine.batching import forward_batch

    flops = {
        "model": count(lambda: forward_batch(model, padded)),
        "model_trimmed_text": count(lambda: forward_batch(model, trimmed)),
        "backbone": count(lambda: model.backbone(padded["image"])),
        "text_encoder": count(lambda: model.text(padded["input_ids"], padded["attention_mask"])),
        "text_tokens_padded": int(padded["input_ids"].shape[1]),
        "text_tokens_trimmed": int(trimmed["input_ids"].shape[1]),
    }
    out["flops"] = flops

    def params(m: torch.nn.Module | None) -> int:
        return 0 if m is None else sum(p.numel() for p in m.parameters())

    out["params"] = {
        "total": params(model),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "backbone": params(model.backbone),
        "text_encoder": params(model.text),
    }
    out["model_load_s"] = lm.seconds
    return out
