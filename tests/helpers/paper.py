"""Eight samples for the paper-sized configs to memorise (the ``paper_scale`` tests)."""

from __future__ import annotations

from pathlib import Path

from helpers.datasets import write_official_xml
from helpers.scenes import COLORS, blank, draw_rect

# eight 800×800 scenes (DIOR's image size), one object each, placed and sized differently
BOXES = [
    (60, 80, 300, 260),
    (420, 60, 720, 330),
    (100, 420, 330, 720),
    (480, 460, 760, 740),
    (280, 250, 560, 520),
    (40, 300, 260, 600),
    (520, 240, 780, 470),
    (250, 540, 580, 780),
]
NAMES = ["vehicle", "ship", "storagetank", "airplane", "bridge", "dam", "chimney", "windmill"]


def eight_samples(root: Path) -> Path:
    """A DIOR-RSVG-layout folder whose train, val and test splits are the same eight samples."""
    import cv2

    colours = list(COLORS.values())
    for k, (box, name) in enumerate(zip(BOXES, NAMES, strict=True)):
        image_id = f"{k:05d}"
        img = blank(800, seed=k)
        draw_rect(img, box, colours[k % len(colours)])
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        objects = [{"name": name, "box": box, "description": f"The {name} in the scene"}]
        write_official_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", 800, 800, objects)
    for split in ("train", "val", "test"):
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in range(8)))
    return root
