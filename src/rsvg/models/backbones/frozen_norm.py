"""Frozen BatchNorm that keeps its input's precision.

torchvision's ``FrozenBatchNorm2d`` computes ``x * scale + bias`` with ``scale`` and ``bias`` in fp32. Under bf16
autocast a convolution's output is bf16, and bf16 times fp32 is fp32 by PyTorch's type promotion: every map after a
norm was fp32, twice the bytes for the norm, the ReLU and their backward, and the next convolution cast it back to
bf16. This norm casts its per-channel ``scale`` and ``bias`` to the input's dtype instead, so a bf16 backbone stays
bf16 from one convolution to the next. In fp32 it is torchvision's arithmetic exactly (same operations, same order);
the parameters, buffers and state-dict keys are torchvision's, so checkpoints load unchanged and
:meth:`~rsvg.models.backbones.base.Backbone.fold_frozen_batchnorm` folds it like torchvision's.
"""

from __future__ import annotations

import torch
from torchvision.ops import FrozenBatchNorm2d as _TorchvisionFrozenBatchNorm2d


class FrozenBatchNorm2d(_TorchvisionFrozenBatchNorm2d):
    """BatchNorm2d with fixed statistics and affine parameters, computed in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        bias = b - rm * scale
        return x * scale.to(x.dtype) + bias.to(x.dtype)
