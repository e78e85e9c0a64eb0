"""Split a built dataset by expression: a seeded permutation of the global object indices.

Sizes: ``round(n x train)`` and ``round(n x val)`` expressions, the rest for test; a split given a non-zero
fraction gets at least one expression when there are enough (train and eval refuse an empty split). The default
is 70/10/20; the paper's text gives 40/10/50 (its released files hold 70/10/20). Splits share images, never
expressions, as in DIOR-RSVG. Each list is sorted.
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


def split_sizes(n: int, ratios: Sequence[float] = DEFAULT_SPLIT) -> tuple[int, int, int]:
    """How many of ``n`` expressions go to train, val and test: ``round(n x train)``, ``round(n x val)``, the
    rest; a split with a non-zero fraction that would round to none takes one from the largest split while that
    keeps at least one (4 expressions at 0.7/0.1/0.2 give 2/1/1, not 3/0/1)."""
    train, val, test = check_ratios(ratios)
    n_train = round(n * train)
    n_val = min(round(n * val), n - n_train)
    sizes = [n_train, n_val, n - n_train - n_val]
    for k, ratio in enumerate((train, val, test)):
        donor = max(range(3), key=lambda j: sizes[j])
        if ratio > 0 and sizes[k] == 0 and sizes[donor] > 1:
            sizes[donor] -= 1
            sizes[k] += 1
    return sizes[0], sizes[1], sizes[2]


def split_indices(n: int, ratios: Sequence[float] = DEFAULT_SPLIT, seed: int = 0) -> dict[str, list[int]]:
    """``{"train": [...], "val": [...], "test": [...]}`` over ``range(n)``, disjoint and covering, of
    :func:`split_sizes`."""
    n_train, n_val, _ = split_sizes(n, ratios)
    order = np.random.default_rng([seed, 0x5B17]).permutation(n)
    return {
        "train": sorted(order[:n_train].tolist()),
        "val": sorted(order[n_train : n_train + n_val].tolist()),
        "test": sorted(order[n_train + n_val :].tolist()),
    }
