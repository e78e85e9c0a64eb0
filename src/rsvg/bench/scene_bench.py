"""``rsvg bench scene``: tiles per second and the time to ground a query on a large scene.

A synthetic 3-band uint8 GeoTIFF (:func:`rsvg.geo.synthetic.write_synthetic_scene`, not timed) is grounded the
way ``rsvg ground`` grounds a scene (:class:`rsvg.geo.scene.SceneGrounder`: tiles read in a second thread while
the model grounds the previous batch). ``ground_s`` covers opening the file, the overview and stretch (``open_s``),
every tile's read (``read_s``, in the reading thread, overlapping the model) and grounding (``model_s``), and the
merging; ``write_s``, the scene file's writing, is not part of it. For a scene smaller than 10,000 × 10,000 the
time for that size is projected from the measured tiles per second and its tile count at the same settings.
``rss_before_gib`` is the process's memory before grounding (model loaded), ``peak_rss_gib`` its peak after.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsvg.bench.machine import GIB, peak_rss_bytes, rss_bytes
from rsvg.geo.scene import SceneGrounder, SceneOptions, TilePredictor, default_tile_batch
from rsvg.geo.synthetic import write_synthetic_scene
from rsvg.geo.tiling import tile_grid

REFERENCE_SIDE = 10_000
QUERY = "the white storage tank on the upper left"


def load_predictor(
    checkpoint: str | Path | None, config: str | Path | None, overrides: list[str], device: str, precision: str
) -> tuple[TilePredictor, str]:
    """The model to time and a line saying which: a trained checkpoint, or a config's model at random init (speed
    does not depend on the weights; the backbone's and text encoder's packaged weights are not loaded)."""
    from rsvg.inference import Grounder

    if checkpoint is not None:
        return Grounder.from_checkpoint(checkpoint, device, precision=precision), f"checkpoint {checkpoint}"
    from rsvg.config import load_config
    from rsvg.models.build import build_model

    cfg = load_config(config, overrides)
    torch.manual_seed(0)
    model = build_model(cfg.model, load_pretrained=False)
    model.backbone.fold_frozen_batchnorm()
    grounder = Grounder(model, model.mean, model.std, torch.device(device), precision)
    return grounder, f"config {config} at random init"


def benchmark_scene(
    predictor: TilePredictor,
    size: int = REFERENCE_SIDE,
    *,
    scale: float = 1.0,
    overlap: float = 0.25,
    batch: int | None = None,
    compress: str = "none",
    folder: str | Path | None = None,
) -> dict[str, Any]:
    """Write a ``size × size`` synthetic scene into ``folder`` (a temporary folder by default, removed after),
    ground one query on it and return the timings, the tile settings and the tiles per second."""
    with tempfile.TemporaryDirectory(prefix="rsvg-bench-scene-", dir=folder) as tmp:
        path = Path(tmp) / f"synthetic_{size}.tif"
        t0 = time.perf_counter()
        write_synthetic_scene(path, size, compress=compress)
        written = time.perf_counter() - t0
        file_mib = path.stat().st_size / 2**20
        options = SceneOptions(scale=scale, overlap=overlap, batch=batch, top_k=5)
        batch = batch or default_tile_batch(predictor)
        # one untimed batch first: the first forward pays for lazy initialisation
        predictor.predict_many([np.zeros((64, 64, 3), np.uint8)] * batch, QUERY, need_score=True)
        rss_before = rss_bytes()
        result = SceneGrounder(predictor).ground(path, QUERY, options)
    seconds = result.seconds["total"]
    tiles_per_s = result.tiles / seconds
    reference_tiles = len(tile_grid(REFERENCE_SIDE, REFERENCE_SIDE, result.image_size, scale, overlap))
    out: dict[str, Any] = {
        "scene_px": f"{size}x{size}",
        "scene_file": f"3-band uint8 GeoTIFF, tiled 512, compression {compress}, {file_mib:.0f} MiB",
        "model_px": result.image_size,
        "scale": scale,
        "tile_px": result.tile_side,
        "overlap": overlap,
        "tile_batch": batch,
        "tiles": result.tiles,
        "write_s": round(written, 2),
        "open_s": round(result.seconds["open"], 2),
        "read_s": round(result.seconds["read"], 2),
        "model_s": round(result.seconds["model"], 2),
        "ground_s": round(seconds, 2),
        "tiles_per_s": round(tiles_per_s, 3),
        f"tiles_{REFERENCE_SIDE}": reference_tiles,
    }
    key = f"seconds_{REFERENCE_SIDE}" if size == REFERENCE_SIDE else f"projected_seconds_{REFERENCE_SIDE}"
    out[key] = round(seconds if size == REFERENCE_SIDE else reference_tiles / tiles_per_s, 1)
    out["rss_before_gib"] = round(rss_before / GIB, 2)
    out["peak_rss_gib"] = round(peak_rss_bytes() / GIB, 2)
    return out
