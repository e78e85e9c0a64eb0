"""Mixed precision in training: which autocast a run uses and why, and the context that applies it.

Under bf16 autocast the convolutions, linear layers and matrix products run in bfloat16, while the weights, the
gradients the optimiser reads and its state stay fp32 (autocast casts a copy of each weight per use), and the loss
and box arithmetic run in fp32 (:func:`in_fp32` turns the forward's output to fp32 before the loss reads it).
``auto`` picks bf16 where the hardware computes it natively: a CUDA GPU that supports it, or a CPU that reports
native bf16 units (``amx_bf16`` or ``avx512_bf16``, :func:`rsvg.engine.precision.cpu_bf16_flags`); on such a CPU
the steps of a model whose backbone is frozen stay fp32, as measured (:func:`choose_amp`). Elsewhere bf16 would be
emulated, slower than fp32, so ``auto`` stays fp32 (``off``).
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from rsvg.engine.precision import cpu_bf16_flags

if TYPE_CHECKING:
    from rsvg.config import RunConfig

AMP_CHOICES = ("auto", "off", "bf16", "fp16")


class AmpChoice(NamedTuple):
    """What ``train.amp`` resolved to on this machine: the autocast of the training step and validation, that of
    the frozen encoders' features computed once before training, and why, in words the trainer prints."""

    step: str  # off | bf16 | fp16
    encoders: str  # off | bf16 | fp16
    reason: str


def choose_amp(
    amp: str, device: torch.device, *, trains_backbone: bool = True, cpuinfo: str | None = None
) -> AmpChoice:
    """Resolve ``train.amp`` for ``device``. ``trains_backbone``: whether the visual backbone trains (not
    ``model.freeze_backbone``); ``cpuinfo``: the text of ``/proc/cpuinfo`` (default: this machine's).

    ``auto`` on a CPU with native bf16 units computes the frozen encoders' features in bf16, where it is faster,
    and the steps in bf16 only when the backbone trains: there the large convolutions and matrix products make
    bf16 pay, while a frozen backbone's steps are small matrix products, layer norms and gathers that bf16 does
    not speed up on a CPU (``rsvg bench model`` and ``rsvg bench features`` time both; docs/benchmarks.md)."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"train.amp must be auto, off, bf16 or fp16, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("train.amp fp16 needs a CUDA device; use bf16 or off on the CPU")
    if amp != "auto":
        return AmpChoice(amp, amp, "train.amp asks for it")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return AmpChoice("bf16", "bf16", "auto: the GPU supports bf16")
        return AmpChoice("off", "off", "auto: the GPU has no bf16")
    if device.type != "cpu":
        return AmpChoice("off", "off", f"auto: no bf16 rule for {device.type}")
    flags = cpu_bf16_flags(cpuinfo)
    if not flags:
        return AmpChoice("off", "off", "auto: the CPU has no native bf16 units (no amx_bf16 or avx512_bf16)")
    has = f"auto: the CPU has {' and '.join(flags)}"
    if trains_backbone:
        return AmpChoice("bf16", "bf16", has)
    steps = "the steps in fp32 (faster with a frozen backbone)"
    return AmpChoice("off", "bf16", f"{has}: the frozen encoders' features in bf16, {steps}")


def choose_amp_for(cfg: RunConfig, device: torch.device) -> AmpChoice:
    """:func:`choose_amp` of a run config: its ``train.amp``, its backbone trained or frozen."""
    return choose_amp(cfg.train.amp, device, trains_backbone=not cfg.model.freeze_backbone)


def resolve_amp(amp: str, device: torch.device, *, cpuinfo: str | None = None) -> str:
    """The autocast of the steps of a model whose backbone trains (:func:`choose_amp`)."""
    return choose_amp(amp, device, cpuinfo=cpuinfo).step


def autocast_context(device: torch.device, amp: str) -> Any:
    """Autocast to ``amp`` (``bf16`` or ``fp16``) on ``device``; nothing for ``off``."""
    if amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if amp == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()


def in_fp32(value: Any) -> Any:
    """``value`` with every bf16 or fp16 tensor in it cast to fp32 (differentiably), through dicts, lists, tuples
    and dataclasses (a model's output and its stages' records): what the loss reads after an autocast forward."""
    if isinstance(value, Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, dict):
        return {k: in_fp32(v) for k, v in value.items()}
    if isinstance(value, list):
        return [in_fp32(v) for v in value]
    if isinstance(value, tuple):
        items = [in_fp32(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: in_fp32(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value
