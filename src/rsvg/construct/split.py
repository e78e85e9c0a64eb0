"""Split a built dataset by expression: a seeded permutation of the global object indices.

Sizes: ``round(n x train)`` and ``round(n x val)`` expressions, the rest for test. The default is 70/10/20;
the paper's text gives 40/10/50 (its released files hold 70/10/20). Splits share images, never expressions,
as in DIOR-RSVG. Each list is sorted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_SPLIT: tuple[float, float, float] = (0.7, 0.1, 0.2)
PAPER_TEXT_SPLIT: tuple[float, float, float] = (0.4, 0.1, 0.5)


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Three non-negative finite fractions summing to 1 (or percentages summing to 100), as fractions."""
    if len(ratios) != 3:
        raise ValueError(f"expected three ratios (train, val, test), got {len(ratios)}")
    values = [float(r) for r in ratios]
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"ratios must be finite and non-negative, got {values}")
    total = sum(values)
    if abs(total - 100.0) < 1e-6:
        values = [v / 100.0 for v in values]
    elif abs(total - 1.0) > 1e-6:
        raise ValueError(f"ratios must sum to 1 (or 100), got {values} (sum {total:g})")
    return values[0], values[1], values[2]


def parse_split(text: str) -> tuple[float, float, float]:
    """Parse "0.7,0.1,0.2" (or "70,10,20") into fractions; ``ValueError`` with the reason otherwise."""
    parts = [p.strip() for p in text.replace("/", ",").split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected three numbers like 0.7,0.1,0.2, got {text!r}") from None
    return check_ratios(values)


def split_indices(n: int, ratios: Sequence[float] = DEFAULT_SPLIT, seed: int = 0) -> dict[str, list[int]]:
    """``{"train": [...], "val": [...], "test": [...]}`` over ``range(n)``, disjoint and covering."""
    train, val, _ = check_ratios(ratios)
    order = np.random.default_rng([seed, 0x5B17]).permutation(n)
    n_train = round(n * train)
    n_val = min(round(n * val), n - n_train)
    return {
        "train": sorted(order[:n_train].tolist()),
        "val": sorted(order[n_train : n_train + n_val].tolist()),
        "test": sorted(order[n_train + n_val :].tolist()),
    }
