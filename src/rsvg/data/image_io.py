"""Reading images of any common format as RGB uint8 arrays (grayscale and RGBA converted).

Every read looks at the header first: an image over :class:`ImageLimits` (a "decompression bomb": a small file
whose header claims gigapixels) is refused, naming the file and the limit, before a pixel is decoded. The same
limits serve ``rsvg ground`` (``--max-image-pixels``, ``--max-image-side``) and ``rsvg serve``'s uploads.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from rsvg.errors import ImageReadError

UNKNOWN_FORMAT = "not JPEG, PNG, TIFF, BMP, WebP or another known format"

#: the largest image read whole, in pixels (width × height) and per side; shared by ``rsvg ground`` and
#: ``rsvg serve`` (64 MP is 192 MB as RGB, several times that while letterboxing)
MAX_IMAGE_PIXELS = 64_000_000
MAX_IMAGE_SIDE = 16_384
#: the shortest image side grounded: a smaller image holds nothing a box could tell apart
MIN_IMAGE_SIDE = 8

# how much of a file's end check_complete looks at for the end-of-image marker
TAIL_BYTES = 1024

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ImageLimits:
    """The largest image read whole. ``hint`` ends the refusal (e.g. which option raises the limits)."""

    max_pixels: int = MAX_IMAGE_PIXELS
    max_side: int = MAX_IMAGE_SIDE
    hint: str = ""

    def problem(self, width: int, height: int) -> str | None:
        """Why a ``width × height`` image is over the limits, or ``None`` when it is not."""
        if width * height <= self.max_pixels and max(width, height) <= self.max_side:
            return None
        return (
            f"{width}x{height} pixels is over the limits of {self.max_pixels:,} pixels and {self.max_side:,} "
            "pixels per side"
        )

    def check(self, width: int, height: int, name: str) -> None:
        """:class:`ImageReadError` naming ``name`` and the limits when the image is over them."""
        problem = self.problem(width, height)
        if problem is not None:
            hint = f"; {self.hint}" if self.hint else ""
            raise ImageReadError(f"{name}: {problem}{hint}")


DEFAULT_LIMITS = ImageLimits()


def check_image_side(width: int, height: int, name: str) -> None:
    """:class:`ImageReadError` naming ``name`` for an image under :data:`MIN_IMAGE_SIDE` pixels a side (checked
    where a query is grounded, not where a dataset is read)."""
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageReadError(
            f"{name}: {width}x{height} pixels is too small to ground a query in (at least {MIN_IMAGE_SIDE} pixels "
            "a side)"
        )


# Pillow refuses to open an image over twice its own pixel limit without saying its size; rsvg compares the
# header's size with its own limits instead, so headers are read with Pillow's check switched off (one thread at
# a time, since the switch is a module global of Pillow).
_PILLOW_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pillow_size_check_off() -> Iterator[None]:
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def header_size(source: bytes | str | Path | IO[bytes], name: str) -> tuple[int, int]:
    """``(width, height)`` from an image's header (no pixel decoded); :class:`ImageReadError` names ``name``
    when the bytes are no image Pillow knows."""
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with _pillow_size_check_off(), Image.open(fp) as im:
            width, height = im.size
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not a readable image ({UNKNOWN_FORMAT})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from None
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{name}: not a readable image (its header gives no size)")
    return int(width), int(height)


def check_complete(data: bytes, name: str = "<bytes>", *, tail: bytes | None = None) -> None:
    """Refuse empty files and JPEG / PNG files that end early (an interrupted copy or download): OpenCV decodes a
    truncated JPEG with a grey lower part and only a warning, which would train and score on a damaged image.
    ``data`` is the file or its first bytes; ``tail`` its last :data:`TAIL_BYTES` when ``data`` is only the start."""
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes), not an image")
    end = data[-TAIL_BYTES:] if tail is None else tail
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in end:
        # JPEG: the end-of-image marker closes the file (the entropy-coded data never contains FF D9)
        raise ImageReadError(f"{name}: truncated JPEG (no end-of-image marker): the file ends early")
    if data[:8] == PNG_SIGNATURE and b"IEND" not in end[-64:]:
        raise ImageReadError(f"{name}: truncated PNG (no IEND chunk): the file ends early")


def _check_header_limits(data: bytes, name: str, limits: ImageLimits | None) -> None:
    """Refuse an image over ``limits`` by its header. Bytes Pillow cannot identify are left to the decoders,
    which refuse them with their own message (OpenCV has a pixel limit of its own)."""
    if limits is None:
        return
    try:
        width, height = header_size(data, name)
    except ImageReadError:
        return
    limits.check(width, height, name)


def decode_image_rgb(data: bytes, name: str = "<bytes>", limits: ImageLimits | None = DEFAULT_LIMITS) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, TIFF, BMP, ...) to an H×W×3 RGB uint8 array; an image over
    ``limits`` (``None``: no limit) is refused by its header before any pixel is decoded."""
    check_complete(data, name)
    _check_header_limits(data, name, limits)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # 8-bit, 3 channels, BGR
    if arr is not None:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    # Pillow reads a few formats OpenCV does not (e.g. some TIFF variants); the limits were checked above.
    try:
        with _pillow_size_check_off():
            im = Image.open(io.BytesIO(data))
        with im:
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not a readable image ({UNKNOWN_FORMAT})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from None


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise ImageReadError(f"{path}: a folder, not an image file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc.strerror or exc}") from None


def read_image_rgb(path: str | Path, limits: ImageLimits | None = DEFAULT_LIMITS) -> np.ndarray:
    """Read an image file as an H×W×3 RGB uint8 array; a clear error names the file otherwise (an image over
    ``limits`` is refused from its header)."""
    path = Path(path)
    return decode_image_rgb(_read_bytes(path), str(path), limits)


def read_picture(path: str | Path, limits: ImageLimits | None = DEFAULT_LIMITS) -> tuple[np.ndarray, list[str]]:
    """:func:`read_image_rgb` and what reading the file as 8-bit RGB changed (:func:`picture_notes`), for
    commands that tell the user."""
    path = Path(path)
    data = _read_bytes(path)
    rgb = decode_image_rgb(data, str(path), limits)
    return rgb, picture_notes(data, str(path))


def picture_notes(data: bytes, name: str) -> list[str]:
    """What reading ``data`` as an 8-bit RGB picture changes, one sentence each: a 16-bit PNG keeps its high
    byte (data that uses fewer bits looks dark), and a PNG's transparent pixels keep the colour stored under
    them (the alpha channel is dropped). Other formats give no note."""
    if data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 26:
        return []
    depth, colour = data[24], data[25]
    notes = []
    if depth == 16:
        notes.append(
            f"{name}: a 16-bit PNG, read as 8 bits by dividing by 256 (data that uses fewer than 16 bits looks "
            "dark to the model); stretch it to 8 bits first, or save it as a TIFF to have it stretched by "
            "percentiles as scenes are"
        )
    if colour in (4, 6):  # grey + alpha, RGB + alpha
        alpha = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if alpha is not None and alpha.ndim == 3 and alpha.shape[2] in (2, 4):
            clear = int((alpha[..., -1] == 0).sum())
            if clear:
                notes.append(
                    f"{name}: {clear:,} pixels ({clear / alpha[..., -1].size:.1%}) are transparent; the alpha channel "
                    "is dropped, so the model sees the colours stored under them"
                )
    return notes


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, after :func:`check_complete` on its first and last
    bytes (no pixel decoding and no full read: fast enough to check every image of a dataset before training);
    :class:`ImageReadError` names the file otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: a folder, not an image file")
    try:
        with path.open("rb") as f:
            head = f.read(16)
            size = f.seek(0, 2)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc.strerror or exc}") from None
    check_complete(head, str(path), tail=tail)
    return header_size(path, str(path))
