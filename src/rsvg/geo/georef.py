"""Where a scene's pixels are on the map: its coordinate reference system and geotransform.

Pixel boxes ``(x1, y1, x2, y2)`` are in pixel-corner coordinates (0 is the left edge of the first column), the
convention of GDAL's affine geotransform, so a box maps to the map by the transform alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.transform import Affine

from rsvg.errors import GeoreferenceError

Box = tuple[float, float, float, float]
Ring = list[tuple[float, float]]

WGS84 = "EPSG:4326"


@dataclass(frozen=True)
class Georeference:
    """A scene's coordinate reference system and pixel-to-map affine transform."""

    crs: CRS
    transform: Affine

    @property
    def crs_name(self) -> str:
        """``EPSG:nnnn`` when the CRS has an EPSG code, else its PROJ or WKT text."""
        code = self.crs.to_epsg()
        return f"EPSG:{code}" if code is not None else self.crs.to_string()

    @property
    def crs_urn(self) -> str:
        """The CRS as an OGC URN (``urn:ogc:def:crs:EPSG::32633``), the name the GeoJSON ``crs`` member takes;
        the WKT text for a CRS without an EPSG code."""
        code = self.crs.to_epsg()
        return f"urn:ogc:def:crs:EPSG::{code}" if code is not None else self.crs.to_wkt()

    def polygon(self, box: Box) -> Ring:
        """The pixel box as a closed ring in the CRS, counter-clockwise on the map (RFC 7946's exterior rings);
        a rotated geotransform gives a rotated rectangle."""
        x1, y1, x2, y2 = box
        corners = [self.to_map(x, y) for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))]
        if _signed_area(corners) < 0:
            corners.reverse()
        return [*corners, corners[0]]

    def to_map(self, col: float, row: float) -> tuple[float, float]:
        """Pixel-corner coordinates ``(col, row)`` → ``(x, y)`` in the CRS (the affine geotransform, written out)."""
        t = self.transform
        return (float(t.a * col + t.b * row + t.c), float(t.d * col + t.e * row + t.f))

    def bounds(self, box: Box) -> Box:
        """``(min x, min y, max x, max y)`` in the CRS of the pixel box's four corners."""
        ring = self.polygon(box)
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        return (min(xs), min(ys), max(xs), max(ys))

    def to_wgs84(self, geometry: dict[str, Any], name: str) -> dict[str, Any]:
        """``geometry`` (GeoJSON, in this CRS) in EPSG:4326, longitude first; ``name`` (the file) is named in the
        error when the CRS cannot be transformed."""
        from rasterio.warp import transform_geom

        try:
            return transform_geom(self.crs, WGS84, geometry)
        except (CRSError, ValueError, RuntimeError) as exc:
            raise GeoreferenceError(
                f"{name}: its CRS {self.crs_name} cannot be transformed to {WGS84} ({exc})"
            ) from None

    def gsd_metres(self) -> float | None:
        """The ground sample distance in metres (the mean of the pixel's two sides), ``None`` when the CRS's unit
        is not a length (a geographic CRS in degrees)."""
        if not self.crs.is_projected:
            return None
        unit, factor = self.crs.linear_units_factor
        if not unit or not factor:
            return None
        t = self.transform
        return 0.5 * (math.hypot(t.a, t.d) + math.hypot(t.b, t.e)) * float(factor)


def georeference_of(crs: CRS | None, transform: Affine) -> tuple[Georeference | None, str]:
    """The georeference of a raster from its CRS and transform, or ``None`` and a sentence saying why there are
    no map coordinates (no CRS, no geotransform)."""
    if crs is None:
        if transform.is_identity:
            return None, "it has no georeference (no coordinate reference system, no geotransform)"
        return None, "it has a geotransform but no coordinate reference system"
    if transform.is_identity:
        return None, f"it has a coordinate reference system ({crs.to_string()}) but no geotransform"
    if transform.is_degenerate:
        return None, "its geotransform is degenerate (zero pixel size)"
    return Georeference(crs, transform), ""


def _signed_area(points: list[tuple[float, float]]) -> float:
    """Twice the signed area of a polygon (positive: counter-clockwise with y up)."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True))
