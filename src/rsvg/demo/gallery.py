"""A gallery of test predictions — successes and failures — with boxes and attention maps (paper Fig. 6–10)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsvg.data.dior_rsvg import read_grounding_annotations
from rsvg.data.image_io import read_image_rgb
from rsvg.data.xmlio import atomic_write_text
from rsvg.inference import Grounder
from rsvg.results import GroundingResult
from rsvg.viz import FIRST_LOOK, GREEN, RED, answer_boxes, overlay, save_png

#: the width (CSS pixels) the report shows each gallery picture at; the labels are sized for it
SHOWN_WIDTH = 360
#: the labels' text height on the shown picture (CSS pixels), and the boxes' line width there
SHOWN_TEXT_HEIGHT = 13
SHOWN_LINE_WIDTH = 2.2


@dataclass(frozen=True)
class BoxKind:
    """One colour of box a gallery picture can show: its colour and the colour's name, the short label written
    on the picture, its line (``"solid"``, ``"thin"``: half the width, or ``"dashed"``) and what the report's
    legend says of it."""

    colour: tuple[int, int, int]
    colour_name: str
    label: str
    line: str
    meaning: str


#: every box colour the gallery draws, in drawing order: the answer first, solid, then the boxes that could hide
#: under it drawn over it so that it still shows (the first look thin, the truth in dashes)
BOX_KINDS = (
    BoxKind(RED, "red", "answer", "solid", "the model's answer"),
    BoxKind(
        FIRST_LOOK,
        "yellow",
        "first look",
        "thin",
        "the first look's box (the best cell, where the cell heatmap peaks), drawn over the answer when a later "
        "step (ranking, second look, refinement) moved the answer; the caption names those steps",
    ),
    BoxKind(
        GREEN,
        "green",
        "truth",
        "dashed",
        "the ground truth, drawn last, over the answer, so both show where they coincide",
    ),
)
_KIND = {k.colour: k for k in BOX_KINDS}
_ORDER = {k.colour: n for n, k in enumerate(BOX_KINDS)}


def gallery_boxes(
    truth: Sequence[float], result: GroundingResult
) -> list[tuple[Sequence[float], tuple[int, int, int], str]]:
    """The boxes of one gallery picture in drawing order (that of :data:`BOX_KINDS`): the answer's boxes
    (:func:`rsvg.viz.answer_boxes`: the answer, and the first look's when a later step moved the answer) and the
    truth, each with its short label (the caption says which steps moved the answer)."""
    boxes = [(box, colour, _KIND[colour].label) for box, colour, _ in answer_boxes(result)]
    boxes.append((truth, GREEN, _KIND[GREEN].label))
    return sorted(boxes, key=lambda b: _ORDER[b[1]])


def gallery_picture(rgb: np.ndarray, truth: Sequence[float], result: GroundingResult) -> np.ndarray:
    """One gallery picture: the attention map and :func:`gallery_boxes` over ``rgb``, each box with the line of
    its :class:`BoxKind`, with labels and lines sized so they read at :data:`SHOWN_WIDTH` (``SHOWN_TEXT_HEIGHT``
    px letters however large the scene)."""
    shown = rgb.shape[1] / SHOWN_WIDTH  # image pixels per shown pixel
    boxes = gallery_boxes(truth, result)
    lines = [_KIND[colour].line for _, colour, _ in boxes]
    return overlay(
        rgb,
        boxes,
        result.attention,
        text_height=SHOWN_TEXT_HEIGHT * shown,
        thickness=max(2, math.ceil(SHOWN_LINE_WIDTH * shown)),
        dashed={k for k, line in enumerate(lines) if line == "dashed"},
        thin={k for k, line in enumerate(lines) if line == "thin"},
    )


def _spread(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` rows taken round-robin over categories, so the gallery shows many kinds of objects."""
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r)
    out: list[dict[str, Any]] = []
    while len(out) < n and any(by_cat.values()):
        for cat in sorted(by_cat):
            if by_cat[cat] and len(out) < n:
                out.append(by_cat[cat].pop(0))
    return out


def make_gallery(checkpoint: Path, root: Path, predictions: Path, out: Path, n: int = 12) -> list[dict[str, Any]]:
    """Draw ``n`` test samples (half successes with IoU > 0.5, half failures) with the boxes of
    :data:`BOX_KINDS` (ground truth, answer, first look) and the model's attention (:func:`gallery_picture`);
    writes PNGs and ``gallery.json`` under ``out``."""
    rows = [json.loads(x) for x in Path(predictions).read_text().splitlines() if x.strip()]
    good = sorted((r for r in rows if r["iou"] > 0.5), key=lambda r: -r["iou"])
    bad = sorted((r for r in rows if r["iou"] <= 0.5), key=lambda r: r["iou"])
    chosen = _spread(good, (n + 1) // 2) + _spread(bad, n // 2)
    paths = {s.index: s.image_path for s in read_grounding_annotations(root).samples}
    grounder = Grounder.from_checkpoint(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for k, r in enumerate(chosen):
        rgb = read_image_rgb(paths[r["index"]])
        # a dataset query, read as evaluation read it (cut at the model's max_tokens)
        res = grounder.predict(rgb, r["query"], return_attention=True, truncate=True)
        name = f"{k:02d}_{r['image_id']}_{r['index']}.png"
        save_png(out / name, gallery_picture(rgb, r["gt_box"], res))
        items.append(
            {
                "file": name,
                "query": r["query"],
                "category": r["category"],
                "iou": r["iou"],
                "success": r["iou"] > 0.5,
                "image_id": r["image_id"],
                "index": r["index"],
                "provenance": res.provenance(),
            }
        )
    atomic_write_text(out / "gallery.json", json.dumps(items, indent=2))
    return items
