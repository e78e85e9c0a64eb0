"""Reader for detection datasets in the DIOR / Pascal-VOC XML layout.

Official DIOR keeps its horizontal-box XMLs in ``Annotations/Horizontal Bounding Boxes/`` and its images in
``JPEGImages-trainval/`` and ``JPEGImages-test/``; a plain VOC folder has ``Annotations/`` and
``JPEGImages/``. :func:`find_detection_layout` finds either; :func:`read_detection` takes the folders.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rsvg.data.categories import canonical_category
from rsvg.data.image_io import ImageReadError, image_size
from rsvg.data.records import (
    DatasetError,
    DatasetNotFoundError,
    DetectionImage,
    DetectionObject,
    Problem,
)
from rsvg.data.xmlio import child_text, parse_bndbox, parse_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


@dataclass
class DetectionReadResult:
    """Images kept (each with its valid objects only) and every problem found."""

    images: list[DetectionImage]
    problems: list[Problem] = field(default_factory=list)

    @property
    def problem_counts(self) -> Counter:
        return Counter(p.kind for p in self.problems)

    @property
    def num_objects(self) -> int:
        return sum(len(im.objects) for im in self.images)


def find_detection_layout(root: Path) -> tuple[Path, list[Path]]:
    """Locate the annotation folder and image folders of a detection dataset under ``root``."""
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "not found"
        raise DatasetNotFoundError(f"detection dataset folder {root} {what}")
    candidates = [root / "Annotations" / "Horizontal Bounding Boxes", root / "Annotations"]
    ann = next((c for c in candidates if c.is_dir() and any(c.glob("*.xml"))), None)
    if ann is None:
        found = _what_is_there(root / "Annotations")
        raise DatasetNotFoundError(
            f"no annotation XML files under {root} ({found}): expected {root}/Annotations/*.xml (VOC layout) or "
            f"{root}/Annotations/Horizontal Bounding Boxes/*.xml (official DIOR layout)"
        )
    image_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("JPEGImages"))
    if not image_dirs:
        found = _what_is_there(root / "JPEGImages")
        raise DatasetNotFoundError(
            f"no image folder under {root} ({found}): expected JPEGImages/ (or DIOR's JPEGImages-trainval/ and "
            "JPEGImages-test/)"
        )
    return ann, image_dirs


def _what_is_there(path: Path) -> str:
    """A few words on what ``path`` is, for a message about a folder that cannot be used."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is a file, not a folder"
    return f"{path} holds no *.xml file" if path.name == "Annotations" else f"{path} is empty"


def _index_images(image_dirs: Sequence[Path]) -> dict[str, Path]:
    """Map file names and file stems to paths, over all image folders (first folder wins)."""
    index: dict[str, Path] = {}
    for d in image_dirs:
        if not Path(d).is_dir():
            raise DatasetNotFoundError(f"image folder not found: {d}")
        with os.scandir(d) as it:
            for entry in it:
                if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
                    p = Path(entry.path)
                    index.setdefault(p.name, p)
                    index.setdefault(p.stem, p)
    return index


def read_detection(
    annotations_dir: Path,
    image_dirs: Sequence[Path],
    *,
    strict: bool = False,
    class_mapping: Mapping[str, str] | None = None,
) -> DetectionReadResult:
    """Read every ``*.xml`` of ``annotations_dir`` (sorted by file name).

    Problems (malformed XML, missing image, xmin >= xmax or ymin >= ymax, box outside the image, unknown
    class) are reported with their file and object index. With ``strict`` the first problem raises
    :class:`DatasetError`; otherwise the faulty object (or image) is skipped and the problem counted.
    ``class_mapping`` maps other class names to DIOR classes.
    """
    annotations_dir = Path(annotations_dir)
    if not annotations_dir.is_dir():
        raise DatasetNotFoundError(f"annotation folder not found: {annotations_dir}")
    images_by_name = _index_images(image_dirs)
    result = DetectionReadResult(images=[])

    def report(problem: Problem) -> None:
        if strict:
            raise DatasetError(str(problem))
        result.problems.append(problem)

    for xml_path in sorted(annotations_dir.glob("*.xml"), key=lambda p: p.name):
        name = str(xml_path)
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            report(Problem(name, "malformed_xml", str(exc)))
            continue
        except OSError as exc:  # a folder named *.xml, no permission to read
            report(Problem(name, "malformed_xml", f"cannot be read ({exc.strerror or exc})"))
            continue
        filename = child_text(root, "filename") or f"{xml_path.stem}.jpg"
        image_path = images_by_name.get(filename) or images_by_name.get(Path(filename).stem)
        if image_path is None:
            report(Problem(name, "missing_image", f"image {filename!r} not found in {list(map(str, image_dirs))}"))
            continue
        size = parse_size(root)
        if size is None:
            try:
                size = image_size(image_path)
            except ImageReadError as exc:
                report(Problem(name, "unreadable_image", str(exc)))
                continue
        width, height = size
        objects: list[DetectionObject] = []
        for i, obj in enumerate(root.findall("object")):
            raw_name = child_text(obj, "name") or ""
            category = canonical_category(raw_name, class_mapping)
            if category is None:
                report(Problem(name, "unknown_class", f"unknown class {raw_name!r}", i))
                continue
            try:
                box = parse_bndbox(obj)
            except ValueError as exc:
                report(Problem(name, "bad_box", str(exc), i))
                continue
            x1, y1, x2, y2 = box
            if x1 >= x2 or y1 >= y2:
                report(Problem(name, "empty_box", f"xmin >= xmax or ymin >= ymax: {box}", i))
                continue
            if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
                report(Problem(name, "box_outside_image", f"{box} outside the {width}x{height} image", i))
                continue
            objects.append(DetectionObject(category=category, box=box, index=i))
        result.images.append(
            DetectionImage(
                image_id=xml_path.stem,
                filename=image_path.name,
                width=width,
                height=height,
                annotation_path=xml_path,
                image_path=image_path,
                objects=tuple(objects),
            )
        )
    return result


def read_detection_root(
    root: Path, *, strict: bool = False, class_mapping: Mapping[str, str] | None = None
) -> DetectionReadResult:
    """:func:`read_detection` on the folders :func:`find_detection_layout` finds under ``root``."""
    ann, image_dirs = find_detection_layout(root)
    return read_detection(ann, image_dirs, strict=strict, class_mapping=class_mapping)
