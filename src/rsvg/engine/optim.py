"""Optimiser and learning-rate schedule (paper Sec. V-B): AdamW, weight decay 1e-4, lr 1e-5 for parameters
loaded from pretrained weights and 1e-4 for new ones (or the reference code's groups), warm-up then step or
cosine decay. The benchmark's one-stage references train otherwise, and their configs say so: RMSprop with a poly
decay (FAOA), RMSprop with halving steps (ReSC), Adam with warm-up and cosine (LBYL-Net)."""

from __future__ import annotations

import math

import torch
from torch import nn

from rsvg.config import TrainConfig
from rsvg.models.interface import GroundingModel

#: the optimiser groups trained at ``lr_pretrained`` (held by ``train.freeze_epochs``)
PRETRAINED_GROUPS = ("pretrained", "visual", "text")


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, pretrained_names: set[str], fused: bool | None = None
) -> torch.optim.Optimizer:
    """``cfg.optimizer`` (AdamW by default; Adam; RMSprop) over the trainable parameters in the groups
    ``cfg.lr_groups`` names; frozen parameters are left out.

    - ``loaded``: ``lr_pretrained`` for the parameters actually loaded from pretrained weights
      (``pretrained_names``), ``lr`` for every other one (the paper's wording, Sec. V-B);
    - ``reference``: the family's reference implementation's groups
      (:meth:`~rsvg.models.interface.GroundingModel.reference_group`): for MGVLF its visual model whole (backbone,
      input projection, extra levels, MLCM, its text-memory projection, visual encoder) and the text encoder at
      ``lr_pretrained``, the rest (fusion, [REG] token, head, stages) at ``lr``.

    ``fused``: AdamW's and Adam's single-kernel step (``None``: wherever torch has it, CPU and CUDA float tensors;
    the benchmark turns it off to measure it; RMSprop has none)."""
    # the group at lr comes first (progress lines and the history report the first group's rate)
    buckets: dict[str, list[nn.Parameter]] = {"new": [], "pretrained": [], "rest": [], "visual": [], "text": []}
    grounding: GroundingModel = unwrap(model)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        name = name.removeprefix("module.").removeprefix("_orig_mod.")
        if cfg.lr_groups == "reference":
            bucket = grounding.reference_group(name)
        else:
            bucket = "pretrained" if name in pretrained_names else "new"
        buckets[bucket].append(p)
    rates = {name: cfg.lr_pretrained for name in PRETRAINED_GROUPS} | {"new": cfg.lr}
    groups = [
        {"params": params, "lr": rates.get(name, cfg.lr), "name": name} for name, params in buckets.items() if params
    ]
    if cfg.optimizer == "rmsprop":  # torch's defaults (alpha 0.99, eps 1e-8), as the references use it
        return torch.optim.RMSprop(groups, weight_decay=cfg.weight_decay)
    if fused is None:
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    betas = (float(cfg.betas[0]), float(cfg.betas[1]))
    return kind(groups, betas=betas, weight_decay=cfg.weight_decay, fused=fused or None)


def unwrap(model: nn.Module) -> GroundingModel:
    """The grounding model inside DistributedDataParallel and ``torch.compile`` wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod  # type: ignore[assignment]
    return model  # type: ignore[return-value]


def describe_groups(optimizer: torch.optim.Optimizer) -> str:
    """``"new 120 tensors at lr 0.0001, pretrained 52 at 1e-05"``: what each optimiser group trains."""
    return ", ".join(
        f"{g.get('name', i)} {len(g['params'])} tensors at lr {g['lr']:g}" for i, g in enumerate(optimizer.param_groups)
    )


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rates after ``step`` optimiser steps."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    epoch = step / max(steps_per_epoch, 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** sum(epoch >= e for e in cfg.step_epochs)
    if cfg.schedule == "poly":  # per whole epoch, as FAOA's reference adjusts it at each epoch's start
        return max(1.0 - math.floor(epoch) / cfg.epochs, 0.0) ** cfg.poly_power
    if cfg.schedule == "cosine":
        total = max(cfg.epochs * steps_per_epoch - cfg.warmup_steps, 1)
        progress = min(max(step - cfg.warmup_steps, 0) / total, 1.0)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"train.schedule must be step, cosine, constant or poly, got {cfg.schedule!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    lr_factor(0, steps_per_epoch, cfg)  # validate the schedule name now, not mid-run
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps_per_epoch, cfg))
