"""Uploaded GeoTIFFs for the grounding API: a TIFF the picture decoders cannot read well (georeferenced, 16-bit,
float, more than four bands) read as a scene is, into one 8-bit RGB picture.

The upload limits are checked on the header before any pixel is decoded, as for other images; the picture is
then read a strip of rows at a time, so the float working copy of the stretch never exceeds one strip.
"""

from __future__ import annotations

import warnings

import numpy as np
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from rsvg.data.image_io import MIN_IMAGE_SIDE
from rsvg.errors import SceneUploadError
from rsvg.geo.raster import SceneError, SceneReader, gdal_message

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic TIFF and BigTIFF, both byte orders
STRIP_ROWS = 1024


def is_tiff(data: bytes) -> bool:
    """Whether the bytes start as a TIFF or BigTIFF file does."""
    return data[:4] in TIFF_MAGIC


def decode_scene_upload(data: bytes, max_pixels: int, max_side: int, name: str = "upload") -> np.ndarray | None:
    """An uploaded TIFF that needs scene reading as an ``H × W × 3`` RGB uint8 array at full resolution (bands as
    :class:`~rsvg.geo.raster.SceneReader` chooses them, stretched by percentiles unless 8-bit, nodata black), or
    ``None`` for any other upload (JPEG, PNG, a plain 8-bit RGB TIFF: the picture decoders read those). Raises
    :class:`SceneUploadError` (413) for an image over ``max_pixels`` or ``max_side``, read from its header, (422)
    for one under :data:`~rsvg.data.image_io.MIN_IMAGE_SIDE` pixels a side, and (415) for a TIFF that cannot be
    read."""
    if not is_tiff(data):
        return None
    with MemoryFile(data) as memory:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with memory.open() as src:
                    width, height, dtypes, count = src.width, src.height, set(src.dtypes), src.count
                    georeferenced = src.crs is not None or not src.transform.is_identity
        except RasterioError as exc:
            raise SceneUploadError(415, f"not a readable image: {name}: {gdal_message(exc, memory.name)}") from None
        if width * height > max_pixels or max(width, height) > max_side:
            raise SceneUploadError(
                413,
                f"image is {width}x{height} pixels; the limits are {max_pixels} pixels and {max_side} pixels per side",
            )
        if min(width, height) < MIN_IMAGE_SIDE:
            raise SceneUploadError(
                422,
                f"{name}: {width}x{height} pixels is too small to ground a query in (at least {MIN_IMAGE_SIDE} "
                "pixels a side)",
            )
        if not georeferenced and dtypes == {"uint8"} and count in (1, 3, 4):
            return None
        try:
            with SceneReader(memory.name, name=name) as reader:
                rgb = np.empty((height, width, 3), np.uint8)
                for row in range(0, height, STRIP_ROWS):
                    rows = min(STRIP_ROWS, height - row)
                    rgb[row : row + rows] = reader.read((0, row, width, rows), (width, rows))[0]
                return rgb
        except SceneError as exc:
            raise SceneUploadError(415, f"not a readable image: {exc}") from None
