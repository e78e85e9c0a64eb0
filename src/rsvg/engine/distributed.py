"""Distributed set-up for ``torchrun`` (one process per device, any number of machines) and its helpers.

Outside ``torchrun`` everything degrades to a single process: rank 0 of world size 1.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from rsvg.engine.devices import parse_device


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


def init_distributed(device: str = "auto", option: str = "--device") -> torch.device:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1) and return this process's device.

    ``device`` is checked by :func:`~rsvg.engine.devices.parse_device` first (a :class:`~rsvg.errors.DeviceError`
    naming ``option`` for an unknown name or a GPU this machine lacks), before any process group is joined.
    CUDA processes use NCCL and the GPU ``LOCAL_RANK``; CPU processes use gloo.
    """
    wanted = parse_device(device, option)
    want_cuda = wanted.type == "cuda"
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not is_distributed():
        if want_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
    if not want_cuda:
        return torch.device("cpu")
    if is_distributed():
        return torch.device("cuda", local_rank)
    return torch.device("cuda", wanted.index if wanted.index is not None else torch.cuda.current_device())


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


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on any rank (itself outside distributed runs). Every rank must call it at the same
    point: a check that stops one rank (a NaN loss) then stops them all, instead of leaving the others waiting
    in the next collective forever."""
    if not is_distributed():
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
