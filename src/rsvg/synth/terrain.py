"""Ground textures seen from above: grass, soil, sand and urban ground, with fields and lighting variation;
and the final sensor look (grain, slight blur)."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from rsvg.synth.geometry import rect
from rsvg.synth.noise import value_noise

# Two RGB end points per terrain; low-frequency noise blends between them.
TERRAINS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "grass": ((70, 96, 52), (118, 134, 76)),
    "soil": ((134, 114, 88), (178, 156, 122)),
    "sand": ((192, 178, 146), (224, 210, 176)),
    "urban": ((110, 108, 102), (150, 146, 138)),
}
TERRAIN_KINDS: tuple[str, ...] = tuple(TERRAINS)
_COARSE = 200  # resolution of the smooth colour field
_GRAIN_SEED, _GRAIN_PAD = 20230601, 64

_FIELD_COLORS = np.array(
    [(96, 124, 62), (128, 140, 76), (150, 150, 96), (160, 136, 98), (122, 100, 74), (84, 112, 60)],
    dtype=np.float32,
)


def _blend(t: np.ndarray, a: tuple[float, float, float], b: tuple[float, float, float]) -> np.ndarray:
    lo = np.asarray(a, dtype=np.float32)
    return lo + t[..., None] * (np.asarray(b, dtype=np.float32) - lo)


def base_terrain(rng: np.random.Generator, size: int, kind: str, second: str | None = None) -> np.ndarray:
    """A ``size`` x ``size`` uint8 RGB ground texture of ``kind``, with patches of ``second`` if given.

    The smooth colour field (tone, patches of the second kind, lighting) is computed on a coarse grid and scaled
    up once; fields are then drawn at full resolution. Fine grain comes later, in :func:`finish_image`.
    """
    q = min(size, _COARSE)
    t = value_noise(rng, (q, q), cells=rng.uniform(2.0, 4.0), octaves=4, gain=0.55)
    field = _blend(t, *TERRAINS[kind])
    if second is not None and second != kind:
        m = value_noise(rng, (q, q), cells=rng.uniform(1.5, 3.0), octaves=2)
        alpha = np.clip((m - 0.55) * 8.0, 0.0, 1.0)
        field += alpha[..., None] * (_blend(t, *TERRAINS[second]) - field)
    light = value_noise(rng, (q, q), cells=rng.uniform(12, 24), octaves=2)
    field *= (0.94 + 0.12 * light)[..., None]
    canvas = np.clip(field, 0, 255).astype(np.uint8)
    if q != size:
        canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_LINEAR)
    if kind in ("grass", "soil") and rng.random() < 0.7:
        add_fields(rng, canvas)
    return canvas


def add_fields(rng: np.random.Generator, canvas: np.ndarray) -> None:
    """Farm parcels: a few aligned rectangles of crop colours."""
    size = canvas.shape[0]
    s = size / 800.0
    angle = rng.uniform(0, math.pi)
    for _ in range(int(rng.integers(3, 10))):
        cx, cy = rng.uniform(0, size, 2)
        length, width = rng.uniform(80, 260) * s, rng.uniform(50, 160) * s
        color = _FIELD_COLORS[rng.integers(len(_FIELD_COLORS))] * rng.uniform(0.92, 1.08)
        pts = np.round(rect(cx, cy, length, width, angle + rng.normal(0, 0.03)) * 16).astype(np.int32)
        cv2.fillPoly(canvas, [pts], tuple(float(c) for c in color), cv2.LINE_8, 4)


@functools.lru_cache(maxsize=4)
def _grain_tiles(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed grey grain texture a little larger than the image, split into its positive and negative parts
    (uint8, 3 equal channels); the same in every process, so images do not depend on the process."""
    rng = np.random.default_rng(_GRAIN_SEED)
    n = size + _GRAIN_PAD
    grain = np.round((rng.random((n, n), dtype=np.float32) - 0.5) * 14.0).astype(np.int16)
    parts = []
    for part in (np.clip(grain, 0, None), np.clip(-grain, 0, None)):
        tile = cv2.merge([part.astype(np.uint8)] * 3)
        tile.setflags(write=False)
        parts.append(tile)
    return parts[0], parts[1]


def finish_image(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """Sensor grain (a randomly shifted crop of a fixed texture) and a slight optical blur; uint8 RGB out."""
    size = canvas.shape[0]
    dx, dy = (int(v) for v in rng.integers(0, _GRAIN_PAD + 1, 2))
    up, down = (tile[dy : dy + size, dx : dx + size] for tile in _grain_tiles(size))
    image = cv2.subtract(cv2.add(canvas, up), down)  # saturating: exactly clip(canvas + grain, 0, 255)
    return cv2.GaussianBlur(image, (3, 3), 0.6)
