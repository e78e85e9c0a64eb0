"""Pictures of predictions: boxes and attention heatmaps drawn over an image."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import cv2
import numpy as np

from rsvg.data.xmlio import atomic_write_bytes
from rsvg.results import GroundingResult

GREEN = (40, 200, 60)  # ground truth (the paper's figures: green = ground truth, red = prediction)
RED = (230, 40, 40)
FIRST_LOOK = (250, 220, 40)  # the first look's box when a later step moved the answer

FONT = cv2.FONT_HERSHEY_SIMPLEX
#: the text height :func:`cv2.getTextSize` gives at font scale 1 (capitals are about 4/5 of it)
_TEXT_HEIGHT = cv2.getTextSize("H", FONT, 1.0, 1)[0][1]


def overlay(
    image: np.ndarray,
    boxes: Sequence[tuple[Sequence[float], tuple[int, int, int], str]] = (),
    attention: np.ndarray | None = None,
    alpha: float = 0.7,
    *,
    text_height: float | None = None,
    thickness: int | None = None,
    dashed: Collection[int] = (),
    thin: Collection[int] = (),
) -> np.ndarray:
    """RGB image with an optional attention heatmap (H×W in 0..1) blended in and labelled boxes drawn on top.

    The heatmap's opacity follows its values: ``alpha`` where the map is 1, fading to none where it is 0, so the
    picture is tinted only where the model looks and stays as it is elsewhere (the web page draws it the same way).

    Boxes are drawn in the given order, so a later box lies over an earlier one; the boxes whose indices are in
    ``dashed`` are drawn as dashes, so an earlier box on the same place still shows in the gaps, and those in
    ``thin`` at half the line width, so an earlier box on the same place still shows either side. Labels are drawn
    after every box (no line crosses a label), each placed by :func:`place_labels`: inside the image and clear of
    the labels placed before it. ``text_height`` is the labels' text height in image pixels, as
    :func:`cv2.getTextSize` measures it (default: grows with the image, from about 11 px); ``thickness`` the
    boxes' line width (default: grows with the image, from 2 px).
    """
    out = np.ascontiguousarray(image[..., :3]).copy()
    height, width = out.shape[:2]
    if attention is not None:
        heat, values = heat_colors(attention)
        weight = (alpha / 255.0 * values.astype(np.float32))[..., None]
        out = np.rint(out * (1 - weight) + cv2.cvtColor(heat, cv2.COLOR_BGR2RGB) * weight).astype(np.uint8)
    line = thickness or max(2, round(max(height, width) / 300))
    drawn = []
    for k, (box, color, _) in enumerate(boxes):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        width_k = max(1, line // 2) if k in thin else line
        if k in dashed:
            _dashed_rectangle(out, (x1, y1), (x2, y2), color, width_k)
        else:
            cv2.rectangle(out, (x1, y1), (x2, y2), color, width_k)
        drawn.append((x1, y1, x2, y2))
    labelled = [(k, label) for k, (_, _, label) in enumerate(boxes) if label]
    if not labelled:
        return out
    size = text_height or _TEXT_HEIGHT * max(0.4, max(height, width) / 1600)
    fonts, sizes = [], []
    for _, label in labelled:
        scale = size / _TEXT_HEIGHT
        weight = max(1, round(scale * 1.4))
        (tw, th), base = cv2.getTextSize(label, FONT, scale, weight)
        pad = max(2, round(th / 4))
        while tw + 2 * pad > width and scale > 0.1:  # a label wider than the image is written smaller, to fit
            scale = max(0.1, scale * 0.9 * max(width - 2 * pad, 1) / max(tw, 1))
            (tw, th), base = cv2.getTextSize(label, FONT, scale, weight)
        fonts.append((scale, weight, pad, base))
        sizes.append((tw + 2 * pad, th + base + 2 * pad))
    places = place_labels([drawn[k] for k, _ in labelled], sizes, width, height)
    for (k, label), (scale, weight, pad, base), (lx1, ly1, lx2, ly2) in zip(labelled, fonts, places, strict=True):
        cv2.rectangle(out, (lx1, ly1), (lx2 - 1, ly2 - 1), boxes[k][1], -1)
        ink = _ink(boxes[k][1])
        cv2.putText(out, label, (lx1 + pad, ly2 - pad - base), FONT, scale, ink, weight, cv2.LINE_AA)
    return out


def heat_colors(attention: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An H×W map in 0..1 as JET colours (BGR, uint8) and its values as 0..255 (NaN read as 0, the rest clipped):
    the colours and the opacity of every heatmap drawn, in pictures (:func:`overlay`) and on the web page."""
    values = np.clip(np.nan_to_num(attention.astype(np.float32), nan=0.0) * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(values, cv2.COLORMAP_JET), values


def _ink(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """White on a dark label, black on a light one (yellow), so every label reads."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def place_labels(
    boxes: Sequence[Sequence[float]], sizes: Sequence[tuple[int, int]], width: int, height: int
) -> list[tuple[int, int, int, int]]:
    """Where to draw each box's label: ``(x1, y1, x2, y2)`` rectangles (``x2``, ``y2`` exclusive) of the given
    ``(width, height)`` sizes, each inside the ``width × height`` image and, where room allows, overlapping none
    of the labels placed before it.

    A label sits at its box's left edge, tried in this order: just above the box, inside its top, just below it,
    inside its bottom, then above or below each label already placed (stacked); each try is shifted into the
    image. The first try that overlaps no earlier label wins; when none is clear, the one overlapping least."""
    placed: list[tuple[int, int, int, int]] = []
    for box, (w, h) in zip(boxes, sizes, strict=True):
        x1, y1, _, y2 = (round(float(v)) for v in box)
        tries = [(x1, y1 - h), (x1, y1), (x1, y2), (x1, y2 - h)]
        tries += [(x1, y) for other in placed for y in (other[3], other[1] - h)]
        rects = [_inside(x, y, w, h, width, height) for x, y in tries]
        placed.append(min(rects, key=lambda r: _overlaps(r, placed)))  # the first of the least overlapping
    return placed


def _inside(x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """A ``w × h`` rectangle at ``(x, y)`` shifted into the image (to its top-left corner if larger than it)."""
    x = max(0, min(x, width - w))
    y = max(0, min(y, height - h))
    return x, y, x + w, y + h


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """The area two rectangles share (0 for rectangles that only touch)."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _overlaps(rect: tuple[int, int, int, int], placed: Sequence[tuple[int, int, int, int]]) -> int:
    return sum(_overlap(rect, other) for other in placed)


def _dashed_rectangle(
    image: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], color: tuple[int, int, int], thickness: int
) -> None:
    """A rectangle of dashes (each 3 line widths long, gaps 2 line widths) drawn on ``image`` in place."""
    (x1, y1), (x2, y2) = p1, p2
    dash, gap = 3 * thickness + 2, 2 * thickness
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        if length == 0:
            continue
        dx, dy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
        for start in range(0, length, dash + gap):
            end = min(start + dash, length)
            cv2.line(
                image,
                (round(a[0] + dx * start), round(a[1] + dy * start)),
                (round(a[0] + dx * end), round(a[1] + dy * end)),
                color,
                thickness,
            )


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB array as PNG (atomically)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode {path}")
    atomic_write_bytes(Path(path), buf.tobytes())


def answer_boxes(result: GroundingResult) -> list[tuple[Sequence[float], tuple[int, int, int], str]]:
    """The boxes a picture of an answer shows: the answer, labelled with the steps that moved it, and then the
    first look's box too (the one the cell heatmap's peak belongs to), so the picture never contradicts itself."""
    moved = result.moved_by
    if not moved or result.first_look_box is None:
        return [(result.box, RED, "prediction")]
    return [
        (result.first_look_box, FIRST_LOOK, "first look (heatmap)"),
        (result.box, RED, "answer after " + " + ".join(moved)),
    ]
