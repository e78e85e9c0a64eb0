"""Cheap value noise: random grids upsampled with cv2 (no per-pixel Python).

Octaves are summed on a grid just fine enough for the highest frequency (about 4 pixels per noise cell) and the
sum is scaled up to the requested shape once, so smooth noise over a large image costs little.
"""

from __future__ import annotations

import cv2
import numpy as np

_PIXELS_PER_CELL = 4


def value_noise(
    rng: np.random.Generator, shape: tuple[int, int], cells: float, octaves: int = 3, gain: float = 0.5
) -> np.ndarray:
    """Smooth noise in about [0, 1], float32 of ``shape`` (h, w).

    The first octave has ``cells`` random values across the image; each next octave doubles the frequency and
    multiplies the amplitude by ``gain``.
    """
    h, w = shape
    finest = max(1, round(cells * 2 ** (octaves - 1)))
    sh = min(h, max(8, finest * _PIXELS_PER_CELL))
    sw = min(w, max(8, finest * _PIXELS_PER_CELL))
    out = np.zeros((sh, sw), dtype=np.float32)
    amp, total = 1.0, 0.0
    for octave in range(octaves):
        c = max(1, round(cells * 2**octave))
        grid = rng.random((c + 1, c + 1), dtype=np.float32)
        cv2.scaleAdd(cv2.resize(grid, (sw, sh), interpolation=cv2.INTER_CUBIC), amp, out, dst=out)
        total += amp
        amp *= gain
    out *= 1.0 / total
    if (sh, sw) != (h, w):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def noise_1d(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Smooth 1-D noise of length ``n`` in about [-1, 1] (float64)."""
    grid = rng.uniform(-1.0, 1.0, (1, max(1, cells) + 1)).astype(np.float32)
    return cv2.resize(grid, (n, 1), interpolation=cv2.INTER_CUBIC)[0].astype(np.float64)
