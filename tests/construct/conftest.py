"""A dataset built from synthetic scenes, shared by the tests of how built expressions read (their style and
their words): a few hundred scenes, so that shares measured on it are not at the mercy of a few images."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsvg.construct.build import build_dataset
from rsvg.synth import write_synthetic_dataset

SYNTHETIC_SCENES = 300


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``rsvg build`` (seed 0) on ``SYNTHETIC_SCENES`` synthetic scenes (seed 3, 800 x 800)."""
    base = tmp_path_factory.mktemp("synthetic_build")
    write_synthetic_dataset(base / "scenes", images=SYNTHETIC_SCENES, seed=3)
    build_dataset(base / "scenes", base / "rsvg", seed=0)
    return base / "rsvg"
