"""The state of a scene under construction: canvas, terrain masks, roads and the sites objects can use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rsvg.synth.geometry import direction, place
from rsvg.synth.layer import Slot


@dataclass
class Road:
    """A straight road (or railway) across the image: centre line ``p0 + t * dir`` for ``tmin <= t <= tmax``."""

    kind: str  # "highway", "local" or "rail"
    p0: np.ndarray
    angle: float
    width: float
    tmin: float
    tmax: float

    @property
    def dir(self) -> np.ndarray:
        return direction(self.angle)

    def point(self, t: float) -> np.ndarray:
        return self.p0 + t * self.dir

    def samples(self, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Parameters and points every ``step`` pixels along the part inside the image."""
        t = np.arange(self.tmin, self.tmax, step)
        return t, self.p0[None, :] + t[:, None] * self.dir[None, :]


@dataclass(frozen=True)
class Span:
    """A stretch of a road that crosses water (a bridge) or a highway (an overpass), or a dam line."""

    kind: str  # "bridge", "overpass" or "dam"
    cx: float
    cy: float
    angle: float  # along the span
    length: float
    width: float
    road: str = "local"  # what the span carries: "local", "highway" or "rail"


@dataclass(frozen=True)
class Coast:
    """Sea along one image side: at coordinate ``u`` along that side the sea reaches ``depth[u]`` pixels in."""

    side: str  # "top", "bottom", "left" or "right"
    depth: np.ndarray
    size: int

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        """Image (x, y) of coast coordinates: ``u`` along the side, ``v`` distance from that image edge."""
        last = self.size - 1
        return {
            "top": (u, v),
            "bottom": (u, last - v),
            "left": (v, u),
            "right": (last - v, u),
        }[self.side]

    @property
    def inland_angle(self) -> float:
        """Direction pointing from the sea towards the land."""
        return {"top": math.pi / 2, "bottom": -math.pi / 2, "left": 0.0, "right": math.pi}[self.side]


AIRPORT_REACH = 190.0  # furthest reach of taxiway, apron and terminal from the runway axis (800-pixel units)


@dataclass(frozen=True)
class AirportPlan:
    """Where an airport goes: runway centre, direction and length, the side of its apron, an optional crossing
    runway (offset along the main one, angle to it)."""

    cx: float
    cy: float
    angle: float
    runway: float
    side: int
    cross: tuple[float, float] | None

    def footprints(self, s: float) -> list[tuple[float, float, float, float, float, float, float]]:
        """Local rectangles ``(cx, cy, angle, x0, y0, x1, y1)`` the airport can cover."""
        y0, y1 = sorted((-14 * s * self.side, AIRPORT_REACH * s * self.side))
        parts = [(self.cx, self.cy, self.angle, -self.runway / 2 - 4, y0, self.runway / 2 + 4, y1)]
        if self.cross is not None:
            c = place([(self.cross[0], 0.0)], self.cx, self.cy, self.angle)[0]
            half = 0.3 * self.runway + 4
            parts.append((float(c[0]), float(c[1]), self.angle + self.cross[1], -half, -10 * s, half, 10 * s))
        return parts


def inside_footprints(pts: np.ndarray, parts: list[tuple[float, ...]], pad: float = 0.0) -> np.ndarray:
    """Which points fall in any of the local rectangles (grown by ``pad``)."""
    hit = np.zeros(len(pts), dtype=bool)
    for cx, cy, angle, x0, y0, x1, y1 in parts:
        d = pts - (cx, cy)
        c, s = math.cos(angle), math.sin(angle)
        u, v = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
        hit |= (u >= x0 - pad) & (u <= x1 + pad) & (v >= y0 - pad) & (v <= y1 + pad)
    return hit


@dataclass
class World:
    """Everything generation steps share: the RGB canvas, masks and the sites objects can be put on."""

    size: int
    rng: np.random.Generator
    canvas: np.ndarray  # size x size x 3 uint8 RGB
    terrain: str
    sun: np.ndarray  # unit vector: the direction shadows fall
    lean: np.ndarray  # unit vector: where tall things lean in this (slightly off-nadir) view
    water: np.ndarray  # bool
    road: np.ndarray  # bool: paved roads and railways
    highway: np.ndarray  # bool: highway surface only
    rail: np.ndarray  # bool: railway track beds only
    roads: list[Road] = field(default_factory=list)
    river: np.ndarray | None = None  # river centre line points (n x 2)
    coast: Coast | None = None
    spans: list[Span] = field(default_factory=list)
    spans_used: set[int] = field(default_factory=set)  # indices of spans that got their object
    reserved: list[tuple[float, float, float, float]] = field(default_factory=list)  # boxes kept for spans
    slots: list[tuple[Slot, int]] = field(default_factory=list)  # (slot, index of the object it belongs to)
    grid: float = 0.0  # main street direction: buildings, courts and tank farms align with it
    groups: dict[str, list[tuple[float, float, float, float, float]]] = field(default_factory=dict)
    group_colors: dict[str, str] = field(default_factory=dict)
    airport: AirportPlan | None = None
    keepout: list[tuple[float, float, float, float, float, float, float]] = field(default_factory=list)

    @property
    def s(self) -> float:
        """Pixels per unit: sizes are given for 800 x 800 images and scaled by this."""
        return self.size / 800.0

    def roads_of(self, *kinds: str) -> list[Road]:
        return [r for r in self.roads if r.kind in kinds]

    def inside(self, x: float, y: float, margin: float = 0.0) -> bool:
        return margin <= x < self.size - margin and margin <= y < self.size - margin
