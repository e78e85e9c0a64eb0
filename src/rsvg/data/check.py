"""Dataset checks behind ``rsvg check-data``: what a dataset holds and every problem found in it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rsvg.data.dior_rsvg import (
    SPLITS,
    listed_sample_problems,
    read_grounding_annotations,
    read_split_file,
    split_path,
    validate_splits,
)
from rsvg.data.image_io import ImageReadError, image_size
from rsvg.data.records import DatasetError, DatasetNotFoundError, GroundingSample, Problem
from rsvg.data.voc import find_detection_layout, read_detection_root


@dataclass
class CheckReport:
    """Counts, statistics and problems of one dataset folder."""

    root: Path
    kind: str  # "grounding" (DIOR-RSVG layout) or "detection" (DIOR / VOC layout)
    images: int = 0
    objects: int = 0
    split_counts: dict[str, int] = field(default_factory=dict)
    shared_images: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    expression_words: dict[str, float] = field(default_factory=dict)  # mean / min / max / vocabulary
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "kind": self.kind,
            "images": self.images,
            "objects": self.objects,
            "split_counts": self.split_counts,
            "shared_images": self.shared_images,
            "categories": self.categories,
            "expression_words": self.expression_words,
            "problem_counts": dict(Counter(p.kind for p in self.problems)),
            "problems": [str(p) for p in self.problems],
            "ok": self.ok,
        }


def detect_kind(root: Path) -> str:
    """``"grounding"`` when ``root`` has DIOR-RSVG split files, else ``"detection"``."""
    root = Path(root)
    if any((root / f"{s}.txt").is_file() for s in SPLITS) and (root / "Annotations").is_dir():
        return "grounding"
    return "detection"


def image_file_problems(entries: Iterable[tuple[str, Path, int, int]]) -> list[Problem]:
    """Open every distinct image of ``entries`` (``(annotation file, image path, width, height)``; its header and
    its end, no decoding): one problem, filed under the annotation, per image that is missing, empty, truncated or
    unreadable, or whose size is not the ``width`` x ``height`` its annotation's ``<size>`` gives."""
    problems: list[Problem] = []
    seen: set[Path] = set()
    for where, path, expected_w, expected_h in entries:
        if path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            problems.append(Problem(where, "missing_image", _why_missing(path)))
            continue
        try:
            width, height = image_size(path)
        except ImageReadError as exc:
            problems.append(Problem(where, "unreadable_image", str(exc)))
            continue
        if (width, height) != (expected_w, expected_h):
            message = f"<size> says {expected_w}x{expected_h} but {path} is {width}x{height}"
            problems.append(Problem(where, "image_size_mismatch", message))
    return problems


def _why_missing(path: Path) -> str:
    """``PATH not found``, or what is there instead (a folder, or a file where its folder should be)."""
    if path.exists():
        return f"{path} is not a file"
    if path.parent.exists() and not path.parent.is_dir():
        return f"{path} not found: {path.parent} is a file, not a folder"
    return f"{path} not found"


def image_problems(samples: Iterable[GroundingSample]) -> list[Problem]:
    """:func:`image_file_problems` for the images of grounding samples (what train and eval check first)."""
    return image_file_problems((str(s.annotation_path), s.image_path, s.width, s.height) for s in samples)


def check_grounding(root: Path) -> CheckReport:
    """Check a DIOR-RSVG folder: annotations, images on disk, descriptions and the three split files."""
    root = Path(root)
    ann = read_grounding_annotations(root)
    report = CheckReport(root=root, kind="grounding", problems=list(ann.problems))
    report.images = ann.num_images
    report.objects = len(ann.samples)
    report.categories = dict(sorted(Counter(s.category for s in ann.samples).items()))
    report.problems.extend(image_problems(ann.samples))
    lengths = [len(s.description.split()) for s in ann.samples if s.description]
    if lengths:
        vocab = {w.strip(".,;:!?").lower() for s in ann.samples for w in s.description.split()}
        report.expression_words = {
            "mean": sum(lengths) / len(lengths),
            "min": float(min(lengths)),
            "max": float(max(lengths)),
            "vocabulary": float(len(vocab - {""})),
        }
    # The same expression twice in one image cannot single out one object.
    seen: dict[tuple[str, str], int] = {}
    for s in ann.samples:
        key = (s.image_id, s.description.lower().rstrip(". "))
        if s.description and key in seen:
            report.problems.append(
                Problem(
                    str(s.annotation_path),
                    "ambiguous_expression",
                    f"same description as object {seen[key]} of this image: {s.description!r}",
                    s.object_in_file,
                    severity="warning",
                )
            )
        seen.setdefault(key, s.object_in_file)
    splits: dict[str, list[int]] = {}
    for split in SPLITS:
        path = split_path(root, split)
        if not path.is_file():
            what = "is not a file" if path.exists() else "split file not found"
            report.problems.append(Problem(str(path), "missing_split_file", what))
            continue
        try:
            splits[split] = read_split_file(path)
        except DatasetError as exc:
            report.problems.append(Problem(str(path), "bad_split_file", str(exc)))
    split_report = validate_splits(splits, ann.samples, root)
    report.problems.extend(split_report.problems)
    report.split_counts = split_report.counts
    report.shared_images = {f"{a}/{b}": n for (a, b), n in split_report.shared_images.items()}
    # the objects each split lists that train / eval would refuse (load_split decides with the same function)
    reported: set[tuple[str, int | None]] = set()
    for split, indices in splits.items():
        for problem in listed_sample_problems(ann, split, indices):
            if (problem.file, problem.object_index) not in reported:
                reported.add((problem.file, problem.object_index))
                report.problems.append(problem)
    # an unknown class is a warning for an object in no split, an error (just added) for one a split lists
    report.problems = [
        p for p in report.problems if not (p.kind == "unknown_class" and (p.file, p.object_index) in reported)
    ]
    listed = {i for idx in splits.values() for i in idx}
    unlisted = len(ann.samples) - len(listed & set(range(len(ann.samples))))
    # only meaningful when every split file could be read (a bad one is reported above, not counted again here)
    if len(splits) == len(SPLITS) and unlisted > 0:
        report.problems.append(
            Problem(str(root), "unlisted_objects", f"{unlisted} objects are in no split file", severity="warning")
        )
    return report


def check_detection(root: Path) -> CheckReport:
    """Check a DIOR / VOC detection folder (non-strict read: every problem reported), opening every image as the
    grounding check does (:func:`image_file_problems`): what ``rsvg build`` would skip is reported here."""
    root = Path(root)
    find_detection_layout(root)
    result = read_detection_root(root)
    report = CheckReport(root=root, kind="detection", problems=list(result.problems))
    report.images = len(result.images)
    report.objects = result.num_objects
    report.categories = dict(sorted(Counter(o.category for im in result.images for o in im.objects).items()))
    entries = [
        (str(im.annotation_path), im.image_path, im.width, im.height)
        for im in result.images
        if im.image_path is not None
    ]
    report.problems.extend(image_file_problems(entries))
    if not result.images:
        report.problems.append(Problem(str(root), "no_images", "no annotation file could be used"))
    return report


def check_dataset(root: Path, kind: str = "auto") -> CheckReport:
    """Check ``root`` as a grounding or detection dataset (``kind="auto"`` decides by its layout);
    :class:`~rsvg.errors.DatasetNotFoundError` when ``root`` is not a folder."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetNotFoundError(f"{root} is a file; give the dataset's folder")
    if kind == "auto":
        kind = detect_kind(root)
    if kind == "grounding":
        return check_grounding(root)
    if kind == "detection":
        return check_detection(root)
    raise ValueError(f"kind must be auto, grounding or detection, got {kind!r}")
