"""Build a DIOR-RSVG-style grounding dataset from a DIOR/VOC detection dataset (paper Sec. III, steps 1-3).

:func:`build_dataset` reads the detection folder (non-strict: unknown classes, missing or unreadable images and
boxes outside the image are skipped and counted), describes every image in a process pool (steps 1-3, see
:mod:`rsvg.construct.pipeline`), writes the result atomically with
:class:`rsvg.data.dior_rsvg.GroundingDatasetWriter` (nothing appears at ``out`` unless the build finishes),
splits the expressions (:mod:`rsvg.construct.split`) and saves ``build_summary.json`` inside the output.
Each expression carries a ``<provenance>`` tag: compact JSON with the template, the step that singled its
object out (cat+ / att+ / rel+) and the attributes used.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2

from rsvg.construct import pipeline
from rsvg.construct.classmap import check_class_mapping
from rsvg.construct.split import DEFAULT_SPLIT, check_ratios, split_indices
from rsvg.data.dior_rsvg import GroundingDatasetWriter
from rsvg.data.records import DatasetError, DetectionImage, Problem
from rsvg.data.voc import read_detection_root
from rsvg.output_paths import check_output_folder

STEPS: tuple[str, ...] = ("cat+", "att+", "rel+")
SUMMARY_FILE = "build_summary.json"
PAPER_STEP_SHARES: dict[str, float] = {"cat+": 38.36, "att+": 56.62, "rel+": 15.74}  # % on DIOR, paper Sec. III-B


@dataclass
class BuildSummary:
    """What a build read, wrote and dropped (and why), and how fast it ran."""

    detection_root: str
    out: str
    seed: int
    split: tuple[float, float, float]
    workers: int
    images_read: int = 0  # annotation files read (including images skipped later)
    images_written: int = 0
    expressions: int = 0
    objects_read: int = 0  # <object> elements seen, including those the reader rejected
    images_skipped: dict[str, int] = field(default_factory=dict)  # reason -> images
    objects_dropped: dict[str, int] = field(default_factory=dict)  # reason -> objects
    steps: dict[str, int] = field(default_factory=dict)  # cat+ / att+ / rel+ -> expressions
    splits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # every image and object left out for a problem of the input: {"file", "object", "reason", "message"}
    # ("object": its position in the file, None for a whole image)
    skipped: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the output lacks that a user would want to know

    @property
    def step_shares(self) -> dict[str, float]:
        """Percentage of expressions singled out by category, own attributes, relation."""
        total = max(self.expressions, 1)
        return {s: 100.0 * self.steps.get(s, 0) / total for s in STEPS}

    @property
    def images_per_second(self) -> float:
        return self.images_read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["split"] = list(self.split)
        out["step_shares_percent"] = {k: round(v, 2) for k, v in self.step_shares.items()}
        out["paper_step_shares_percent"] = PAPER_STEP_SHARES
        out["images_per_second"] = round(self.images_per_second, 3)
        return out


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _results(
    images: Sequence[DetectionImage], seed: int, workers: int, executor: ProcessPoolExecutor | None
) -> Iterator[pipeline.ImageResult]:
    tasks = ((im, seed) for im in images)
    if executor is None:
        yield from (pipeline.process_image(t) for t in tasks)
    else:
        chunk = max(1, min(16, len(images) // (workers * 8)))
        yield from executor.map(pipeline.process_image, tasks, chunksize=chunk)


def _count_reader_problems(problems: Iterable[Problem], summary: BuildSummary) -> tuple[Counter, Counter]:
    """Count the reader's problems by kind (whole images, objects) and name each in ``summary.skipped``."""
    images, objects = Counter(), Counter()
    for p in problems:
        (images if p.object_index is None else objects)[p.kind] += 1
        summary.skipped.append(skipped_entry(p.file, p.object_index, p.kind, p.message))
    summary.images_read += sum(images.values())
    summary.objects_read += sum(objects.values())
    return images, objects


def skipped_entry(file: str | Path, obj: int | None, reason: str, message: str) -> dict:
    """One line of ``build_summary.json``'s ``skipped``: which file (and object), why."""
    return {"file": str(file), "object": obj, "reason": reason, "message": message}


def describe_skipped(entry: dict) -> str:
    """``FILE [object K]: reason: message`` for one skipped entry."""
    where = entry["file"] if entry["object"] is None else f"{entry['file']} [object {entry['object']}]"
    return f"{where}: {entry['reason']}: {entry['message']}"


def _split_warnings(splits: Mapping[str, Sequence[int]], ratios: tuple[float, float, float]) -> list[str]:
    """A sentence for each split the build leaves empty (train refuses an empty train or val split, eval an empty
    split it scores), saying whether ``--split`` asked for it or the dataset is too small."""
    out = []
    for (name, indices), ratio in zip(splits.items(), ratios, strict=True):
        if not indices:
            why = f"--split gives it {ratio:g}" if ratio == 0 else "too few expressions to give it one"
            out.append(f"the {name} split is empty ({why}): rsvg train and rsvg eval refuse an empty split they read")
    return out


def build_dataset(
    detection_root: Path,
    out: Path,
    *,
    seed: int = 0,
    split: tuple[float, float, float] = DEFAULT_SPLIT,
    workers: int = 1,
    class_mapping: Mapping[str, str] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BuildSummary:
    """Turn the detection dataset under ``detection_root`` into a grounding dataset at ``out``.

    The output is identical for any ``workers`` (each image's randomness comes from ``(seed, image_id)``).
    ``progress(done, total)`` is called after each image. With ``workers > 1`` images are described in
    spawned processes, so a script calling this needs the usual ``if __name__ == "__main__":`` guard.

    Every image and object left out for a problem of the input is named in ``summary.skipped`` (and in
    ``build_summary.json``); objects the method leaves out by design (too small, too large, over the per-category
    cap, no unambiguous expression) are counted by reason in ``objects_dropped``.

    Raises :class:`DatasetError` (or its ``DatasetNotFoundError``) for an unusable input folder, an existing
    ``out`` without ``overwrite``, and when no expression could be made; :class:`~rsvg.errors.OutputPathError`
    when ``out`` is a file, is or holds ``detection_root``, lies inside it, or is the current folder;
    ``ValueError`` for bad ``split``, ``workers``, ``seed`` or ``class_mapping``. ``out`` is replaced only once the
    new dataset is complete.
    """
    start = time.perf_counter()
    ratios = check_ratios(split)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, got {seed}")
    mapping = check_class_mapping(class_mapping) if class_mapping else None
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"output folder already exists: {out} (choose another or pass overwrite)")
    check_output_folder(out, "out", inputs={"detection_root": detection_root}, overwrite=overwrite)
    read = read_detection_root(Path(detection_root), strict=False, class_mapping=mapping)
    summary = BuildSummary(str(detection_root), str(out), seed, ratios, workers)
    images_skipped, dropped = _count_reader_problems(read.problems, summary)
    summary.images_read += len(read.images)
    summary.objects_read += read.num_objects
    steps: Counter = Counter()
    executor = None
    if workers > 1 and len(read.images) > 1:
        executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
        )
    try:
        with GroundingDatasetWriter(out, overwrite=overwrite) as writer:
            for done, result in enumerate(_results(read.images, seed, workers, executor), start=1):
                dropped.update(result.dropped)
                image = read.images[done - 1]
                if result.skipped is not None:
                    images_skipped[result.skipped] += 1
                    dropped["in_skipped_image"] += len(image.objects)
                    summary.skipped.append(skipped_entry(image.annotation_path, None, result.skipped, result.message))
                elif not result.objects:
                    images_skipped["no_expression"] += 1
                    message = (
                        f"none of its {len(image.objects)} usable objects could be described unambiguously"
                        if image.objects
                        else "no usable object"
                    )
                    summary.skipped.append(skipped_entry(image.annotation_path, None, "no_expression", message))
                else:
                    writer.add_image(result.image_id, result.image_path, result.width, result.height, result.objects)
                    steps.update(result.steps)
                    summary.images_written += 1
                    summary.expressions += len(result.objects)
                if progress is not None:
                    progress(done, len(read.images))
            if summary.expressions == 0:
                named = "; ".join(describe_skipped(e) for e in summary.skipped[:3])
                raise DatasetError(
                    f"no expression could be generated from {detection_root} "
                    f"(images skipped: {dict(images_skipped)}; objects dropped: {dict(dropped)})"
                    + (f"; first skipped: {named}" if named else "")
                )
            splits = split_indices(summary.expressions, ratios, seed)
            summary.warnings.extend(_split_warnings(splits, ratios))
            summary.images_skipped = dict(sorted(images_skipped.items()))
            summary.objects_dropped = dict(sorted(dropped.items()))
            summary.steps = {s: steps.get(s, 0) for s in STEPS}
            summary.splits = {k: len(v) for k, v in splits.items()}
            summary.seconds = time.perf_counter() - start
            (writer.tmp / SUMMARY_FILE).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
            writer.commit(splits)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    summary.seconds = time.perf_counter() - start
    return summary


def benchmark_build_summary(
    images: int = 100, size: int = 800, workers: int = 2, seed: int = 0, scratch: Path | None = None
) -> BuildSummary:
    """Build a grounding dataset from ``images`` synthetic ``size``-pixel scenes; the build's summary.

    The synthetic detection dataset is generated first (not timed) in a temporary folder under ``scratch``.
    """
    from rsvg.synth import write_synthetic_dataset

    with tempfile.TemporaryDirectory(prefix="rsvg-bench-build-", dir=scratch) as tmp:
        det = Path(tmp) / "detection"
        write_synthetic_dataset(det, images=images, seed=seed, size=size, workers=workers)
        return build_dataset(det, Path(tmp) / "grounding", seed=seed, workers=workers)


def benchmark_build(
    images: int = 100, size: int = 800, workers: int = 2, seed: int = 0, scratch: Path | None = None
) -> float:
    """Images per second of :func:`build_dataset` on synthetic scenes (end to end, process start included)."""
    return benchmark_build_summary(images, size, workers, seed, scratch).images_per_second
