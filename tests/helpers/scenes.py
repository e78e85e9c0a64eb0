"""Crafted numpy scenes and tiny VOC detection datasets for the construction tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rsvg.data.xmlio import add_object, annotation_element, write_xml

COLORS = {
    "red": (200, 35, 35),
    "blue": (40, 90, 195),
    "green": (60, 150, 60),
    "yellow": (230, 205, 50),
    "white": (236, 236, 230),
    "gray": (128, 128, 126),
    "black": (30, 30, 32),
}
BACKGROUND = (150, 130, 95)  # a sandy brown, unlike every object colour above


def blank(size: int = 400, seed: int = 0, color: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """A uniform background with mild noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float64)
    img[:] = color
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def draw_rect(img: np.ndarray, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> tuple:
    x1, y1, x2, y2 = box
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), color, -1)
    return (float(x1), float(y1), float(x2), float(y2))


def draw_disc(img: np.ndarray, cx: int, cy: int, r: int, color: tuple[int, int, int]) -> tuple:
    cv2.circle(img, (cx, cy), r, color, -1, lineType=cv2.LINE_AA)
    return (float(cx - r), float(cy - r), float(cx + r + 1), float(cy + r + 1))


def random_scene(seed: int, size: int = 400) -> tuple[np.ndarray, list[tuple[str, tuple]]]:
    """A scene with repeated vehicles and storage tanks and a few single objects, non-overlapping."""
    rng = np.random.default_rng(seed)
    img = blank(size, seed)
    objects: list[tuple[str, tuple]] = []
    taken: list[tuple[float, float, float, float]] = []

    def free(box: tuple) -> bool:
        return all(box[2] + 6 < t[0] or t[2] + 6 < box[0] or box[3] + 6 < t[1] or t[3] + 6 < box[1] for t in taken)

    names = list(COLORS)
    plan = ["vehicle"] * int(rng.integers(2, 8)) + ["storagetank"] * int(rng.integers(1, 4))
    plan += list(rng.choice(["bridge", "ship", "tenniscourt", "chimney", "airplane"], size=int(rng.integers(1, 4))))
    for category in plan:
        for _ in range(30):
            color = COLORS[names[int(rng.integers(len(names)))]]
            if category == "storagetank" or category == "chimney":
                r = int(rng.integers(8, 30))
                cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
                box = (cx - r, cy - r, cx + r + 1, cy + r + 1)
                if free(box):
                    objects.append((category, draw_disc(img, cx, cy, r, color)))
                    taken.append(box)
                    break
            else:
                long_side = int(rng.integers(12, 60 if category != "vehicle" else 24))
                short = max(4, int(long_side / rng.uniform(1.2, 3.5)))
                w, h = (long_side, short) if rng.random() < 0.5 else (short, long_side)
                x, y = int(rng.integers(2, size - w - 2)), int(rng.integers(2, size - h - 2))
                box = (x, y, x + w, y + h)
                if free(box):
                    objects.append((category, draw_rect(img, box, color)))
                    taken.append(box)
                    break
    return img, objects


def write_voc(root: Path, scenes: dict[str, tuple[np.ndarray, list[tuple[str, tuple]]]]) -> Path:
    """Write scenes as a VOC detection dataset (Annotations/*.xml, JPEGImages/*.jpg)."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for image_id, (img, objects) in scenes.items():
        cv2.imwrite(
            str(root / "JPEGImages" / f"{image_id}.jpg"),
            cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 95],
        )
        xml = annotation_element(f"{image_id}.jpg", img.shape[1], img.shape[0])
        for category, box in objects:
            add_object(xml, category, box)
        write_xml(root / "Annotations" / f"{image_id}.xml", xml)
    return root


def crafted_dataset(root: Path, n: int = 8, size: int = 320, seed: int = 0) -> Path:
    """A VOC detection dataset of ``n`` random crafted scenes."""
    return write_voc(root, {f"{i:05d}": random_scene(seed * 1000 + i, size) for i in range(n)})
