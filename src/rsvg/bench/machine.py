"""What a benchmark ran on (CPU model, cores, versions, threads), whether it has the device asked for, and how much
memory a process used."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsvg.errors import BenchError

GIB = 2**30
# Environment variables that change how the CPU kernels use their threads (printed when set).
THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "KMP_BLOCKTIME")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux) with its family and model numbers (a virtual machine
    often shows only "AMD EPYC"; family 25 model 17 then says Zen 4), else what :mod:`platform` knows."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    extra = [f"{k.replace('cpu ', '')} {fields[k]}" for k in ("cpu family", "model") if k in fields]
    return fields["model name"] + (f" ({', '.join(extra)})" if extra else "")


def cpu_flags() -> list[str]:
    """The vector extensions the CPU reports (avx2, avx512f, amx ...): they decide the matmul rate."""
    from rsvg.engine.precision import cpu_flags as reported

    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
    flags = reported()
    return [f for f in wanted if f in flags]


def load_average() -> float | None:
    """The 1-minute load average at the time of the call (other jobs make timings noisy), if known."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, core count, Python and torch versions, threads: printed with every benchmark."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    flags = cpu_flags()
    if flags:
        info["cpu_flags"] = " ".join(flags)
    load = load_average()
    if load is not None:
        info["load_average_1min"] = load
    for var in THREAD_ENV:
        if os.environ.get(var):
            info[var] = os.environ[var]
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda or ""
    return info


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib * 1024


def rss_bytes() -> int:
    """Current resident memory of this process (0 where unknown)."""
    kib = _status_kib("VmRSS")
    return 0 if kib is None else kib * 1024


def timed_runs(fn: Callable[[], Any], repeats: int, warmup: int, sync: Callable[[], None] | None = None) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (``sync`` ends each call:
    ``torch.cuda.synchronize`` on a GPU)."""
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
    return times


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return float(statistics.median(values))


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, with a message that says what to do."""
    import torch

    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise BenchError(f"--device must be cpu or cuda, got {device!r}")
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        raise BenchError(
            f"--device {device}: CUDA is not available here (torch {torch.__version__}, CUDA build {build}, "
            f"{torch.cuda.device_count()} GPUs visible). Run on a machine with an NVIDIA GPU and a CUDA build of "
            "torch, or use --device cpu."
        )
