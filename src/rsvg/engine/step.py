"""One optimisation step, as the trainer runs it and the benchmark times it.

A step whose loss, boxes or gradient norm are NaN or infinite stops before the optimiser's update with a
:class:`~rsvg.errors.TrainingDivergedError` saying what was not finite (the trainer adds the epoch and step): the
weights stay those of the last good step, and no kernel ever sees NaN boxes (the stages that call ``roi_align``
raise :class:`~rsvg.errors.NonFiniteError` first). Under torchrun every rank learns whether any rank found one
(:func:`~rsvg.engine.distributed.any_rank`), so all of them stop at the same step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rsvg.engine import distributed as dist
from rsvg.engine.amp import autocast_context, in_fp32
from rsvg.engine.batching import forward_batch
from rsvg.errors import NonFiniteError, TrainingDivergedError
from rsvg.models.interface import GroundingModel
from rsvg.models.loss import LossConfig


@dataclass
class StepResult:
    losses: dict[str, Tensor]  # every term the model's loss returned (detached but the total)
    forward_backward_s: float  # forward, loss, backward and gradient clipping
    optimizer_s: float  # the optimiser's update (and freeing the gradients)


def train_step(
    net: torch.nn.Module,
    model: GroundingModel,
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
    problem: str | None = None
    losses: dict[str, Tensor] = {}
    try:
        with autocast_context(device, amp):
            out = forward_batch(net, batch, need_attention=model.needs_attention(loss_cfg))
        if amp != "off":
            out = in_fp32(out)
        losses = model.loss(out, batch, loss_cfg)
        if not bool(torch.isfinite(losses["loss"].detach())):
            problem = f"the loss is {float(losses['loss'].detach())}"
    except NonFiniteError as exc:
        problem = str(exc)
    _stop_if(problem)
    scaler.scale(losses["loss"]).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        # with fp16 a non-finite norm is the grad scaler's business: it skips the step and lowers its scale
        if not scaler.is_enabled():
            _stop_if(None if bool(torch.isfinite(norm)) else f"the gradient norm is {float(norm)}")
    if sync is not None:
        sync()
    t1 = time.perf_counter()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if sync is not None:
        sync()
    return StepResult(losses, t1 - t0, time.perf_counter() - t1)


def _stop_if(problem: str | None) -> None:
    """Raise :class:`TrainingDivergedError` on every rank when any rank found ``problem`` (all ranks call this at
    the same point of the step)."""
    if dist.any_rank(problem is not None):
        raise TrainingDivergedError(problem or "another process's loss, boxes or gradients are not finite")
