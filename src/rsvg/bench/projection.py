"""How long training would take on GPUs, projected from the model's FLOP count (a projection, not a measurement).

A training step costs about three forward passes (the backward pass about two: the gradients with respect to
the activations and to the weights, each one matrix product per forward product), so one training image costs
``3 × forward FLOPs``. A GPU sustains only a fraction of its peak dense rate on a model like this one (ResNet-50
convolutions at 640², short transformers at batch 8, the optimiser, data loading); that fraction, the
*utilisation*, is an assumption, so every projection is given for a low and a high utilisation. Several GPUs
under DDP are assumed to scale with :data:`DDP_EFFICIENCY` (gradient all-reduce over NVLink overlapped with the
backward pass). ``rsvg bench model --device cuda`` measures the real step; its projected epoch replaces these
numbers once it has run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

TRAINING_FLOPS_PER_FORWARD = 3.0
DDP_EFFICIENCY = 0.9
#: Low and high utilisation of the GPU's peak dense rate assumed for this model's training step. The high end is
#: what ResNet-50 training itself reaches in a tuned large-batch setup: about 2,600 images/s at 224² with AMP and
#: channels-last on an A100 (timm's benchmark, reported in huggingface/pytorch-image-models issue #1491), times
#: 24.6 GFLOPs per training image (3 × 8.2), is 64 TFLOP/s, a fifth of 312. Batch 8 and short transformers do worse.
UTILISATION = (0.05, 0.20)
PAPER_EPOCHS = 150  # Sec. V-B: batch 8, 150 epochs


@dataclass(frozen=True)
class Accelerator:
    """A GPU and its peak dense matrix rate at the precision training runs in (vendor data sheets)."""

    name: str
    precision: str
    peak_tflops: float


#: The paper's GPU (fp32: Pascal has no tensor cores) and two current data-centre GPUs in bf16 (dense, no sparsity).
#: Peak rates from NVIDIA's data sheets: GTX 1080 Ti 11.3 TFLOP/s fp32; A100 SXM 312 TFLOP/s bf16; H100 SXM 989.
ACCELERATORS = (
    Accelerator("GTX 1080 Ti (the paper's)", "fp32", 11.3),
    Accelerator("A100 SXM", "bf16", 312.0),
    Accelerator("H100 SXM", "bf16", 989.0),
)


def project_training(
    forward_gflops: float,
    *,
    expressions: int,
    epochs: int = PAPER_EPOCHS,
    gpu_counts: tuple[int, ...] = (1, 8),
    loader_samples_per_s_per_worker: float | None = None,
    accelerators: tuple[Accelerator, ...] = ACCELERATORS,
    utilisation: tuple[float, float] = UTILISATION,
) -> dict[str, Any]:
    """Projected images/s, epoch time and ``epochs``-epoch time for each accelerator and GPU count.

    ``forward_gflops`` is one image's forward pass (the bench's count, text trimmed). Each row gives a range, from
    the low to the high utilisation. With ``loader_samples_per_s_per_worker`` (the bench's loader rate divided by
    its workers), each row also says how many loader workers, in all, keep the GPUs fed at the high rate.
    """
    if forward_gflops <= 0 or expressions <= 0 or epochs <= 0:
        raise ValueError("forward_gflops, expressions and epochs must be positive")
    low, high = utilisation
    if not 0 < low <= high <= 1:
        raise ValueError(f"utilisation must satisfy 0 < low <= high <= 1, got {utilisation}")
    per_image = TRAINING_FLOPS_PER_FORWARD * forward_gflops * 1e9
    rows = []
    for acc in accelerators:
        for n in gpu_counts:
            scale = n * (DDP_EFFICIENCY if n > 1 else 1.0)
            rates = [acc.peak_tflops * 1e12 * u * scale / per_image for u in (low, high)]
            epoch_s = [expressions / r for r in rates]
            row = {
                "accelerator": acc.name,
                "precision": acc.precision,
                "gpus": n,
                "images_per_s": rates,
                "epoch_min": [s / 60 for s in reversed(epoch_s)],
                "run_h": [s * epochs / 3600 for s in reversed(epoch_s)],
            }
            if loader_samples_per_s_per_worker:
                row["loader_workers"] = math.ceil(rates[1] / loader_samples_per_s_per_worker)
            rows.append(row)
    return {
        "kind": "projection from FLOPs, not measured",
        "forward_gflops_per_image": forward_gflops,
        "training_gflops_per_image": per_image / 1e9,
        "expressions": expressions,
        "epochs": epochs,
        "utilisation": list(utilisation),
        "ddp_efficiency": DDP_EFFICIENCY,
        "accelerators": [asdict(a) for a in accelerators],
        "loader_samples_per_s_per_worker": loader_samples_per_s_per_worker,
        "rows": rows,
    }
