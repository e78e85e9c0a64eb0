"""Mixed precision: which autocast a run uses, and the context that applies it."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` → bf16 on CUDA devices that support it, else off (CPU bf16 is slow without AVX-512)."""
    if amp not in ("auto", "off", "bf16", "fp16"):
        raise ValueError(f"train.amp must be auto, off, bf16 or fp16, got {amp!r}")
    if amp == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("train.amp fp16 needs a CUDA device; use bf16 or off on the CPU")
    return amp


def autocast_context(device: torch.device, amp: str) -> Any:
    """Autocast to ``amp`` (``bf16`` or ``fp16``) on ``device``; nothing for ``off``."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if amp == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()
