"""Reader and writer for grounding datasets in the DIOR-RSVG layout.

Layout::

    ROOT/Annotations/NNNNN.xml   one file per image, one <object> per referred object
                                 (<name>, <bndbox>, <description>)
    ROOT/JPEGImages/NNNNN.jpg
    ROOT/train.txt, val.txt, test.txt   global object indices, one per line

Global object indices follow the official semantics: walk the XML files **sorted by file name**, objects in
document order, counting from 0. Fields are read by tag name, never by position.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rsvg.data.categories import canonical_category
from rsvg.data.partials import remove_stale_partials
from rsvg.data.records import (
    BoxXYXY,
    DatasetError,
    DatasetNotFoundError,
    GroundingSample,
    Problem,
)
from rsvg.data.xmlio import (
    add_object,
    annotation_element,
    atomic_write_text,
    child_text,
    parse_bndbox,
    parse_size,
    write_xml,
)

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class GroundingAnnotations:
    """Every object of a DIOR-RSVG folder in global-index order, and the problems met reading it.

    ``samples[i].index == i`` always holds: an object that cannot be read still takes its index (so the
    split files keep their meaning) and is listed in ``unusable`` with the reason.
    """

    root: Path
    samples: list[GroundingSample]
    problems: list[Problem] = field(default_factory=list)
    unusable: dict[int, str] = field(default_factory=dict)

    @property
    def num_images(self) -> int:
        return len({s.image_id for s in self.samples})


def _image_path(root: Path, xml_root: ET.Element, stem: str) -> Path:
    filename = child_text(xml_root, "filename") or f"{stem}.jpg"
    return root / "JPEGImages" / Path(filename.replace("\\", "/")).name


def read_grounding_annotations(root: Path, class_mapping: Mapping[str, str] | None = None) -> GroundingAnnotations:
    """Read ``ROOT/Annotations/*.xml`` into samples numbered by global object index."""
    root = Path(root)
    ann_dir = root / "Annotations"
    if not ann_dir.is_dir():
        raise DatasetNotFoundError(
            f"{ann_dir} not found: a DIOR-RSVG dataset needs Annotations/*.xml, JPEGImages/ and "
            "train.txt/val.txt/test.txt under its root (the official download is Annotations.zip and "
            "JPEGImages.zip, unpacked into one folder)"
        )
    result = GroundingAnnotations(root=root, samples=[])
    index = 0
    for xml_path in sorted(ann_dir.glob("*.xml"), key=lambda p: p.name):
        name = str(xml_path)
        try:
            xml_root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            # Its objects cannot be counted, so every later index is uncertain: fatal for the splits.
            result.problems.append(Problem(name, "malformed_xml", f"{exc}; global indices after it are unreliable"))
            continue
        image_path = _image_path(root, xml_root, xml_path.stem)
        size = parse_size(xml_root)
        width, height = size if size is not None else (0, 0)
        if size is None:
            result.problems.append(Problem(name, "missing_size", "no <size> with positive width and height"))
        for pos, obj in enumerate(xml_root.findall("object")):
            reasons = []
            raw_name = child_text(obj, "name") or ""
            category = canonical_category(raw_name, class_mapping)
            if category is None:
                # Still usable for grounding (the class only labels the per-category breakdown).
                result.problems.append(
                    Problem(name, "unknown_class", f"unknown class {raw_name!r}", pos, severity="warning")
                )
            try:
                box: BoxXYXY = parse_bndbox(obj)
            except ValueError as exc:
                result.problems.append(Problem(name, "bad_box", str(exc), pos))
                reasons.append("bad box")
                box = (0.0, 0.0, 0.0, 0.0)
            else:
                if box[0] >= box[2] or box[1] >= box[3]:
                    result.problems.append(Problem(name, "empty_box", f"xmin >= xmax or ymin >= ymax: {box}", pos))
                    reasons.append("empty box")
                elif size is not None and (box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height):
                    # Metrics stay defined for such boxes; worth a look, not fatal.
                    result.problems.append(
                        Problem(name, "box_outside_image", f"{box} outside the {width}x{height} image", pos, "warning")
                    )
            description = " ".join((child_text(obj, "description") or "").split())
            if not description:
                result.problems.append(Problem(name, "empty_description", "missing or empty <description>", pos))
                reasons.append("empty description")
            result.samples.append(
                GroundingSample(
                    index=index,
                    image_id=xml_path.stem,
                    image_path=image_path,
                    annotation_path=xml_path,
                    object_in_file=pos,
                    width=width,
                    height=height,
                    category=category or raw_name,
                    box=box,
                    description=description,
                )
            )
            if reasons:
                result.unusable[index] = ", ".join(reasons)
            index += 1
    return result


def read_split_file(path: Path) -> list[int]:
    """Global indices listed in a split file (one integer per line; blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"split file not found: {path}")
    out: list[int] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            out.append(int(text))
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: not an integer index: {text!r}") from None
    return out


@dataclass
class SplitReport:
    """What :func:`validate_splits` found."""

    counts: dict[str, int]
    problems: list[Problem]
    shared_images: dict[tuple[str, str], int]  # (split a, split b) -> number of images in both


def validate_splits(splits: Mapping[str, Sequence[int]], samples: Sequence[GroundingSample], root: Path) -> SplitReport:
    """Check split indices: in range, not repeated, the splits pairwise disjoint; count shared images."""
    n = len(samples)
    problems: list[Problem] = []
    members: dict[str, set[int]] = {}
    for split, indices in splits.items():
        fname = str(Path(root) / f"{split}.txt")
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            problems.append(
                Problem(fname, "index_out_of_range", f"{len(bad)} indices outside 0..{n - 1}, e.g. {bad[:5]}")
            )
        dup = [i for i, c in Counter(indices).items() if c > 1]
        if dup:
            problems.append(
                Problem(fname, "repeated_index", f"{len(dup)} indices listed twice, e.g. {sorted(dup)[:5]}")
            )
        members[split] = {i for i in indices if 0 <= i < n}
    names = list(splits)
    shared_images: dict[tuple[str, str], int] = {}
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            common = members[a] & members[b]
            if common:
                problems.append(
                    Problem(
                        f"{Path(root) / (a + '.txt')} / {b}.txt",
                        "overlapping_splits",
                        f"{len(common)} expressions in both splits, e.g. {sorted(common)[:5]}",
                    )
                )
            imgs_a = {samples[i].image_id for i in members[a]}
            imgs_b = {samples[i].image_id for i in members[b]}
            shared_images[(a, b)] = len(imgs_a & imgs_b)
    return SplitReport(counts={k: len(v) for k, v in splits.items()}, problems=problems, shared_images=shared_images)


def load_split(root: Path, split: str, class_mapping: Mapping[str, str] | None = None) -> list[GroundingSample]:
    """The samples of one split in split-file order; raises :class:`DatasetError` on unusable entries."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    ann = read_grounding_annotations(root, class_mapping)
    fatal = [p for p in ann.problems if p.kind == "malformed_xml"]
    if fatal:
        problem = fatal[0]
        where = problem.file if problem.object_index is None else f"{problem.file} [object {problem.object_index}]"
        raise DatasetError(
            f"{where}: {problem.kind}: {problem.message} (run `rsvg check-data {root}` for all problems)"
        )
    indices = read_split_file(Path(root) / f"{split}.txt")
    first: dict[int, int] = {}
    for position, i in enumerate(indices):
        if i in first:
            # trained on twice or scored twice: refused, as check-data reports it
            raise DatasetError(
                f"{Path(root) / (split + '.txt')}: index {i} is listed twice (entries {first[i] + 1} and "
                f"{position + 1}); each object may appear once in a split"
            )
        first[i] = position
    out = []
    for i in indices:
        if not 0 <= i < len(ann.samples):
            raise DatasetError(f"{Path(root) / (split + '.txt')}: index {i} outside 0..{len(ann.samples) - 1}")
        if i in ann.unusable:
            s = ann.samples[i]
            raise DatasetError(
                f"{s.annotation_path} [object {s.object_in_file}] (index {i}, split {split}): {ann.unusable[i]}"
            )
        out.append(ann.samples[i])
    return out


@dataclass
class GroundingObject:
    """An object to write: class, box, expression, and extra tags (e.g. provenance) as text children."""

    category: str
    box: BoxXYXY
    description: str
    extra: dict[str, str] = field(default_factory=dict)


class GroundingDatasetWriter:
    """Writes a DIOR-RSVG folder atomically: everything goes to a temporary sibling folder, renamed at commit.

    Usage::

        with GroundingDatasetWriter(out) as w:
            w.add_image("00001", image_source, width, height, objects)
            order = w.global_order()          # [(image_id, object position), ...] in global-index order
            w.commit({"train": [...], "val": [...], "test": [...]})

    Leaving the block without :meth:`commit` (an error, an interrupt) removes the temporary folder and leaves
    ``out`` untouched.
    """

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise DatasetError(f"output folder already exists: {self.out} (choose another or pass overwrite)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        # a killed writer's hidden folder is never renamed nor removed: clear those before making this one's
        remove_stale_partials(self.out.parent, self.out.name)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".partial", dir=self.out.parent))
        (self.tmp / "Annotations").mkdir()
        (self.tmp / "JPEGImages").mkdir()
        self._counts: dict[str, int] = {}
        self._committed = False
        self.overwrite = overwrite

    def __enter__(self) -> GroundingDatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def add_image(
        self,
        image_id: str,
        image: Path | np.ndarray,
        width: int,
        height: int,
        objects: Sequence[GroundingObject],
    ) -> None:
        """Add one image: a path (hard-linked or copied) or an RGB array (encoded as JPEG)."""
        if image_id in self._counts:
            raise DatasetError(f"image id {image_id!r} added twice")
        for obj in objects:
            if not obj.description.strip():
                raise DatasetError(f"image {image_id}: empty description for a {obj.category}")
        if isinstance(image, np.ndarray):
            filename = f"{image_id}.jpg"
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise DatasetError(f"could not encode image {image_id}")
            (self.tmp / "JPEGImages" / filename).write_bytes(buf.tobytes())
        else:
            src = Path(image)
            filename = f"{image_id}{src.suffix.lower()}"
            dst = self.tmp / "JPEGImages" / filename
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        root = annotation_element(filename, width, height)
        for obj in objects:
            add_object(root, obj.category, obj.box, {"description": obj.description, **obj.extra})
        write_xml(self.tmp / "Annotations" / f"{image_id}.xml", root)
        self._counts[image_id] = len(objects)

    def global_order(self) -> list[tuple[str, int]]:
        """``(image_id, object position)`` for every object, in global-index order."""
        return [(iid, k) for iid in sorted(self._counts, key=lambda i: f"{i}.xml") for k in range(self._counts[iid])]

    def commit(self, splits: Mapping[str, Sequence[int]]) -> Path:
        """Write the split files and move the finished folder into place."""
        total = sum(self._counts.values())
        for split, indices in splits.items():
            bad = [i for i in indices if not 0 <= i < total]
            if bad:
                raise DatasetError(f"split {split}: indices outside 0..{total - 1}: {bad[:5]}")
            atomic_write_text(self.tmp / f"{split}.txt", "".join(f"{i}\n" for i in indices))
        if self.out.exists():
            if not self.overwrite:
                raise DatasetError(f"output folder appeared while writing: {self.out}")
            old = self.out.with_name(f".{self.out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.out, old)
            os.replace(self.tmp, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.out)
        self._committed = True
        return self.out


def group_by_split(root: Path) -> dict[str, list[int]]:
    """Read the split files that exist under ``root`` (missing ones are left out)."""
    out: dict[str, list[int]] = {}
    for split in SPLITS:
        path = Path(root) / f"{split}.txt"
        if path.is_file():
            out[split] = read_split_file(path)
    return out


def samples_by_image(samples: Sequence[GroundingSample]) -> dict[str, list[GroundingSample]]:
    by: dict[str, list[GroundingSample]] = defaultdict(list)
    for s in samples:
        by[s.image_id].append(s)
    return dict(by)
