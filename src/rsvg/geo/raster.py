"""Reading a raster scene (a GeoTIFF or anything GDAL reads) as 8-bit RGB, one window at a time.

The model reads 8-bit RGB. Scenes are often 16-bit or float and may have more than three bands, so three bands
(or one, repeated as grey) are chosen and each is stretched linearly between two percentiles of its values
(2 and 98 by default). The percentiles come from a decimated overview read (at most :data:`OVERVIEW_SIDE` pixels
a side), so memory stays bounded whatever the scene's size, and nodata pixels never count: they are black in
every tile. 8-bit data is left as it is unless asked otherwise (``stretch="always"``): it is what the model was
trained on.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from rsvg.data.image_io import MIN_IMAGE_SIDE
from rsvg.errors import SceneError
from rsvg.geo.georef import Georeference, georeference_of

#: longest side of the decimated overview read for the percentiles and the overview picture
OVERVIEW_SIDE = 1024
DEFAULT_PERCENTILES = (2.0, 98.0)
#: ``auto``: 8-bit data as it is, other data stretched by percentiles; ``always``: every band stretched
STRETCH_MODES = ("auto", "always")
#: suffixes of files ``rsvg ground`` looks at with rasterio before deciding how to read them
RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".gtif", ".gtiff", ".vrt", ".img", ".jp2"})


def parse_bands(text: str) -> tuple[int, ...]:
    """``"3,2,1"`` → ``(3, 2, 1)``: one or three 1-based band numbers (GDAL's numbering). Raises
    :class:`SceneError` naming ``--bands`` otherwise; whether the bands exist is checked against the file."""
    parts = [p.strip() for p in text.split(",")]
    try:
        bands = tuple(int(p) for p in parts)
    except ValueError:
        raise SceneError(f"--bands {text!r}: give band numbers separated by commas, e.g. 3,2,1") from None
    if len(bands) not in (1, 3):
        raise SceneError(f"--bands {text!r}: give three bands (red, green, blue) or one (shown as grey)")
    if min(bands) < 1:
        raise SceneError(f"--bands {text!r}: bands are numbered from 1, as in GDAL")
    return bands


def parse_percentiles(text: str) -> tuple[float, float]:
    """``"2,98"`` → ``(2.0, 98.0)``; :class:`SceneError` naming ``--percentiles`` unless ``0 <= low < high <= 100``."""
    try:
        low, high = (float(p) for p in text.split(","))
    except ValueError:
        raise SceneError(f"--percentiles {text!r}: give two numbers LOW,HIGH, e.g. 2,98") from None
    if not 0 <= low < high <= 100:
        raise SceneError(f"--percentiles {text!r}: need 0 <= LOW < HIGH <= 100")
    return low, high


@dataclass(frozen=True)
class BandStretch:
    """The linear map of each chosen band to 0..255: ``low`` → 0, ``high`` → 255 (empty: the values as they are,
    for 8-bit data)."""

    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @property
    def identity(self) -> bool:
        return not self.low

    def apply(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``(bands, H, W)`` values and an ``H × W`` validity mask → ``H × W × 3`` RGB uint8, invalid pixels black."""
        if self.identity:
            scaled = np.clip(data, 0, 255)
        else:
            low = np.asarray(self.low, np.float32)[:, None, None]
            span = np.asarray(self.high, np.float32)[:, None, None] - low
            scaled = np.clip((data.astype(np.float32) - low) * (255.0 / span), 0, 255)
        out = np.rint(np.nan_to_num(scaled, nan=0.0)).astype(np.uint8)
        out[:, ~valid] = 0
        if out.shape[0] == 1:
            out = np.repeat(out, 3, axis=0)
        return np.ascontiguousarray(np.moveaxis(out, 0, -1))

    def describe(self) -> str:
        if self.identity:
            return "8-bit values as they are"
        pairs = ", ".join(f"{lo:g}..{hi:g}" for lo, hi in zip(self.low, self.high, strict=True))
        return f"per band {pairs} → 0..255"


def looks_like_raster(path: str | Path) -> bool:
    """Whether ``path``'s suffix is one of :data:`RASTER_SUFFIXES` (GeoTIFF, VRT, ...)."""
    return Path(path).suffix.lower() in RASTER_SUFFIXES


def needs_scene_reading(path: str | Path) -> bool:
    """Whether a raster file must be read as a scene rather than as a picture: it is georeferenced, not 8-bit,
    has other than 1, 3 or 4 bands, or is larger than 8,192 pixels a side. A file rasterio cannot open counts
    as a scene too, so that its error comes from the scene reader, which names the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                geo, _ = georeference_of(src.crs, src.transform)
                return (
                    geo is not None
                    or any(d != "uint8" for d in src.dtypes)
                    or src.count not in (1, 3, 4)
                    or max(src.width, src.height) > 8192
                )
    except (RasterioError, OSError):
        return True


def scene_georeference(path: str | Path) -> tuple[Georeference | None, str]:
    """A raster file's georeference without reading pixels (to refuse map outputs before grounding), or ``None``
    and why; :class:`SceneError` names a file rasterio cannot open."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return georeference_of(src.crs, src.transform)
    except (RasterioError, OSError) as exc:
        if not Path(path).exists():
            raise SceneError(f"scene not found: {path}") from None
        raise SceneError(f"{path}: not a readable raster ({gdal_message(exc, path)})") from None


class SceneReader:
    """An open raster scene: its size, bands, georeference and stretch, and 8-bit RGB windows of it.

    Opening reads one decimated overview (at most ``overview_side`` pixels a side) for the stretch's percentiles
    and the overview picture; :meth:`read` then reads one window at a time (resampled by GDAL to the asked
    size), so the scene is never in memory at full resolution. Not thread-safe: use it from one thread at a time.
    """

    def __init__(
        self,
        path: str | Path,
        bands: tuple[int, ...] | None = None,
        *,
        percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
        stretch: str = "auto",
        nodata: float | None = None,
        overview_side: int = OVERVIEW_SIDE,
        name: str | None = None,
    ) -> None:
        if stretch not in STRETCH_MODES:
            raise SceneError(f"--stretch {stretch!r}: choose one of {', '.join(STRETCH_MODES)}")
        self.path = Path(path)
        #: how messages name the scene (the path, or e.g. "upload" for an in-memory GDAL file)
        self.name = str(path) if name is None else name
        in_memory = str(path).startswith("/vsimem/")
        if not in_memory and not self.path.exists():
            raise SceneError(f"scene not found: {self.name}")
        if self.path.is_dir():
            raise SceneError(f"{self.name}: a folder, not a raster file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._src = rasterio.open(str(path) if in_memory else self.path)
                crs, transform = self._src.crs, self._src.transform
        except (RasterioError, OSError) as exc:
            raise SceneError(f"{self.name}: not a readable raster ({gdal_message(exc, self.path)})") from None
        try:
            self._setup(bands, percentiles, stretch, nodata, overview_side, crs, transform)
        except BaseException:
            self._src.close()
            raise

    def _setup(
        self,
        bands: tuple[int, ...] | None,
        percentiles: tuple[float, float],
        stretch: str,
        nodata: float | None,
        overview_side: int,
        crs,
        transform,
    ) -> None:
        src = self._src
        self.width, self.height, self.band_count = src.width, src.height, src.count
        if min(self.width, self.height) < MIN_IMAGE_SIDE:
            raise SceneError(
                f"{self.name}: {self.width}x{self.height} pixels is too small to ground a query in (at least "
                f"{MIN_IMAGE_SIDE} pixels a side)"
            )
        self.georef: Georeference | None
        self.georef, self.no_georef_reason = georeference_of(crs, transform)
        self.bands = self._check_bands(bands) if bands is not None else self._default_bands()
        dtypes = {src.dtypes[b - 1] for b in self.bands}
        if any(np.dtype(d).kind == "c" for d in dtypes):
            raise SceneError(f"{self.name}: complex-valued bands ({', '.join(sorted(dtypes))}) are not imagery")
        self.dtype = src.dtypes[self.bands[0] - 1] if len(dtypes) == 1 else "mixed"
        self._float = any(np.dtype(d).kind == "f" for d in dtypes)
        # nodata: the value asked for, else each band's own; the file's masks (internal mask, alpha) count too
        if nodata is not None:
            self._check_nodata(nodata, dtypes)
        self.nodata = [nodata if nodata is not None else src.nodatavals[b - 1] for b in self.bands]
        flags = [src.mask_flag_enums[b - 1] for b in self.bands]
        self._mask_band = next(
            (b for b, f in zip(self.bands, flags, strict=True) if MaskFlags.per_dataset in f or MaskFlags.alpha in f),
            None,
        )
        data, overview_valid = self._read_overview(overview_side)
        if not overview_valid.any():
            raise SceneError(
                f"{self.name}: every pixel of the overview is nodata (nodata {self._nodata_text()}): nothing to ground"
            )
        self.stretch = self._stretch(data, overview_valid, percentiles, stretch, dtypes)
        #: the decimated overview as RGB uint8 (``overview_factor`` scene pixels per overview pixel, x and y)
        self.overview = self.stretch.apply(data, overview_valid)

    def _check_nodata(self, value: float, dtypes: set[str]) -> None:
        """Refuse a ``--nodata`` that no pixel of the chosen bands can hold (``-1`` for 8-bit data would otherwise
        wrap around to 255 and blank every white pixel)."""
        for dtype in sorted(dtypes):
            kind = np.dtype(dtype)
            if kind.kind not in "iu":
                continue
            info = np.iinfo(kind)
            if not math.isfinite(value) or value != int(value) or not info.min <= value <= info.max:
                raise SceneError(
                    f"--nodata {value:g}: {self.name} holds {dtype} values ({info.min}..{info.max} whole numbers), "
                    "so no pixel can be nodata; give a value of that range"
                )

    # -- bands -----------------------------------------------------------------------------------------------
    def _check_bands(self, bands: tuple[int, ...]) -> tuple[int, ...]:
        wrong = [b for b in bands if not 1 <= b <= self.band_count]
        if wrong:
            have = "1 band" if self.band_count == 1 else f"{self.band_count} bands (1-{self.band_count})"
            raise SceneError(
                f"--bands {','.join(map(str, bands))}: {self.name} has {have}, no band {', '.join(map(str, wrong))}"
            )
        return bands

    def _default_bands(self) -> tuple[int, ...]:
        """The bands whose colour interpretation is red, green and blue; else the first three; else band 1."""
        interp = list(self._src.colorinterp)
        rgb = tuple(interp.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue) if c in interp)
        if len(rgb) == 3:
            return rgb
        return (1, 2, 3) if self.band_count >= 3 else (1,)

    # -- reading ---------------------------------------------------------------------------------------------
    def read(self, window: tuple[int, int, int, int], out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The window ``(col_off, row_off, width, height)`` in scene pixels, resampled to ``out_size``
        ``(width, height)``: its ``H × W × 3`` RGB uint8 pixels (nodata black) and its ``H × W`` validity mask."""
        col, row, w, h = window
        out_w, out_h = out_size
        if out_w < w or out_h < h:
            resampling = Resampling.average
        elif out_w > w or out_h > h:
            resampling = Resampling.bilinear
        else:
            resampling = Resampling.nearest
        data, valid = self._read_raw(Window(col, row, w, h), (out_h, out_w), resampling)
        return self.stretch.apply(data, valid), valid

    def _read_raw(
        self, window: Window, shape: tuple[int, int], resampling: Resampling
    ) -> tuple[np.ndarray, np.ndarray]:
        """The chosen bands' values ``(bands, H, W)`` in the file's dtype and the validity mask: not nodata in any
        band, not masked by the file's mask or alpha band, finite."""
        try:
            data = self._src.read(
                list(self.bands), window=window, out_shape=(len(self.bands), *shape), resampling=resampling
            )
            valid = np.ones(shape, bool)
            for i, value in enumerate(self.nodata):
                if value is None:
                    continue
                valid &= ~np.isnan(data[i]) if math.isnan(value) else data[i] != np.asarray(value).astype(data.dtype)
            if self._mask_band is not None:
                mask = self._src.read_masks(
                    self._mask_band, window=window, out_shape=shape, resampling=Resampling.nearest
                )
                valid &= mask > 0
        except RasterioError as exc:
            raise SceneError(f"{self.name}: cannot read pixels ({gdal_message(exc, self.path)})") from None
        if self._float:
            valid &= np.isfinite(data).all(0)
        return data, valid

    def _read_overview(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """A decimated read of the whole scene, at most ``side`` pixels a side (nearest neighbour: a sample of the
        values as they are, which keeps the percentiles' tails)."""
        factor = max(1.0, max(self.width, self.height) / side)
        shape = (max(1, round(self.height / factor)), max(1, round(self.width / factor)))
        self.overview_factor = (self.width / shape[1], self.height / shape[0])
        return self._read_raw(Window(0, 0, self.width, self.height), shape, Resampling.nearest)

    def _stretch(
        self, data: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float], mode: str, dtypes: set[str]
    ) -> BandStretch:
        if mode == "auto" and dtypes == {"uint8"}:
            return BandStretch()
        lows, highs = [], []
        for band in data:
            values = band[valid].astype(np.float64)
            low, high = (float(v) for v in np.percentile(values, percentiles))
            if high <= low:  # a constant band: its value maps to 0, anything above it to 255
                high = low + 1.0
            lows.append(low)
            highs.append(high)
        return BandStretch(tuple(lows), tuple(highs))

    # -- description -----------------------------------------------------------------------------------------
    def _nodata_text(self) -> str:
        values = {str(v) for v in self.nodata if v is not None}
        return ", ".join(sorted(values)) or "none set; masked by the file's mask"

    def describe(self) -> str:
        """One line on how the scene is read: size, bands, data type, nodata, stretch, georeference."""
        bands = ",".join(map(str, self.bands))
        nodata = self._nodata_text() if any(v is not None for v in self.nodata) or self._mask_band else "none"
        where = self.georef.crs_name if self.georef is not None else "no map coordinates"
        return (
            f"{self.name}: {self.width}x{self.height} px, {self.band_count} band(s) of {self.dtype}, bands {bands}, "
            f"nodata {nodata}, {self.stretch.describe()}, {where}"
        )

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gdal_message(exc: BaseException, path: str | Path) -> str:
    """GDAL's message, first line, without the file name it often repeats (the caller names the file once); for
    rasterio's "see previous exception", the GDAL error it was raised from."""
    while "previous exception" in str(exc) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    for name in (str(path), Path(path).name):
        text = text.replace(f"{name}: ", "").replace(f"{name}, ", "").replace(name, "the file")
    return text[:300]
