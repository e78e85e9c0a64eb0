"""Pictures of predictions: boxes and attention heatmaps drawn over an image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from rsvg.data.xmlio import atomic_write_bytes
from rsvg.results import GroundingResult

GREEN = (40, 200, 60)  # ground truth (the paper's figures: green = ground truth, red = prediction)
RED = (230, 40, 40)
FIRST_LOOK = (250, 220, 40)  # the first look's box when a later step moved the answer


def overlay(
    image: np.ndarray,
    boxes: Sequence[tuple[Sequence[float], tuple[int, int, int], str]] = (),
    attention: np.ndarray | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """RGB image with an optional attention heatmap (H×W in 0..1) blended in and labelled boxes drawn on top."""
    out = np.ascontiguousarray(image[..., :3]).copy()
    if attention is not None:
        heat = cv2.applyColorMap(np.clip(attention * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        out = cv2.addWeighted(out, 1 - alpha, heat, alpha, 0)
    thickness = max(2, round(max(out.shape[:2]) / 300))
    for box, color, label in boxes:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        if label:
            scale = max(0.4, max(out.shape[:2]) / 1600)
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = max(y1, th + 4)
            cv2.rectangle(out, (x1, ty - th - 4), (x1 + tw + 4, ty), color, -1)
            cv2.putText(out, label, (x1 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


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
