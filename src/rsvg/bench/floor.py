"""The machine's floor: how fast a dense fp32 matrix product and the backbone alone run here.

A model's time per image cannot go below its FLOPs divided by the rate of the machine's best kernel (a large
fp32 matrix product); convolutions rarely reach that rate, so a more useful floor is the backbone as it runs
here (its best memory layout) plus the rest of the model's FLOPs at the matmul rate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rsvg.bench.machine import median, timed_runs


def matmul_gflops(
    n: int = 2048, repeats: int = 5, warmup: int = 2, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> dict[str, Any]:
    """Rate of an ``n × n`` matrix product in ``dtype`` (``2·n³`` FLOPs per product), median of ``repeats`` runs.

    In bf16 beside fp32 it bounds what bf16 can do for any step on this machine: only the matrix products and
    convolutions run at the faster rate, so no step runs faster in bf16 than by this ratio."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    times = timed_runs(lambda: torch.mm(a, b, out=out), repeats, warmup, sync)
    t = median(times)
    return {"n": n, "seconds": t, "gflops": 2 * n**3 / t / 1e9, "runs": times}


def backbone_seconds(
    backbone: nn.Module,
    image_size: int,
    *,
    channels_last: bool,
    repeats: int,
    warmup: int = 1,
    batch: int = 1,
    device: str = "cpu",
) -> dict[str, Any]:
    """Median seconds of the backbone alone on a ``batch × 3 × S × S`` input, in inference mode."""
    backbone = backbone.eval().to(device)
    x = torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0)).to(device)
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        backbone = backbone.to(memory_format=torch.contiguous_format)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None

    def run() -> None:
        with torch.inference_mode():
            backbone(x)

    times = timed_runs(run, repeats, warmup, sync)
    return {"seconds": median(times), "runs": times, "channels_last": channels_last, "batch": batch}


def floor_estimates(
    model_flops: float, backbone_flops: float, matmul_rate_gflops: float, backbone_best_s: float
) -> dict[str, float]:
    """Two floors for one image: all FLOPs at the matmul rate, and the backbone as measured plus the rest of the
    FLOPs at the matmul rate."""
    rate = matmul_rate_gflops * 1e9
    return {
        "matmul_floor_s": model_flops / rate,
        "floor_s": backbone_best_s + max(model_flops - backbone_flops, 0.0) / rate,
    }
