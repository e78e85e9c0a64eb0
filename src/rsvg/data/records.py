"""Typed records shared by the readers, writers, checks and datasets.

Boxes are ``(xmin, ymin, xmax, ymax)`` floats in original image pixels, read as written in the files
(no "+1", no rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsvg.errors import DatasetError, DatasetNotFoundError  # noqa: F401 (re-exported)

BoxXYXY = tuple[float, float, float, float]


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset: where it is and what it is."""

    file: str
    kind: str
    message: str
    object_index: int | None = None
    severity: str = "error"  # "error" makes a dataset unusable as is; "warning" is worth a look

    def __str__(self) -> str:
        where = self.file if self.object_index is None else f"{self.file} [object {self.object_index}]"
        return f"{self.severity}: {where}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class DetectionObject:
    """One object of a detection annotation."""

    category: str  # canonical DIOR class
    box: BoxXYXY
    index: int  # position among the <object> elements of its file (document order, from 0)


@dataclass(frozen=True)
class DetectionImage:
    """One image of a detection dataset and its objects."""

    image_id: str
    filename: str
    width: int
    height: int
    annotation_path: Path
    image_path: Path | None
    objects: tuple[DetectionObject, ...] = field(default=())


@dataclass(frozen=True)
class GroundingSample:
    """One image / expression / box triplet of a DIOR-RSVG-style dataset."""

    index: int  # global object index, as the split files count
    image_id: str
    image_path: Path
    annotation_path: Path
    object_in_file: int
    width: int
    height: int
    category: str
    box: BoxXYXY
    description: str
