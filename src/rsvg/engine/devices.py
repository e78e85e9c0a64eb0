"""The ``--device`` argument of every command, checked in one place.

``auto`` picks CUDA where present, else the CPU; ``cpu``; ``cuda`` or ``cuda:N`` only where that GPU exists. Any
other name (``tpu``, ``gpu``, ``mps`` ...) is refused with the names that are accepted, instead of silently running
on the CPU.
"""

from __future__ import annotations

import re

import torch

from rsvg.errors import DeviceError

_CUDA = re.compile(r"cuda(?::(\d+))?")


def parse_device(name: str, option: str = "--device") -> torch.device:
    """The device ``name`` stands for on this machine; :class:`DeviceError` naming ``option`` otherwise."""
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text)
    if match is None:
        raise DeviceError(f"{option} {name!r} is not a device rsvg runs on; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(f"{option} {name}: this machine has no CUDA GPU that torch can use; use --device cpu")
    index = int(match.group(1)) if match.group(1) is not None else None
    if index is not None and index >= torch.cuda.device_count():
        raise DeviceError(f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    return torch.device("cuda", index) if index is not None else torch.device("cuda")
