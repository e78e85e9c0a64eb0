"""A scene's answers as a GeoJSON FeatureCollection: one polygon per ranked answer.

Two forms: in the file's own CRS (named by the collection's ``crs`` member, as GDAL and QGIS read it), and in
EPSG:4326, longitude first, as RFC 7946 asks (no ``crs`` member). Each feature carries ``query``, ``score``,
``rank``, ``tile`` (its window in scene pixels, ``[x1, y1, x2, y2]``), ``box_px`` (the box in scene pixels) and
``image`` (the file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rsvg.data.xmlio import atomic_write_text
from rsvg.geo.georef import GeoreferenceError
from rsvg.geo.scene import SceneGrounding


def feature_collection(result: SceneGrounding, wgs84: bool = False) -> dict[str, Any]:
    """The answers of ``result`` as a FeatureCollection in the file's CRS, or in EPSG:4326 with ``wgs84``.
    Raises :class:`~rsvg.geo.georef.GeoreferenceError` (naming the file) for a scene without map coordinates
    or a CRS that cannot be transformed."""
    geo = result.georef
    if geo is None:
        raise GeoreferenceError(
            f"{result.path}: no map coordinates ({result.no_georef_reason}), so no GeoJSON can be written; "
            "the boxes are in scene pixels only"
        )
    features = []
    for answer in result.answers:
        geometry: dict[str, Any] = {"type": "Polygon", "coordinates": [[list(p) for p in geo.polygon(answer.box)]]}
        if wgs84:
            geometry = geo.to_wgs84(geometry, result.path)
        features.append(
            {
                "type": "Feature",
                "id": answer.rank,
                "geometry": geometry,
                "properties": {
                    "query": result.query,
                    "score": round(answer.score, 4),
                    "rank": answer.rank,
                    "tile": [round(v) for v in answer.tile.box],
                    "box_px": [round(v, 2) for v in answer.box],
                    "image": result.path,
                },
            }
        )
    collection: dict[str, Any] = {"type": "FeatureCollection", "name": Path(result.path).stem}
    if not wgs84:
        collection["crs"] = {"type": "name", "properties": {"name": geo.crs_urn}}
    collection["features"] = features
    return collection


def write_geojson(path: str | Path, collection: dict[str, Any]) -> None:
    """Write a FeatureCollection as JSON, atomically (a temporary file in the same folder, then a rename)."""
    atomic_write_text(Path(path), json.dumps(collection, indent=1) + "\n")
