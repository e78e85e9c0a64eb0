"""One optimisation step, as the trainer runs it and the benchmark times it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rsvg.engine.amp import autocast_context
from rsvg.engine.batching import forward_batch
from rsvg.models.loss import LossConfig, model_loss, needs_attention
from rsvg.models.mgvlf import MGVLF


@dataclass
class StepResult:
    losses: dict[str, Tensor]  # every term the model's loss returned (detached but the total)
    forward_backward_s: float  # forward, loss, backward and gradient clipping
    optimizer_s: float  # the optimiser's update (and freeing the gradients)


def train_step(
    net: torch.nn.Module,
    model: MGVLF,
    batch: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_cfg: LossConfig,
    *,
    amp: str,
    grad_clip: float,
    sync: Callable[[], None] | None = None,
) -> StepResult:
    """Forward ``batch`` through ``net`` (``model`` itself, or wrapped by DDP or ``torch.compile``), the loss,
    backward, gradient clipping at ``grad_clip`` (0: none), the optimiser's step; the gradients are freed right
    after it, not before the next backward, so the next forward's activations do not sit on top of a full set of
    gradients (the step's peak memory). ``sync`` waits for an accelerator before each time is read."""
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    with autocast_context(device, amp):
        out = forward_batch(net, batch, need_attention=needs_attention(model, loss_cfg))
    losses = model_loss(model, out, batch, loss_cfg)
    scaler.scale(losses["loss"]).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if sync is not None:
        sync()
    t1 = time.perf_counter()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if sync is not None:
        sync()
    return StepResult(losses, t1 - t0, time.perf_counter() - t1)
