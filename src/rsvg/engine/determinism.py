"""Exact, repeatable training: what ``train.deterministic`` switches on, and a report of what is in force.

Two runs with the same config, data and seed — or a run interrupted and continued with ``--resume`` — give
bit-identical weights when every kernel of a training step gives bit-identical results for identical inputs.
On a CPU three libraries decide that:

- **MKL** (matrix products). Without its Conditional Numerical Reproducibility (CNR) mode, MKL may split work
  differently depending on the memory alignment of its arguments and on run-time threading decisions, and so
  round differently. Strict CNR (``MKL_CBWR=AUTO,STRICT``) fixes the code path and the order of operations for
  a given thread count. MKL reads the mode once, before its first call, so :func:`request_mkl_cnr` runs when
  ``rsvg`` is imported; a process that used MKL before importing ``rsvg`` keeps the mode it had.
- **oneDNN** (convolutions, and every 1x1 convolution once more than one thread is used):
  ``torch.backends.mkldnn.deterministic`` asks for its deterministic kernels.
- **ATen** (PyTorch's own kernels): ``torch.use_deterministic_algorithms`` makes it pick deterministic
  implementations (on a GPU also cuBLAS and cuDNN; ops without one warn, naming themselves).

The thread count is pinned once (``torch.set_num_threads`` with its current value): PyTorch chooses some
kernels by the thread count it sees (a 1x1 convolution goes to oneDNN above one thread, to a GEMM otherwise).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# mkl_cbwr.h: the branch is chosen for this CPU (AUTO); STRICT also fixes the reduction order
_MKL_CBWR_AUTO = 2
_MKL_CBWR_STRICT = 0x10000
_MKL_CBWR_ALL = -1
CNR_ENV = "MKL_CBWR"
CNR_VALUE = "AUTO,STRICT"


def request_mkl_cnr() -> None:
    """Ask MKL for strict CNR when it starts (unless the user set ``MKL_CBWR``); effective only if MKL has not
    been used yet in this process."""
    os.environ.setdefault(CNR_ENV, CNR_VALUE)


@functools.cache
def _mkl_library() -> ctypes.CDLL | None:
    """PyTorch's CPU library, where the wheel links MKL statically (None where torch has no MKL)."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll"):
        if (lib_dir / name).exists():
            try:
                lib = ctypes.CDLL(str(lib_dir / name))
                getattr(lib, "mkl_serv_cbwr_get")  # noqa: B009 (a missing symbol raises AttributeError)
                return lib
            except (OSError, AttributeError):
                return None
    return None


def mkl_cnr_mode() -> str:
    """MKL's reproducibility mode now: ``strict`` (CNR strict), ``cnr`` (CNR without STRICT), ``off``, or
    ``no-mkl`` (this torch does not use MKL, or its MKL cannot be queried)."""
    lib = _mkl_library()
    if lib is None:
        return "no-mkl"
    get = lib.mkl_serv_cbwr_get
    get.argtypes, get.restype = [ctypes.c_int], ctypes.c_int
    mode = get(_MKL_CBWR_ALL)
    if mode < 0:
        return "off"
    if mode & _MKL_CBWR_STRICT:
        return "strict"
    return "cnr" if mode & 0xFFFF > 1 else "off"


def try_mkl_strict_cnr() -> bool:
    """Switch MKL to strict CNR now; only possible before MKL's first call in the process. True when in force."""
    if mkl_cnr_mode() == "strict":
        return True
    lib = _mkl_library()
    if lib is None:
        return False
    set_mode = lib.mkl_serv_cbwr_set
    set_mode.argtypes, set_mode.restype = [ctypes.c_int], ctypes.c_int
    set_mode(_MKL_CBWR_AUTO | _MKL_CBWR_STRICT)
    return mkl_cnr_mode() == "strict"


@dataclass(frozen=True)
class Determinism:
    """What is in force for a training run."""

    enabled: bool
    threads: int
    mkl: str  # see mkl_cnr_mode

    @property
    def exact(self) -> bool:
        """Every CPU library that decides a step's rounding is in its reproducible mode."""
        return self.enabled and self.mkl in ("strict", "no-mkl")

    def summary(self) -> str:
        if not self.enabled:
            return "off (train.deterministic false): repeats and resumes agree within float rounding"
        mkl = {
            "strict": "MKL strict CNR",
            "no-mkl": "no MKL",
            "cnr": "MKL CNR without STRICT (MKL_CBWR is set without STRICT)",
            "off": "MKL CNR off (MKL was used before rsvg was imported, or MKL_CBWR says so)",
        }[self.mkl]
        return f"on ({self.threads} threads, deterministic algorithms, oneDNN deterministic, {mkl})"


def apply_determinism(enabled: bool) -> tuple[Determinism, Callable[[], None]]:
    """Apply ``train.deterministic`` to this process (before the model runs); returns what holds and a function
    that restores PyTorch's switches (MKL's mode stays: it is fixed for the process)."""
    import torch

    threads = torch.get_num_threads()
    if not enabled:
        return Determinism(False, threads, mkl_cnr_mode()), lambda: None
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        getattr(torch.backends.mkldnn, "deterministic", None),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    torch.set_num_threads(threads)
    # on a GPU: cuBLAS reads this before its first handle (deterministic algorithms need it), and cuDNN's choice
    # of algorithm by timing is off (no effect on a CPU)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic algorithms would also fill every new uninitialised tensor with NaN (a guard against reading
    # it, which no rsvg code does): a memory pass per allocation that only costs time
    torch.utils.deterministic.fill_uninitialized_memory = False
    if saved[2] is not None:
        torch.backends.mkldnn.deterministic = True
    try_mkl_strict_cnr()

    def restore() -> None:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        if saved[2] is not None:
            torch.backends.mkldnn.deterministic = saved[2]
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[3], saved[4]
        torch.utils.deterministic.fill_uninitialized_memory = saved[5]

    return Determinism(True, threads, mkl_cnr_mode()), restore


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[Determinism]:
    """:func:`apply_determinism` for the duration of a block."""
    determinism, restore = apply_determinism(enabled)
    try:
        yield determinism
    finally:
        restore()
