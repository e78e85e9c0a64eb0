"""Tiny datasets written on the fly (no test reads files from outside the repository)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def write_image(path: Path, width: int, height: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def write_official_xml(path: Path, filename: str, width: int, height: int, objects: Sequence[dict]) -> None:
    """An annotation file as the official DIOR-RSVG download writes it (tags in its order, no extras)."""
    parts = [
        "<annotation>",
        f"  <filename>{filename}</filename>",
        "  <source><database>DIOR</database></source>",
        f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
    ]
    for o in objects:
        x1, y1, x2, y2 = o["box"]
        parts += [
            "  <object>",
            f"    <name>{o['name']}</name>",
            "    <pose>Unspecified</pose>",
            f"    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>",
            f"    <description>{o['description']}</description>",
            "  </object>",
        ]
    parts.append("</annotation>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")


# Three images; files are created out of name order so that directory order differs from sorted order.
OFFICIAL_IMAGES = {
    "00003": [
        {"name": "vehicle", "box": (10, 10, 30, 40), "description": "The gray vehicle on the left"},
        {"name": "vehicle", "box": (100, 10, 130, 40), "description": "The white vehicle on the right"},
    ],
    "00001": [
        {"name": "storagetank", "box": (50, 60, 90, 100), "description": "A round storage tank in the middle"},
    ],
    "00002": [
        {"name": "Expressway-Service-area", "box": (5, 5, 150, 120), "description": "The expressway service area"},
        {"name": "ship", "box": (20, 130, 60, 150), "description": "A ship below the expressway service area"},
        {"name": "ship", "box": (120, 130, 160, 150), "description": "The large ship on the lower right"},
    ],
}
# Global order: 00001:0 -> 0, 00002:0..2 -> 1..3, 00003:0..1 -> 4..5.
OFFICIAL_DESCRIPTIONS_IN_ORDER = [
    "A round storage tank in the middle",
    "The expressway service area",
    "A ship below the expressway service area",
    "The large ship on the lower right",
    "The gray vehicle on the left",
    "The white vehicle on the right",
]


def make_official_dataset(root: Path, splits: dict[str, list[int]] | None = None) -> Path:
    for image_id, objects in OFFICIAL_IMAGES.items():
        write_official_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", 200, 160, objects)
        write_image(root / "JPEGImages" / f"{image_id}.jpg", 200, 160, seed=int(image_id))
    splits = splits if splits is not None else {"train": [5, 0, 3], "val": [1], "test": [4, 2]}
    for name, idx in splits.items():
        (root / f"{name}.txt").write_text("".join(f"{i}\n" for i in idx))
    return root
