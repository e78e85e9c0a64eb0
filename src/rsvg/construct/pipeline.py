"""Steps 1-3 for one image, as a picklable task run in a worker process.

An image's random generator is derived from ``(seed, image_id)`` only, so the result does not depend on the
number of workers or the order in which images are processed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsvg.construct.attributes import extract_scene
from rsvg.construct.expressions import ExpressionGenerator
from rsvg.construct.sampling import sample_objects
from rsvg.data.dior_rsvg import GroundingObject
from rsvg.data.image_io import ImageReadError, read_image_rgb
from rsvg.data.records import DetectionImage

PROVENANCE_TAG = "provenance"


@dataclass(frozen=True)
class ImageResult:
    """What one image gives: its expressions as objects to write, or the reason it was skipped."""

    image_id: str
    image_path: Path | None
    width: int
    height: int
    objects: tuple[GroundingObject, ...] = ()
    steps: tuple[str, ...] = ()  # "cat+" / "att+" / "rel+" of each expression
    dropped: Counter = field(default_factory=Counter)  # objects dropped, by reason
    skipped: str | None = None  # reason the whole image was skipped
    message: str = ""


def image_rng(seed: int, image_id: str) -> np.random.Generator:
    """The random generator of one image: a function of the seed and the image id only."""
    digest = hashlib.blake2b(image_id.encode("utf-8"), digest_size=8).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest, "little")])


def load_rgb(path: Path) -> np.ndarray:
    """An image file as RGB ``uint8``; :class:`~rsvg.errors.ImageReadError` naming the file when it is missing,
    empty, truncated (a JPEG or PNG that ends early would otherwise decode with a grey part) or not an image."""
    return read_image_rgb(path)


def describe_image(image: DetectionImage, rgb: np.ndarray, seed: int) -> ImageResult:
    """Sample, extract attributes and generate expressions for one image already decoded."""
    rng = image_rng(seed, image.image_id)
    sampled = sample_objects(image.objects, image.width, image.height, rng)
    scene_objects = [image.objects[i] for i in sampled.scene]
    scene = extract_scene(rgb, [(o.category, o.box) for o in scene_objects])
    position = {obj_pos: k for k, obj_pos in enumerate(sampled.scene)}
    generator = ExpressionGenerator(scene)
    dropped = Counter(sampled.dropped)
    out: list[GroundingObject] = []
    steps: list[str] = []
    for obj_pos in sampled.targets:
        k = position[obj_pos]
        expression = generator.generate(k, rng)
        if expression is None:
            dropped["no_unique_expression"] += 1
            continue
        det = image.objects[obj_pos]
        provenance = json.dumps(expression.provenance(scene), separators=(",", ":"), sort_keys=True)
        out.append(GroundingObject(det.category, det.box, expression.text, {PROVENANCE_TAG: provenance}))
        steps.append(expression.step)
    return ImageResult(image.image_id, image.image_path, image.width, image.height, tuple(out), tuple(steps), dropped)


def process_image(task: tuple[DetectionImage, int]) -> ImageResult:
    """Worker entry point: load the image of ``(image, seed)`` and describe it; never raises."""
    image, seed = task
    skipped = ImageResult(image.image_id, image.image_path, image.width, image.height)
    try:
        if image.image_path is None:
            return _skip(skipped, "missing_image", f"no image file for {image.annotation_path}")
        try:
            rgb = load_rgb(image.image_path)
        except ImageReadError as exc:
            return _skip(skipped, "unreadable_image", str(exc))
        if rgb.shape[:2] != (image.height, image.width):
            return _skip(
                skipped,
                "image_size_mismatch",
                f"{image.image_path} is {rgb.shape[1]}x{rgb.shape[0]}, its annotation says "
                f"{image.width}x{image.height}",
            )
        return describe_image(image, rgb, seed)
    except Exception as exc:  # one bad image must not stop a long build
        return _skip(skipped, "processing_error", f"{type(exc).__name__}: {exc}")


def _skip(result: ImageResult, reason: str, message: str) -> ImageResult:
    return ImageResult(
        result.image_id,
        result.image_path,
        result.width,
        result.height,
        skipped=reason,
        message=message,
        dropped=Counter(),
    )
