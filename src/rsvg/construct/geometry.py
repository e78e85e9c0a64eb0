"""Attribute a4: geometry.

* Classes with a fixed shape get it without looking (:data:`FIXED_GEOMETRY`): storage tanks and ground track
  fields are oval (DIOR-RSVG's word for its round tanks too: it never says "round"), tennis and basketball courts
  rectangular.
* Classes without a describable shape get none (:data:`NO_GEOMETRY`): airport, golf field, harbor,
  expressway service area and toll station, train station, baseball field, airplane, windmill.
* Every other class is measured (below), and the word is said only when it suits the class
  (:data:`MEASURED_GEOMETRY`: a vehicle, ship, bridge, dam or overpass may be slender, a chimney oval, a
  stadium oval or rectangular; nobody calls a car "oval"):

  - the largest external contour (``cv2.findContours``) of the object mask is *reliable* when its area is at
    least ``MIN_CONTOUR_FILL`` (30 %) of the box area;
  - ``slender`` when the longer/shorter side ratio reaches ``SLENDER_ASPECT`` (2.5), measured on the box, or on
    the contour's minimum-area rectangle when the contour fills that rectangle by 70 %+ and is reliable or
    spans the box (rectangle's long side >= 90 % of the box's longer side, as a slender object lying
    diagonally does: its box is square and mostly background);
  - ``oval`` (round) when the reliable contour has circularity ``4 pi A / P^2`` >= ``ROUND_CIRCULARITY`` (0.80),
    fills 65-88 % of its box (a disc fills 78.5 %, a square 100 %), a box aspect under 1.25, and its polygon
    approximation (``cv2.approxPolyDP``, tolerance 4 % of the perimeter) has more than 5 vertices;
  - ``square`` / ``rectangular`` when the reliable contour fills its minimum-area rectangle by
    ``RECT_FILL`` (85 %)+ and approximates to 4 vertices: square under aspect ``SQUARE_ASPECT`` (1.2),
    rectangular from ``RECT_ASPECT`` (1.35) (in between: not said). ``square`` is never written (DIOR-RSVG has no
    such word, :data:`~rsvg.construct.vocabulary.DESCRIBABLE_GEOMETRIES`): it only keeps "rectangular" from
    singling out one object among square ones;
  - otherwise none.

Plausible geometry (what a reader might accept): a slender object is also rectangular; a square one also
rectangular; a rectangular one also slender from aspect 2.1 and square under 1.35. When no shape is measured, every
word is plausible except ``slender`` under aspect 2.1 and ``square`` from aspect 1.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from rsvg.construct.vocabulary import DESCRIBABLE_GEOMETRIES
from rsvg.data.records import BoxXYXY

FIXED_GEOMETRY: dict[str, str] = {
    "storagetank": "oval",
    "tenniscourt": "rectangular",
    "basketballcourt": "rectangular",
    "groundtrackfield": "oval",
}
NO_GEOMETRY: frozenset[str] = frozenset(
    {
        "airport",
        "golffield",
        "harbor",
        "Expressway-Service-area",
        "Expressway-toll-station",
        "trainstation",
        "baseballfield",
        "airplane",
        "windmill",
    }
)
MEASURED_GEOMETRY: dict[str, frozenset[str]] = {
    "vehicle": frozenset({"slender"}),
    "ship": frozenset({"slender"}),
    "bridge": frozenset({"slender"}),
    "dam": frozenset({"slender"}),
    "overpass": frozenset({"slender"}),
    "chimney": frozenset({"oval"}),
    "stadium": frozenset({"oval", "rectangular"}),
}
MIN_CONTOUR_FILL = 0.30
SLENDER_ASPECT = 2.5
PLAUSIBLE_SLENDER_ASPECT = 2.1
ROUND_CIRCULARITY = 0.80
SQUARE_ASPECT = 1.2
RECT_ASPECT = 1.35
RECT_FILL = 0.85


@dataclass(frozen=True)
class GeometryResult:
    """The geometry word (``None``: not said) and the words a reader could accept for the object."""

    geometry: str | None
    plausible: frozenset[str]  # words a reader could accept; empty for classes without a geometry


@dataclass(frozen=True)
class ShapeMeasures:
    """Contour measurements of an object mask."""

    reliable: bool
    circularity: float = 0.0
    extent: float = 0.0  # contour area / box area
    rect_fill: float = 0.0  # contour area / minimum-area rectangle area
    rect_aspect: float = 1.0  # longer / shorter side of the minimum-area rectangle
    rect_span: float = 0.0  # longer side of the minimum-area rectangle / longer side of the box
    vertices: int = 0


def measure_shape(mask: np.ndarray) -> ShapeMeasures:
    """Measure the largest external contour of a boolean mask (the box's pixel grid)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return ShapeMeasures(False)
    contour = max(contours, key=cv2.contourArea)
    if len(contour) < 3:
        return ShapeMeasures(False)
    # Pixel-centre contours lose half a pixel all round: measure the area the pixels cover.
    length = cv2.arcLength(contour, True)
    area = float(cv2.contourArea(contour)) + 0.5 * length + 1.0
    box_area = float(mask.shape[0] * mask.shape[1])
    (_, (rw, rh), _) = cv2.minAreaRect(contour)
    rw, rh = rw + 1.0, rh + 1.0
    approx = cv2.approxPolyDP(contour, 0.04 * length, True)
    return ShapeMeasures(
        reliable=area >= MIN_CONTOUR_FILL * box_area,
        circularity=4 * math.pi * area / (length + math.pi) ** 2,
        extent=area / box_area,
        rect_fill=min(area / (rw * rh), 1.0),
        rect_aspect=max(rw, rh) / min(rw, rh),
        rect_span=max(rw, rh) / max(mask.shape),
        vertices=len(approx),
    )


def _aspect(box: BoxXYXY) -> float:
    w, h = box[2] - box[0], box[3] - box[1]
    return max(w, h) / max(min(w, h), 1e-9)


def _plausible(word: str | None, aspect: float) -> frozenset[str]:
    if word is None:
        words = {"rectangular", "oval"}
        if aspect < 1.5:
            words.add("square")
        if aspect >= PLAUSIBLE_SLENDER_ASPECT:
            words.add("slender")
        return frozenset(words)
    words = {word}
    if word in ("slender", "square"):
        words.add("rectangular")
    if word == "rectangular":
        if aspect >= PLAUSIBLE_SLENDER_ASPECT:
            words.add("slender")
        if aspect < RECT_ASPECT:
            words.add("square")
    return frozenset(words)


def object_geometry(category: str, box: BoxXYXY, mask: np.ndarray | None) -> GeometryResult:
    """Geometry of an object of ``category`` in ``box`` (``mask`` over the box's pixels, or None)."""
    if category in FIXED_GEOMETRY:
        return GeometryResult(FIXED_GEOMETRY[category], frozenset({FIXED_GEOMETRY[category]}))
    if category in NO_GEOMETRY:
        return GeometryResult(None, frozenset())
    box_aspect = _aspect(box)
    shape = measure_shape(mask) if mask is not None and mask.any() else ShapeMeasures(False)
    aspect = box_aspect
    if shape.rect_fill >= 0.7 and (shape.reliable or shape.rect_span >= 0.9):
        aspect = max(box_aspect, shape.rect_aspect)
    word: str | None = None
    if aspect >= SLENDER_ASPECT:
        word = "slender"
    elif shape.reliable:
        if (
            shape.circularity >= ROUND_CIRCULARITY
            and 0.65 <= shape.extent <= 0.88
            and box_aspect < 1.25
            and shape.vertices > 5
        ):
            word = "oval"
        elif shape.rect_fill >= RECT_FILL and shape.vertices == 4:
            if aspect < SQUARE_ASPECT:
                word = "square"
            elif aspect >= RECT_ASPECT:
                word = "rectangular"
    plausible = _plausible(word, aspect)
    if word not in MEASURED_GEOMETRY.get(category, DESCRIBABLE_GEOMETRIES):
        word = None  # measured, but not a word for this class: still used to tell other objects apart
    return GeometryResult(word, plausible)
