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

import contextlib
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rsvg.data.categories import CLASS_INDEX, DIOR_CLASSES, canonical_category
from rsvg.data.partials import remove_stale_partials, replace_folder
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
from rsvg.errors import ConfigError
from rsvg.output_paths import check_output_folder, creation_mode, output_lock

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
        except (ET.ParseError, OSError) as exc:
            # Its objects cannot be counted, so every later index is uncertain: fatal for the splits.
            what = exc if isinstance(exc, ET.ParseError) else f"cannot be read ({exc.strerror or exc})"
            result.problems.append(Problem(name, "malformed_xml", f"{what}; global indices after it are unreliable"))
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
    try:
        content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte {exc.start}); a split file lists one integer index per line"
        ) from None
    out: list[int] = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            out.append(int(text))
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: not an integer index: {text!r}") from None
    return out


# Problems of the annotations that make every split unusable: an object count that cannot be trusted shifts the
# global index of every later object.
FATAL_ANNOTATION_PROBLEMS: frozenset[str] = frozenset({"malformed_xml"})


def split_path(root: Path, split: str) -> Path:
    """The split file of ``split`` under ``root``."""
    return Path(root) / f"{split}.txt"


def index_problems(root: Path, split: str, indices: Sequence[int], n: int) -> list[Problem]:
    """What is wrong with a split's list of indices on its own: it is empty, an index is outside ``0..n-1``, an
    index is listed twice (trained on twice or scored twice). One problem per kind, naming the split file."""
    fname = str(split_path(root, split))
    problems: list[Problem] = []
    if not indices:  # the words of rsvg.data.dataset.require_samples, which refuses it in train and eval
        problems.append(
            Problem(
                fname,
                "empty_split",
                f"lists no samples: the {split} split of the dataset {root} is empty; rsvg train refuses an empty "
                "train or val split, rsvg eval an empty split it scores",
            )
        )
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        problems.append(Problem(fname, "index_out_of_range", f"{len(bad)} indices outside 0..{n - 1}, e.g. {bad[:5]}"))
    first: dict[int, int] = {}
    repeated: dict[int, tuple[int, int]] = {}
    for position, i in enumerate(indices, start=1):
        if i in first:
            repeated.setdefault(i, (first[i], position))
        first.setdefault(i, position)
    if repeated:
        i, (a, b) = next(iter(repeated.items()))
        problems.append(
            Problem(
                fname,
                "repeated_index",
                f"{len(repeated)} indices listed twice, e.g. index {i} (entries {a} and {b}): each object may appear "
                f"once in a split",
            )
        )
    return problems


def unknown_class_message(category: str) -> str | None:
    """Why an object's class cannot be used by a model whose stages learn the object classes (the lite config's),
    or ``None`` for one of the 20 DIOR classes."""
    if category in CLASS_INDEX:
        return None
    return f"class {category!r} is not a DIOR class (e.g. {', '.join(DIOR_CLASSES[:3])}, ...)"


def listed_sample_problems(
    ann: GroundingAnnotations, split: str, indices: Sequence[int], *, dior_classes: bool = True
) -> list[Problem]:
    """One problem per object a split lists that cannot be trained on or scored: a missing, non-numeric or empty
    box, an empty description, and (``dior_classes``) a class that is not one of the 20 DIOR classes
    (:func:`unknown_class_message`: the default model refuses it), each naming the annotation file and the object."""
    problems: list[Problem] = []
    for i in dict.fromkeys(indices):
        if not 0 <= i < len(ann.samples):
            continue
        s = ann.samples[i]
        reasons = [ann.unusable[i]] if i in ann.unusable else []
        unknown = unknown_class_message(s.category) if dior_classes else None
        if unknown is not None:
            reasons.append(f"{unknown}; rsvg train refuses it for models whose stages learn the object classes")
        if reasons:
            message = f"index {i} (split {split}): {', '.join(reasons)}"
            problems.append(Problem(str(s.annotation_path), "unusable_sample_in_split", message, s.object_in_file))
    return problems


def split_problems(
    ann: GroundingAnnotations, split: str, indices: Sequence[int], *, dior_classes: bool = True
) -> list[Problem]:
    """Every reason rsvg train and rsvg eval refuse one split of ``ann`` (``rsvg check-data`` reports the same
    problems, so a dataset it calls OK loads): annotations whose object count cannot be trusted, then
    :func:`index_problems`, then :func:`listed_sample_problems`. Images are checked separately
    (:func:`rsvg.data.check.image_problems`), and so are classes outside DIOR when ``dior_classes`` is false (the
    model's sample extras refuse them, :class:`rsvg.data.extras.ImageObjects`, with the same message)."""
    fatal = [p for p in ann.problems if p.kind in FATAL_ANNOTATION_PROBLEMS]
    return [
        *fatal,
        *index_problems(ann.root, split, indices, len(ann.samples)),
        *listed_sample_problems(ann, split, indices, dior_classes=dior_classes),
    ]


def refusal(problems: Sequence[Problem], root: Path) -> DatasetError:
    """The error that refuses a dataset for its first problem (the file, the object, what is wrong), with the
    number of others and where to see them all."""
    first = problems[0]
    where = first.file if first.object_index is None else f"{first.file} [object {first.object_index}]"
    more = f"; {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
    return DatasetError(f"{where}: {first.kind}: {first.message}{more} (`rsvg check-data {root}` lists them all)")


@dataclass
class SplitReport:
    """What :func:`validate_splits` found."""

    counts: dict[str, int]
    problems: list[Problem]
    shared_images: dict[tuple[str, str], int]  # (split a, split b) -> number of images in both


def validate_splits(splits: Mapping[str, Sequence[int]], samples: Sequence[GroundingSample], root: Path) -> SplitReport:
    """Check split indices: each split's :func:`index_problems` (not empty, in range, not repeated), the splits
    pairwise disjoint; count the images two splits share."""
    n = len(samples)
    problems: list[Problem] = []
    members: dict[str, set[int]] = {}
    for split, indices in splits.items():
        problems.extend(index_problems(root, split, indices, n))
        members[split] = {i for i in indices if 0 <= i < n}
    names = list(splits)
    shared_images: dict[tuple[str, str], int] = {}
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            common = members[a] & members[b]
            if common:
                problems.append(
                    Problem(
                        f"{split_path(root, a)} / {b}.txt",
                        "overlapping_splits",
                        f"{len(common)} expressions in both splits, e.g. {sorted(common)[:5]}",
                    )
                )
            imgs_a = {samples[i].image_id for i in members[a]}
            imgs_b = {samples[i].image_id for i in members[b]}
            shared_images[(a, b)] = len(imgs_a & imgs_b)
    return SplitReport(counts={k: len(v) for k, v in splits.items()}, problems=problems, shared_images=shared_images)


def load_split(root: Path, split: str, class_mapping: Mapping[str, str] | None = None) -> list[GroundingSample]:
    """The samples of one split in split-file order; :class:`DatasetError` naming the first of
    :func:`split_problems` when the split cannot be used as it is."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    ann = read_grounding_annotations(root, class_mapping)
    fatal = [p for p in ann.problems if p.kind in FATAL_ANNOTATION_PROBLEMS]
    if fatal:  # before the split file: its indices mean nothing then
        raise refusal(fatal, root)
    indices = read_split_file(split_path(root, split))
    # a class outside DIOR only matters to the models that learn the classes: their sample extras refuse it;
    # an empty split is refused by the caller that needs samples (rsvg.data.dataset.require_samples)
    problems = [p for p in split_problems(ann, split, indices, dior_classes=False) if p.kind != "empty_split"]
    if problems:
        raise refusal(problems, root)
    return [ann.samples[i] for i in indices]


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
    ``out`` untouched. With ``overwrite`` an existing ``out`` stays complete until the new folder replaces it
    (:func:`~rsvg.data.partials.replace_folder`). The writer holds the output's lock
    (:func:`~rsvg.output_paths.output_lock`) from before it clears stale partials until commit or cleanup: a second
    writer of the same folder is refused with :class:`~rsvg.errors.OutputLockedError`.
    """

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise DatasetError(f"output folder already exists: {self.out} (choose another or pass overwrite)")
        # a file there, or the current folder, is refused; a link is followed (the folder it names is replaced)
        self.target = check_output_folder(self.out, "output folder", overwrite=overwrite)
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(output_lock(self.target, "dataset"))
        try:
            # a killed writer's hidden folder is never renamed nor removed: clear those before making this one's
            remove_stale_partials(self.target.parent, self.target.name)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent))
            os.chmod(self.tmp, creation_mode(directory=True))
            (self.tmp / "Annotations").mkdir()
            (self.tmp / "JPEGImages").mkdir()
        except BaseException:
            self._lock.close()
            raise
        self._counts: dict[str, int] = {}
        self._committed = False
        self.overwrite = overwrite

    def __enter__(self) -> GroundingDatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._committed:
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            self._lock.close()

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
        if self.target.exists() and not self.overwrite:
            raise DatasetError(f"output folder appeared while writing: {self.out}")
        replace_folder(self.tmp, self.target)
        self._committed = True
        self._lock.close()
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
