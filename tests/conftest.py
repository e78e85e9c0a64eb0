"""Shared fixtures: tiny datasets written on the fly (no test reads files from outside the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

import rsvg  # noqa: F401  (first, so MKL starts in the reproducible mode rsvg asks for: exact-resume tests)
from helpers.datasets import make_official_dataset


@pytest.fixture
def official_dataset(tmp_path: Path) -> Path:
    """A 3-image dataset laid out exactly as the official DIOR-RSVG download."""
    return make_official_dataset(tmp_path / "dior_rsvg")
