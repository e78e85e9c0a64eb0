"""Plane geometry for drawing from above: image coordinates (x right, y down), angles in radians."""

from __future__ import annotations

import math

import numpy as np


def direction(angle: float) -> np.ndarray:
    """Unit vector at ``angle`` (0 points right, pi/2 points down)."""
    return np.array([math.cos(angle), math.sin(angle)])


def place(points: np.ndarray | list, cx: float, cy: float, angle: float) -> np.ndarray:
    """Rotate local points (x along ``angle``, y across it) by ``angle`` and move them to (cx, cy)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    c, s = math.cos(angle), math.sin(angle)
    return p @ np.array([[c, s], [-s, c]]) + (cx, cy)


def rect(cx: float, cy: float, length: float, width: float, angle: float) -> np.ndarray:
    """Corners of a ``length`` x ``width`` rectangle centred on (cx, cy), its length along ``angle``."""
    hl, hw = length / 2, width / 2
    return place([(-hl, -hw), (hl, -hw), (hl, hw), (-hl, hw)], cx, cy, angle)


def local_rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Corners of an axis-aligned rectangle in local coordinates (to pass through :func:`place`)."""
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.float64)


def ellipse(a: float, b: float, n: int = 40, start: float = 0.0, stop: float = 2 * math.pi) -> np.ndarray:
    """Local points of an ellipse (or an arc of it) with half-axes ``a`` (along x) and ``b``."""
    t = np.linspace(start, stop, n, endpoint=stop - start < 2 * math.pi - 1e-9)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)


def capsule(length: float, width: float, n: int = 16) -> np.ndarray:
    """Local points of a running-track outline: a rectangle with half-circle ends (total ``length``)."""
    r = width / 2
    straight = max(0.0, length / 2 - r)
    t = np.linspace(-math.pi / 2, math.pi / 2, n)
    right = np.stack([straight + r * np.cos(t), r * np.sin(t)], axis=1)
    return np.concatenate([right, -right])


def bbox(points: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned box ``(xmin, ymin, xmax, ymax)`` around points."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def aspect_shape(length: float, width: float) -> str:
    """Geometry word for a rectangle-like object from its side lengths."""
    ratio = max(length, width) / max(1e-6, min(length, width))
    if ratio >= 3.0:
        return "slender"
    if ratio <= 1.2:
        return "square"
    return "rectangular"
