"""A DIOR-RSVG folder as the web pages see it: objects by global index, their split, and the images to serve."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from rsvg.data.dior_rsvg import SPLITS, read_grounding_annotations, read_split_file
from rsvg.data.records import DatasetError, GroundingSample

DEFAULT_DB_NAME = "review.sqlite3"


def dataset_fingerprint(samples: list[GroundingSample]) -> str:
    """A hash of what each global index means (image, position, class, box, text): a review file made for
    one dataset is refused by another, or by the same one after its annotations changed."""
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.index}\t{s.image_id}\t{s.object_in_file}\t{s.category}\t{s.box}\t{s.description}\n".encode())
    return h.hexdigest()


def default_db_path(root: Path) -> Path:
    """Where the review decisions of ``root`` live unless told otherwise: next to its annotations."""
    return Path(root) / DEFAULT_DB_NAME


class ReviewDataset:
    """The objects of a grounding dataset in global-index order, with their split and image lookup."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        ann = read_grounding_annotations(self.root)
        fatal = [p for p in ann.problems if p.kind == "malformed_xml"]
        if fatal:
            raise DatasetError(f"{fatal[0]} (run `rsvg check-data {self.root}`)")
        self.samples: list[GroundingSample] = ann.samples
        self.splits: dict[str, list[int]] = {}
        for split in SPLITS:
            path = self.root / f"{split}.txt"
            if path.is_file():
                self.splits[split] = read_split_file(path)
        self.split_of: dict[int, str] = {i: name for name, idx in self.splits.items() for i in idx}
        image_dir = self.root / "JPEGImages"
        # Only images that the annotations name, and only from ROOT/JPEGImages (the reader builds every path
        # as JPEGImages/<base name>): nothing a request says ever becomes a path.
        self.images: dict[str, Path] = {
            s.image_id: s.image_path for s in self.samples if s.image_path.parent == image_dir
        }
        self.sizes: dict[str, tuple[int, int]] = {s.image_id: (s.width, s.height) for s in self.samples}
        self.categories: list[str] = sorted({s.category for s in self.samples}, key=str.lower)
        self.fingerprint = dataset_fingerprint(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, image_id: str) -> Path | None:
        """The file of a known image id, or ``None`` (unknown ids, missing files)."""
        path = self.images.get(image_id)
        return path if path is not None and path.is_file() else None

    def expressions_by_image(self, limit: int = 5) -> Mapping[str, list[str]]:
        """Up to ``limit`` expressions per image (suggestions for the grounding page)."""
        out: dict[str, list[str]] = {}
        for s in self.samples:
            texts = out.setdefault(s.image_id, [])
            if len(texts) < limit and s.description:
                texts.append(s.description)
        return out
