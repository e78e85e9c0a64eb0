"""Grounding a query on a whole scene: tiles read and grounded in batches, answers ranked and merged.

:class:`SceneGrounder` wraps anything with the :class:`TilePredictor` interface (a
:class:`~rsvg.inference.Grounder`, or a stand-in in tests). The next batch of tiles is read in a second thread
while the model grounds the current one (GDAL releases the interpreter while it reads), so reading and the model
overlap. Memory holds the overview, two batches of tiles and one answer per tile, whatever the scene's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from rsvg.data.image_io import MIN_IMAGE_SIDE
from rsvg.geo.georef import Georeference
from rsvg.geo.raster import DEFAULT_PERCENTILES, BandStretch, SceneError, SceneReader
from rsvg.geo.tiling import (
    DEFAULT_MERGE_IOU,
    DEFAULT_OVERLAP,
    Answer,
    Tile,
    merge_answers,
    tile_grid,
    tile_side,
)
from rsvg.results import GroundingResult

DEFAULT_TOP_K = 5
#: tiles grounded at once by default: one on a CPU (the backbone's depthwise layers are memory-bound, and one
#: tile's activations stay in the caches: docs/benchmarks.md), eight on a GPU
CPU_TILE_BATCH, GPU_TILE_BATCH = 1, 8


class TilePredictor(Protocol):
    """What the scene grounder needs of a model: its input side and batched grounding with a score per image."""

    image_size: int

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        query: str,
        return_attention: bool = False,
        *,
        truncate: bool = False,
        need_score: bool = False,
    ) -> list[GroundingResult]: ...


@dataclass(frozen=True)
class SceneOptions:
    """How a scene is read and tiled (the options of ``rsvg ground`` for scenes).

    ``scale`` is scene pixels per model pixel (2: a tile covers twice the model's input side, read at half the
    resolution); ``tile_gsd`` asks for it in metres per model pixel instead (the scene's own GSD from its
    geotransform sets the scale). At most one of them; neither means scale 1. ``batch``: tiles grounded at
    once (default :func:`default_tile_batch`).
    """

    bands: tuple[int, ...] | None = None
    scale: float | None = None
    tile_gsd: float | None = None
    overlap: float = DEFAULT_OVERLAP
    merge_iou: float = DEFAULT_MERGE_IOU
    top_k: int = DEFAULT_TOP_K
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    stretch: str = "auto"
    nodata: float | None = None
    batch: int | None = None
    truncate: bool = False

    def check(self) -> None:
        """Refuse values no scene can use, naming the option."""
        if self.scale is not None and self.tile_gsd is not None:
            raise SceneError("--scale and --tile-gsd both set the tile resolution: give one of them")
        if self.scale is not None and not self.scale > 0:
            raise SceneError(f"--scale {self.scale}: give a positive number of scene pixels per model pixel")
        if self.tile_gsd is not None and not self.tile_gsd > 0:
            raise SceneError(f"--tile-gsd {self.tile_gsd}: give a positive number of metres per pixel")
        if self.top_k < 1:
            raise SceneError(f"--top-k {self.top_k}: give at least 1")
        if self.batch is not None and self.batch < 1:
            raise SceneError(f"--tile-batch {self.batch}: give at least 1")
        if not 0 <= self.merge_iou <= 1:
            raise SceneError(f"--merge-iou {self.merge_iou}: give an IoU from 0 to 1")


@dataclass
class SceneGrounding:
    """A query grounded on a scene: the ranked answers and how the scene was read."""

    path: str
    query: str
    width: int
    height: int
    bands: tuple[int, ...]
    dtype: str
    georef: Georeference | None
    no_georef_reason: str
    stretch: BandStretch
    scale: float
    tile_side: int
    image_size: int
    overlap: float
    merge_iou: float
    tiles: int
    tiles_skipped: int
    answers: list[Answer]
    #: the decimated overview (RGB uint8) and scene pixels per overview pixel (x, y)
    overview: np.ndarray
    overview_factor: tuple[float, float]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def gsd_metres(self) -> float | None:
        return None if self.georef is None else self.georef.gsd_metres()

    @property
    def note(self) -> str:
        """Empty for a georeferenced scene; else the sentence saying there are no map coordinates and why."""
        if self.georef is not None:
            return ""
        return f"{self.path}: no map coordinates, {self.no_georef_reason}; boxes are in scene pixels only"

    def answer_dict(self, answer: Answer) -> dict:
        """One answer as JSON: rank, score, box in scene pixels and in the CRS, and its tile in scene pixels."""
        out: dict = {
            "rank": answer.rank,
            "score": round(answer.score, 4),
            "box_px": [round(v, 2) for v in answer.box],
            "box_crs": None if self.georef is None else list(self.georef.bounds(answer.box)),
            "tile": [round(v) for v in answer.tile.box],
        }
        if answer.steps:
            out["steps"] = dict(answer.steps)
        return out

    def to_dict(self) -> dict:
        """The whole result as JSON: the best answer's box and score first (as ``rsvg ground`` gives them for an
        image), then every ranked answer and how the scene was read."""
        answers = [self.answer_dict(a) for a in self.answers]
        best = answers[0] if answers else None
        gsd = self.gsd_metres
        out: dict = {
            "box": None if best is None else best["box_px"],
            "score": None if best is None else best["score"],
            "box_crs": None if best is None else best["box_crs"],
            "crs": None if self.georef is None else self.georef.crs_name,
            "width": self.width,
            "height": self.height,
            "bands": list(self.bands),
            "dtype": self.dtype,
            "stretch": self.stretch.describe(),
            "gsd_m": None if gsd is None else round(gsd, 4),
            "scale": round(self.scale, 6),
            "tile_gsd_m": None if gsd is None else round(gsd * self.scale, 4),
            "tile_px": self.tile_side,
            "model_px": self.image_size,
            "overlap": self.overlap,
            "merge_iou": self.merge_iou,
            "tiles": self.tiles,
            "tiles_skipped": self.tiles_skipped,
            "answers": answers,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }
        if self.note:
            out["note"] = self.note
        return out


def default_tile_batch(predictor: TilePredictor) -> int:
    """Tiles grounded at once when not asked: :data:`GPU_TILE_BATCH` for a model on a GPU, else
    :data:`CPU_TILE_BATCH`."""
    device = getattr(predictor, "device", None)
    return GPU_TILE_BATCH if getattr(device, "type", None) == "cuda" else CPU_TILE_BATCH


def resolve_scale(options: SceneOptions, reader: SceneReader, image_size: int | None = None) -> float:
    """Scene pixels per model pixel: ``--scale``, or ``--tile-gsd`` over the scene's GSD, or 1. With the model's
    ``image_size``, a scale whose tiles would cover fewer than :data:`~rsvg.data.image_io.MIN_IMAGE_SIDE` scene
    pixels a side is refused (a tiny ``--scale`` or ``--tile-gsd`` would cut a scene into millions of tiles)."""
    scale = _scale(options, reader)
    if image_size is not None and tile_side(image_size, scale) < MIN_IMAGE_SIDE:
        given = f"--scale {options.scale:g}" if options.tile_gsd is None else f"--tile-gsd {options.tile_gsd:g}"
        raise SceneError(
            f"{given}: tiles of {image_size * scale:.3g} scene pixels a side (scale {scale:.3g}) are too small; the "
            f"model's {image_size}-pixel input needs a scale of at least {MIN_IMAGE_SIDE / image_size:.3g}"
        )
    return scale


def _scale(options: SceneOptions, reader: SceneReader) -> float:
    if options.tile_gsd is None:
        return 1.0 if options.scale is None else options.scale
    if reader.georef is None:
        raise SceneError(f"--tile-gsd: {reader.name} has no map coordinates ({reader.no_georef_reason}); use --scale")
    gsd = reader.georef.gsd_metres()
    if gsd is None:
        raise SceneError(
            f"--tile-gsd: the CRS of {reader.name} ({reader.georef.crs_name}) is not in metres; use --scale"
        )
    return options.tile_gsd / gsd


class SceneGrounder:
    """Grounds queries on scenes with a :class:`TilePredictor`, e.g. a loaded
    :class:`~rsvg.inference.Grounder`: ``SceneGrounder(grounder).ground("scene.tif", "the white ship")``."""

    def __init__(self, predictor: TilePredictor) -> None:
        self.predictor = predictor

    def ground(
        self,
        path: str | Path,
        query: str,
        options: SceneOptions | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> SceneGrounding:
        """Ground ``query`` on the scene at ``path``: every tile with a valid pixel is grounded, the answers are
        ranked by score and merged (:func:`~rsvg.geo.tiling.merge_answers`). ``progress(done, total)`` is called
        after each batch. Raises :class:`SceneError` for a file or option that cannot be used, and what the
        predictor raises for a bad query."""
        options = options or SceneOptions()
        options.check()
        started = time.perf_counter()
        with SceneReader(
            path, options.bands, percentiles=options.percentiles, stretch=options.stretch, nodata=options.nodata
        ) as reader:
            opened = time.perf_counter()
            size = self.predictor.image_size
            scale = resolve_scale(options, reader, size)
            tiles = tile_grid(reader.width, reader.height, size, scale, options.overlap)
            answers, skipped, timing = self._ground_tiles(reader, tiles, query, options, progress)
            merged = merge_answers(answers, options.merge_iou, options.top_k)
            timing = {"open": opened - started, **timing, "total": time.perf_counter() - started}
            return SceneGrounding(
                path=str(path),
                query=query,
                width=reader.width,
                height=reader.height,
                bands=reader.bands,
                dtype=reader.dtype,
                georef=reader.georef,
                no_georef_reason=reader.no_georef_reason,
                stretch=reader.stretch,
                scale=scale,
                tile_side=max(max(t.width, t.height) for t in tiles),
                image_size=size,
                overlap=options.overlap,
                merge_iou=options.merge_iou,
                tiles=len(tiles),
                tiles_skipped=skipped,
                answers=merged,
                overview=reader.overview,
                overview_factor=reader.overview_factor,
                seconds=timing,
            )

    def _ground_tiles(
        self,
        reader: SceneReader,
        tiles: list[Tile],
        query: str,
        options: SceneOptions,
        progress: Callable[[int, int], None] | None,
    ) -> tuple[list[Answer], int, dict[str, float]]:
        """Every tile's answer, the number of tiles skipped (all nodata), and the seconds spent reading (in the
        reading thread, overlapping the model) and in the model."""
        step = options.batch or default_tile_batch(self.predictor)
        batches = [tiles[i : i + step] for i in range(0, len(tiles), step)]
        read_seconds = 0.0

        def load(batch: list[Tile]) -> list[tuple[Tile, np.ndarray, bool]]:
            nonlocal read_seconds
            t0 = time.perf_counter()
            loaded = []
            for tile in batch:
                rgb, valid = reader.read(tile.window, (tile.out_width, tile.out_height))
                loaded.append((tile, rgb, bool(valid.any())))
            read_seconds += time.perf_counter() - t0
            return loaded

        answers: list[Answer] = []
        skipped = 0
        model_seconds = 0.0
        done = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rsvg-tiles") as pool:
            pending = pool.submit(load, batches[0])
            for k in range(len(batches)):
                loaded = pending.result()
                if k + 1 < len(batches):
                    pending = pool.submit(load, batches[k + 1])
                kept = [(tile, rgb) for tile, rgb, any_valid in loaded if any_valid]
                skipped += len(loaded) - len(kept)
                if kept:
                    t0 = time.perf_counter()
                    results = self.predictor.predict_many(
                        [rgb for _, rgb in kept], query, truncate=options.truncate, need_score=True
                    )
                    model_seconds += time.perf_counter() - t0
                    for (tile, _), result in zip(kept, results, strict=True):
                        if result.score is None:
                            raise RuntimeError("the model gave no score for its answer: tiles cannot be ranked")
                        answers.append(Answer(tile.to_scene(result.box), float(result.score), tile, steps=result.steps))
                done += len(loaded)
                if progress is not None:
                    progress(done, len(tiles))
        return answers, skipped, {"read": read_seconds, "model": model_seconds}
