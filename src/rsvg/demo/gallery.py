"""A gallery of test predictions — successes and failures — with boxes and attention maps (paper Fig. 6–10)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from rsvg.data.dior_rsvg import read_grounding_annotations
from rsvg.data.image_io import read_image_rgb
from rsvg.data.xmlio import atomic_write_text
from rsvg.inference import Grounder
from rsvg.viz import GREEN, answer_boxes, overlay, save_png


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
    """Draw ``n`` test samples (half successes with IoU > 0.5, half failures) with ground truth (green),
    prediction (red; the first look's box in yellow when a later step moved it) and the model's attention;
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
        picture = overlay(rgb, [(r["gt_box"], GREEN, "truth"), *answer_boxes(res)], res.attention)
        save_png(out / name, picture)
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
