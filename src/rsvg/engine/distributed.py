"""Distributed set-up for ``torchrun`` (one process per device, any number of machines) and its helpers.

Outside ``torchrun`` everything degrades to a single process: rank 0 of world size 1.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def launched_as_main() -> bool:
    """Whether ``torchrun`` started this process as rank 0 (or no launcher did); unlike :func:`is_main` this
    holds before the process group is joined and after it is left, e.g. for a command's closing summary."""
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed(device: str = "auto") -> torch.device:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1) and return this process's device.

    CUDA processes use NCCL and the GPU ``LOCAL_RANK``; CPU processes use gloo.
    """
    want_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA device is available")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not is_distributed():
        if want_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    if want_cuda:
        return torch.device("cuda", local_rank if is_distributed() else torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list outside distributed runs)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is unchanged)."""
    if not is_distributed():
        return values.clone()
    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
