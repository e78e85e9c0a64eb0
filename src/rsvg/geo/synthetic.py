"""A large synthetic GeoTIFF written a strip at a time: a mosaic of synthetic aerial scenes (:mod:`rsvg.synth`)
in UTM 33N, for measuring scene grounding without downloaded data. Memory holds one strip of chips, never the
whole scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from rsvg.synth import generate_scene

#: side of one synthetic scene of the mosaic, in pixels (DIOR's image size)
CHIP_SIDE = 800
#: distinct chips the mosaic cycles through (generating each chip of a 10,000² scene would take longer than
#: grounding it)
DISTINCT_CHIPS = 16
SYNTHETIC_CRS = "EPSG:32633"
SYNTHETIC_GSD = 0.5  # metres per pixel
COMPRESSIONS = ("none", "deflate", "lzw")


def write_synthetic_scene(
    path: str | Path,
    size: int,
    *,
    seed: int = 0,
    compress: str = "none",
    chip: int = CHIP_SIDE,
) -> Path:
    """Write a ``size × size`` 3-band uint8 GeoTIFF (tiled 512 × 512, ``compress`` none, deflate or lzw) of
    synthetic scenes ``chip`` pixels a side, georeferenced at 0.5 m in UTM 33N, one strip of chips at a time."""
    if size < 64:
        raise ValueError(f"--size {size}: the scene must be at least 64 pixels a side")
    if compress not in COMPRESSIONS:
        raise ValueError(f"--compress {compress!r}: choose one of {', '.join(COMPRESSIONS)}")
    side = min(chip, size)
    chips = [generate_scene(seed * 1000 + k, side).image for k in range(DISTINCT_CHIPS)]
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": SYNTHETIC_CRS,
        "transform": Affine(SYNTHETIC_GSD, 0.0, 500_000.0, 0.0, -SYNTHETIC_GSD, 4_500_000.0),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "photometric": "RGB",
    }
    if compress != "none":
        profile["compress"] = compress
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    per_side = -(-size // side)
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(per_side):
            row = np.concatenate([chips[(r * per_side + c) % DISTINCT_CHIPS] for c in range(per_side)], axis=1)
            height = min(side, size - r * side)
            strip = np.ascontiguousarray(np.moveaxis(row[:height, :size], -1, 0))
            dst.write(strip, window=Window(0, r * side, size, height))
    return path
