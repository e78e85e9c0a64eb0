"""Write generated scenes as a DIOR-layout detection dataset (Pascal-VOC XML + JPEG).

Layout: ``out/Annotations/NNNNN.xml`` and ``out/JPEGImages/NNNNN.jpg``, ids from 00001. Each ``<object>`` has
the usual ``<name>`` and ``<bndbox>`` plus ``<synth_color>`` and ``<synth_shape>`` (the true colour and shape,
which readers ignore). The dataset is built in a hidden sibling folder and renamed into place at the end, so an
interrupted run leaves no half-written dataset behind. Image ``k`` depends only on ``(seed, k)`` and ``size``, so
the files are byte-identical whatever the number of worker processes.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rsvg.data.categories import DIOR_CLASSES
from rsvg.data.partials import remove_stale_partials, replace_folder
from rsvg.data.xmlio import add_object, annotation_element, write_xml
from rsvg.output_paths import check_output_folder, output_lock
from rsvg.synth.scene import Scene, generate_scene

JPEG_QUALITY = 95


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_synthetic_dataset` wrote."""

    out: Path
    images: int
    objects: int
    per_category: dict[str, int]  # every DIOR class, in DIOR order (zero when absent)
    seconds: float


def image_seed(seed: int, index: int) -> int:
    """The scene seed of image ``index`` of a dataset generated with ``seed`` (independent streams per image)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0])


def image_id(index: int) -> str:
    """File stem of image ``index``: zero-padded to 5 digits."""
    return f"{index:05d}"


def encode_jpeg(image_rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of an RGB uint8 image (cv2 encodes BGR, so channels are swapped first)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image_rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def scene_annotation(scene: Scene, stem: str) -> ET.Element:
    """The VOC ``<annotation>`` of a scene, objects in drawing order, true colour and shape as extra tags."""
    h, w = scene.image.shape[:2]
    root = annotation_element(f"{stem}.jpg", w, h)
    for obj in scene.objects:
        add_object(root, obj.category, obj.box, {"synth_color": obj.color, "synth_shape": obj.shape})
    return root


def _write_image(task: tuple[str, int, int, int]) -> list[str]:
    """Generate and write image ``index``; returns the categories of its objects."""
    folder, seed, index, size = task
    root = Path(folder)
    scene = generate_scene(image_seed(seed, index), size)
    stem = image_id(index)
    (root / "JPEGImages" / f"{stem}.jpg").write_bytes(encode_jpeg(scene.image))
    write_xml(root / "Annotations" / f"{stem}.xml", scene_annotation(scene, stem))
    return [obj.category for obj in scene.objects]


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _check_target(out: Path, overwrite: bool) -> Path:
    """Refuse an output that cannot be written (:func:`~rsvg.output_paths.check_output_folder`: a file, the
    current folder or one holding it) and a non-empty folder without ``overwrite``; returns it with links
    resolved (a link to a folder writes that folder)."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder; give a folder for the dataset", str(out))
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True to replace it")
    return check_output_folder(out, "out", overwrite=overwrite)


def _generate(
    tmp: Path,
    images: int,
    seed: int,
    size: int,
    workers: int,
    counts: Counter[str],
    progress: Callable[[int, int], None] | None,
) -> None:
    """Write images 1..``images`` into ``tmp`` (in ``workers`` processes when more than one), counting the
    categories drawn into ``counts``."""
    tasks = [(str(tmp), seed, k, size) for k in range(1, images + 1)]
    if workers == 1:
        results = map(_write_image, tasks)
        pool = None
    else:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
        results = pool.map(_write_image, tasks, chunksize=max(1, images // (workers * 8)))
    try:
        for done, categories in enumerate(results, start=1):
            counts.update(categories)
            if progress is not None:
                progress(done, images)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def write_synthetic_dataset(
    out: Path,
    images: int,
    seed: int = 0,
    size: int = 800,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Generate ``images`` scenes and write them under ``out`` as a DIOR/VOC detection dataset.

    ``out`` must not exist or be empty, unless ``overwrite`` (the old content is replaced only once the new
    dataset is complete, :func:`~rsvg.data.partials.replace_folder`); it may not be a file, the current folder or
    one holding it. The output's lock is held for the whole write, so a second process writing the same ``out``
    is refused. ``workers > 1`` generates images in that many processes; the output is identical.
    ``progress(done, total)`` is called after each image.
    """
    if images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, got {seed}")
    out = _check_target(Path(out), overwrite)
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    with output_lock(out, "dataset"):
        # a killed run's hidden folder is never renamed nor removed: clear those before making this run's
        remove_stale_partials(out.parent, out.name, style="tmp")
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            (tmp / "Annotations").mkdir(parents=True)
            (tmp / "JPEGImages").mkdir()
            _generate(tmp, images, seed, size, workers, counts, progress)
            replace_folder(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return SynthSummary(
        out=out,
        images=images,
        objects=sum(counts.values()),
        per_category={c: counts.get(c, 0) for c in DIOR_CLASSES},
        seconds=time.perf_counter() - start,
    )
