"""Optimiser and learning-rate schedule (paper Sec. V-B): AdamW, weight decay 1e-4, lr 1e-5 for parameters
loaded from pretrained weights and 1e-4 for new ones, warm-up then step or cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn

from rsvg.config import TrainConfig


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, pretrained_names: set[str], fused: bool | None = None
) -> torch.optim.AdamW:
    """AdamW with two parameter groups decided by what was actually loaded; frozen parameters are left out.

    ``fused``: AdamW's single-kernel step (``None``: wherever torch has it, CPU and CUDA float tensors; the
    benchmark turns it off to measure it)."""
    pretrained, new = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (pretrained if name.removeprefix("module.").removeprefix("_orig_mod.") in pretrained_names else new).append(p)
    groups = [
        {"params": new, "lr": cfg.lr, "name": "new"},
        {"params": pretrained, "lr": cfg.lr_pretrained, "name": "pretrained"},
    ]
    groups = [g for g in groups if g["params"]]
    if fused is None:
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, fused=fused or None)


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rates after ``step`` optimiser steps."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    epoch = step / max(steps_per_epoch, 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** sum(epoch >= e for e in cfg.step_epochs)
    if cfg.schedule == "cosine":
        total = max(cfg.epochs * steps_per_epoch - cfg.warmup_steps, 1)
        progress = min(max(step - cfg.warmup_steps, 0) / total, 1.0)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"train.schedule must be step, cosine or constant, got {cfg.schedule!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    lr_factor(0, steps_per_epoch, cfg)  # validate the schedule name now, not mid-run
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps_per_epoch, cfg))
