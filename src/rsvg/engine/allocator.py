"""The process's C allocator keeps the memory it frees, so a training step's tensors reuse it without page faults.

PyTorch's CPU tensors come from ``malloc``. On Linux, glibc serves large requests (above a threshold that ends at
32 MB) with a fresh ``mmap`` and gives the pages back to the system on ``free``, and it trims the top of its heap
when more than a little is free. A training step allocates and frees the same large tensors every time
(activations, their gradients, a text encoder's dense embedding gradient), so each step touches tens of thousands
of fresh pages, and every first touch is a page fault in the kernel: a ReLU backward over a 26 MB map runs at
the speed of the faults, not of the memory. Keeping freed memory in the process (no ``mmap`` for large blocks, no
trimming) makes the second step find its pages already mapped: ``rsvg bench model`` times the difference
(its ``keep_freed_memory`` optimisation, ``--ablate``).

The cost: the process's resident memory stays at its peak instead of shrinking between steps, which a training
or evaluation process reaches on its first step anyway. Set ``RSVG_KEEP_FREED_MEMORY=0`` to keep the system's
default. Elsewhere than glibc (macOS, Windows, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from dataclasses import dataclass

ENV = "RSVG_KEEP_FREED_MEMORY"
# mallopt(3) parameters of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# trim the heap's top only when this much of it is free (mallopt takes an int)
_TRIM_THRESHOLD = 2**31 - 1


@dataclass(frozen=True)
class AllocatorState:
    """Whether this process's allocator keeps freed memory, and why (or why not)."""

    kept: bool
    reason: str

    def summary(self) -> str:
        return f"allocator {'keeps freed memory' if self.kept else 'system default'} ({self.reason})"


_state = AllocatorState(False, "not set by rsvg")


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)  # the symbols the process already has: its C library's mallopt


def keep_freed_memory() -> AllocatorState:
    """Tell glibc's ``malloc`` to keep what the process frees (see the module docstring); idempotent.

    Returns the state, also kept for :func:`allocator_state`. Does nothing where ``RSVG_KEEP_FREED_MEMORY`` is
    ``0`` or the C library is not glibc."""
    global _state
    if _state.kept:
        return _state
    if os.environ.get(ENV, "1").strip() == "0":
        _state = AllocatorState(False, f"{ENV}=0")
        return _state
    libc = _glibc()
    if libc is None:
        _state = AllocatorState(False, "the C library is not glibc")
        return _state
    done = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    reason = "glibc: large blocks from the heap, heap not trimmed" if done else "glibc refused mallopt"
    _state = AllocatorState(done, reason)
    return _state


def allocator_state() -> AllocatorState:
    """What :func:`keep_freed_memory` did in this process (``kept`` is False until it is called)."""
    return _state
