"""Unlabelled background clutter drawn after the objects: tree clumps and buildings with shadows.

Clutter keeps off water, roads and the objects (their boxes, or for long or sprawling objects their
slightly grown bodies), so it never changes an object's look or its colour inside its box.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rsvg.synth.geometry import rect
from rsvg.synth.noise import value_noise
from rsvg.synth.placement import Placer
from rsvg.synth.world import World

_SPRAWLING = {"bridge", "overpass", "dam", "golffield", "harbor"}
_TREE = np.array((44, 70, 38), dtype=np.float32)
_ROOFS = np.array(
    [(150, 150, 146), (178, 176, 170), (120, 118, 114), (168, 98, 78), (196, 194, 188), (118, 126, 140)],
    dtype=np.float32,
)


def blocked_mask(world: World, placer: Placer) -> np.ndarray:
    """Where clutter may not go: water, roads and objects."""
    s = world.s
    blocked = world.water | world.road
    grow = max(3, round(6 * s)) | 1
    bodies = np.zeros_like(blocked)
    for i, sp in enumerate(placer.sprites):
        if sp.category in _SPRAWLING:
            bodies |= placer.owner == i + 1
        else:
            x0, y0, x1, y1 = (int(v) for v in sp.box)
            m = round(4 * s)
            blocked[max(0, y0 - m) : y1 + m, max(0, x0 - m) : x1 + m] = True
    if bodies.any():
        blocked |= cv2.dilate(bodies.astype(np.uint8), np.ones((grow, grow), np.uint8)).astype(bool)
    return blocked


def add_trees(world: World, blocked: np.ndarray, density: float) -> None:
    """Clumps of tree crowns (with shadows) where noise is high; ``density`` in [0, 1]."""
    if density <= 0:
        return
    rng, size, s = world.rng, world.size, world.s
    cells = max(4.0, 60 * s)
    q = min(size, round(cells * 8))  # noise summed on a coarser grid, scaled up once
    crowns = value_noise(rng, (q, q), cells=cells, octaves=2, gain=0.6)
    crowns += 0.5 * value_noise(rng, (q, q), cells=rng.uniform(2, 4), octaves=1)
    if q != size:
        crowns = cv2.resize(crowns, (size, size), interpolation=cv2.INTER_LINEAR)
    trees = (crowns > 1.12 - 0.3 * density) & ~blocked
    if not trees.any():
        return
    dx, dy = np.round(world.sun * max(1.0, 3 * s)).astype(int)
    shadow = np.zeros_like(trees)
    ys, ye = max(0, dy), size + min(0, dy)
    xs, xe = max(0, dx), size + min(0, dx)
    shadow[ys:ye, xs:xe] = trees[ys - dy : ye - dy, xs - dx : xe - dx]
    shadow &= ~trees & ~blocked
    gain = np.where(shadow, np.uint8(150), np.uint8(255))
    cv2.multiply(world.canvas, cv2.merge([gain, gain, gain]), dst=world.canvas, scale=1 / 255)
    crown_rgb = cv2.merge([cv2.convertScaleAbs(crowns, alpha=0.5 * c, beta=0.45 * c) for c in _TREE.tolist()])
    cv2.copyTo(crown_rgb, trees.view(np.uint8), world.canvas)


def add_buildings(world: World, blocked: np.ndarray, count: int) -> None:
    """Up to ``count`` rectangular roofs aligned with the streets, each with a shadow."""
    rng, size, s = world.rng, world.size, world.s
    canvas = world.canvas
    off = world.sun * 4 * s
    for _ in range(count):
        length, width = rng.uniform(14, 46) * s, rng.uniform(10, 30) * s
        cx, cy = rng.uniform(0, size, 2)
        angle = world.grid + (math.pi / 2 if rng.random() < 0.5 else 0.0) + rng.normal(0, 0.02)
        half = math.hypot(length, width) / 2 + 4 * s
        x0, x1 = max(0, int(cx - half)), min(size, int(cx + half) + 1)
        y0, y1 = max(0, int(cy - half)), min(size, int(cy + half) + 1)
        if x0 >= x1 or y0 >= y1 or blocked[y0:y1, x0:x1].any():
            continue
        corners = rect(cx, cy, length, width, angle)
        roof = _ROOFS[int(rng.integers(len(_ROOFS)))] * rng.uniform(0.9, 1.1)
        shadow = np.round((corners + off) * 16).astype(np.int32)
        body = np.round(corners * 16).astype(np.int32)
        cv2.fillPoly(canvas, [shadow], (40.0, 40.0, 42.0), cv2.LINE_8, 4)
        cv2.fillPoly(canvas, [body], tuple(float(c) for c in roof), cv2.LINE_8, 4)
        blocked[y0:y1, x0:x1] = True


def add_clutter(world: World, placer: Placer, modules: tuple[str, ...]) -> None:
    """Trees everywhere they fit, buildings in urban scenes."""
    blocked = blocked_mask(world, placer)
    urban = world.terrain == "urban" or any(m in modules for m in ("industry", "rail", "arena"))
    if urban:
        add_buildings(world, blocked, int(world.rng.integers(60, 160)))
    density = {"grass": 0.7, "soil": 0.45, "urban": 0.3, "sand": 0.1}[world.terrain]
    add_trees(world, blocked, density * world.rng.uniform(0.4, 1.2))
