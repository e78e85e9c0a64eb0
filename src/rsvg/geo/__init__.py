"""Grounding queries on large georeferenced scenes (GeoTIFFs read with rasterio).

A scene tens of thousands of pixels a side is never read whole: its bands are stretched to 8 bits from a decimated
overview (:mod:`rsvg.geo.raster`), cut into overlapping tiles at the model's input size (:mod:`rsvg.geo.tiling`),
each tile is grounded, and the answers are ranked across tiles by the model's own score, duplicates from overlapping
tiles merged (:mod:`rsvg.geo.scene`). Boxes come back in scene pixels and, through the file's geotransform, in its
coordinate reference system and in EPSG:4326 (:mod:`rsvg.geo.georef`, :mod:`rsvg.geo.geojson`).

rasterio is imported by the submodules that need it, not here.
"""
