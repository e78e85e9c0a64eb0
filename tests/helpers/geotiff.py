"""GeoTIFF scenes written on the fly for the scene tests: a mosaic of synthetic scenes with one distinctive target
in a known chip, a known geotransform and CRS, and a stand-in model that finds the target by its colour."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

from rsvg.results import GroundingResult
from rsvg.synth import generate_scene

CHIP = 128  # side of one synthetic scene of the mosaic
GRID = 4  # chips per side: a 512 x 512 scene
GSD = 2.0  # metres per pixel
CRS = "EPSG:32633"  # UTM zone 33N: easting 500000 is longitude 15 E, northing 0 is the equator
MAGENTA = (255, 0, 255)  # no synthetic scene has it
TARGET_CHIP = (2, 1)  # (column, row) of the chip holding the target
TARGET_BOX = (300, 160, 320, 180)  # the target's box in scene pixels: inside chip (2, 1)
# the target's top-left corner is the UTM point (500000, 0), i.e. longitude 15, latitude 0
TRANSFORM = Affine(GSD, 0.0, 500000 - TARGET_BOX[0] * GSD, 0.0, -GSD, 0 + TARGET_BOX[1] * GSD)


def mosaic(seed: int = 0) -> np.ndarray:
    """A ``GRID × GRID`` mosaic of ``CHIP``-pixel synthetic scenes (H × W × 3 uint8) with a magenta square at
    :data:`TARGET_BOX`."""
    rows = []
    for r in range(GRID):
        rows.append(np.concatenate([generate_scene(seed * 100 + r * GRID + c, CHIP).image for c in range(GRID)], 1))
    image = np.concatenate(rows, 0)
    x1, y1, x2, y2 = TARGET_BOX
    image[y1:y2, x1:x2] = MAGENTA
    return image


def write_geotiff(
    path: Path,
    bands: np.ndarray,
    *,
    crs: str | None = CRS,
    transform: Affine | None = TRANSFORM,
    nodata: float | None = None,
    colorinterp: Sequence | None = None,
) -> Path:
    """Write ``bands`` (count × H × W, any dtype) as a tiled GeoTIFF (no georeference when ``crs`` and
    ``transform`` are None)."""
    count, height, width = bands.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": bands.dtype.name,
        "tiled": True,
        "blockxsize": 128,
        "blockysize": 128,
    }
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(bands)
            if colorinterp is not None:
                dst.colorinterp = colorinterp
    return path


def as_bands(rgb: np.ndarray) -> np.ndarray:
    """H × W × 3 → 3 × H × W."""
    return np.ascontiguousarray(np.moveaxis(rgb, -1, 0))


@dataclass
class ColourFinder:
    """A stand-in for the model: in each tile it answers with the bounding box of the pixels of the ``target``
    colour (each channel within ``tolerance``), scored by their share of the tile (the tile that holds the whole
    target scores best); a tile without any answers with its centre, score 0. Counts the tiles it saw."""

    image_size: int = 128
    target: tuple[int, int, int] = MAGENTA
    tolerance: int = 40
    seen: int = 0

    def predict_many(
        self,
        images: Sequence[np.ndarray],
        query: str,
        return_attention: bool = False,
        *,
        truncate: bool = False,
        need_score: bool = False,
    ) -> list[GroundingResult]:
        results = []
        for image in images:
            assert image.dtype == np.uint8 and image.shape[2] == 3
            h, w = image.shape[:2]
            found = (np.abs(image.astype(int) - np.array(self.target)) < self.tolerance).all(-1)
            if found.any():
                ys, xs = np.nonzero(found)
                box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
                score = float(found.sum()) / (self.image_size**2)
            else:
                box, score = (w / 2 - 2, h / 2 - 2, w / 2 + 2, h / 2 + 2), 0.0
            results.append(GroundingResult(box, w, h, score=score))
        self.seen += len(images)
        return results
