"""A picture of a scene's overview (its decimated read) with the ranked answers drawn on it."""

from __future__ import annotations

import numpy as np

from rsvg.geo.scene import SceneGrounding
from rsvg.viz import RED, overlay

OTHER_ANSWERS = (250, 160, 30)  # answers after the first, in orange
#: a box is drawn at least this many overview pixels a side, so small objects stay visible on a large scene
MIN_DRAWN_SIDE = 8


def overview_picture(result: SceneGrounding) -> np.ndarray:
    """The overview in RGB with each answer's box (the best in red, the others in orange), labelled with its
    rank and score."""
    fx, fy = result.overview_factor
    boxes = []
    for answer in reversed(result.answers):  # the best drawn last, on top
        x1, y1, x2, y2 = answer.box
        box = _at_least((x1 / fx, y1 / fy, x2 / fx, y2 / fy), MIN_DRAWN_SIDE)
        colour = RED if answer.rank == 1 else OTHER_ANSWERS
        boxes.append((box, colour, f"#{answer.rank} {answer.score:.2f}"))
    return overlay(result.overview, boxes)


def _at_least(box: tuple[float, float, float, float], side: float) -> tuple[float, float, float, float]:
    """The box grown about its centre to at least ``side`` on each axis."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = max(x2 - x1, side), max(y2 - y1, side)
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
