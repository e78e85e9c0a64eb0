"""Shared fixtures: tiny datasets written on the fly (no test reads files from outside the repository)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import rsvg  # noqa: F401  (first, so MKL starts in the reproducible mode rsvg asks for: exact-resume tests)
from helpers.datasets import make_official_dataset


@pytest.fixture
def official_dataset(tmp_path: Path) -> Path:
    """A 3-image dataset laid out exactly as the official DIOR-RSVG download."""
    return make_official_dataset(tmp_path / "dior_rsvg")


@pytest.fixture(autouse=True, scope="session")
def _training_amp_auto_is_fp32() -> Iterator[None]:
    """``train.amp: auto`` resolves as on a CPU without native bf16 units, whatever this machine has, so that every
    training test computes the same thing on every x86-64 machine; the tests of bf16 training ask for it
    (``train.amp=bf16``), and those of ``auto`` pass the CPU's flags themselves. Session-wide, so that it is in force
    for the module-scoped fixtures that train too."""
    from rsvg.engine import amp, precision

    real = precision.cpu_bf16_flags
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(amp, "cpu_bf16_flags", lambda cpuinfo=None: [] if cpuinfo is None else real(cpuinfo))
        yield
