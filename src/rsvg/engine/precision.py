"""Inference precision: fp32, or bf16 autocast where the hardware has native bf16 matrix units.

Under bf16 autocast the convolutions, linear layers and attention products run in bfloat16; the box arithmetic
after the model (mapping to original pixels, IoU, metrics) stays in fp32/fp64. ``auto`` picks bf16 only where it
pays and is measured to keep the answers: on a CUDA GPU that supports bf16, or on a CPU that reports native bf16
units (``amx_bf16`` or ``avx512_bf16`` in ``/proc/cpuinfo``). Elsewhere bf16 would be emulated, slower than fp32,
so ``auto`` stays fp32. ``docs/inference.md`` gives the measured accuracy cost and speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rsvg.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
#: what bf16 must keep for ``auto`` to choose it, on trained weights: each answer's box within this IoU of its
#: fp32 box, and no answer of a model that has memorised its samples moved across IoU 0.5 (tested); on the demo's
#: model, docs/inference.md gives the measured changes over a whole test split
BF16_MIN_IOU_TO_FP32 = 0.9
#: CPU flags of native bf16 matrix instructions (Intel AMX; AVX-512 BF16 on Intel Cooper Lake+ and AMD Zen 4+)
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Precision:
    """The precision a run uses (``fp32`` or ``bf16``), the autocast setting it maps to, and why it was chosen."""

    name: str
    reason: str

    @property
    def amp(self) -> str:
        """The autocast setting of :func:`rsvg.engine.amp.autocast_context`: ``bf16`` or ``off``."""
        return "bf16" if self.name == "bf16" else "off"

    def describe(self) -> str:
        return f"precision {self.name} ({self.reason})"


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """Every flag the CPU reports on the first ``flags`` line of ``cpuinfo`` (default: ``/proc/cpuinfo``; empty
    where it does not exist)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The native bf16 flags this CPU reports (empty when none, or where ``/proc/cpuinfo`` does not exist)."""
    flags = cpu_flags(cpuinfo)
    return [f for f in BF16_CPU_FLAGS if f in flags]


def resolve_precision(precision: str, device: torch.device | str, *, cpuinfo: str | None = None) -> Precision:
    """``auto`` → bf16 on a bf16-capable CUDA device or a CPU with native bf16 units, else fp32; ``fp32`` and
    ``bf16`` as asked (bf16 on a CPU without the units is allowed, and slow)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision != "auto":
        return Precision(precision, "asked for")
    if device.type == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto: the GPU supports bf16")
        return Precision("fp32", "auto: the GPU has no bf16")
    if device.type == "cpu":
        flags = cpu_bf16_flags(cpuinfo)
        if flags:
            return Precision("bf16", f"auto: the CPU has {' and '.join(flags)}")
        return Precision("fp32", "auto: the CPU has no native bf16 units (no amx_bf16 or avx512_bf16)")
    return Precision("fp32", f"auto: no bf16 rule for {device.type}")
