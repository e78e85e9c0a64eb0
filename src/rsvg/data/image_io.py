"""Reading images of any common format as RGB uint8 arrays (grayscale and RGBA converted)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

UNKNOWN_FORMAT = "not JPEG, PNG, TIFF, BMP, WebP or another known format"


class ImageReadError(ValueError):
    """A file is missing or is not an image we can decode."""


def check_complete(data: bytes, name: str = "<bytes>") -> None:
    """Refuse empty files and JPEG / PNG files that end early (an interrupted copy or download): OpenCV decodes a
    truncated JPEG with a grey lower part and only a warning, which would train and score on a damaged image."""
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes), not an image")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        # JPEG: the end-of-image marker closes the file (the entropy-coded data never contains FF D9)
        raise ImageReadError(f"{name}: truncated JPEG (no end-of-image marker): the file ends early")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        raise ImageReadError(f"{name}: truncated PNG (no IEND chunk): the file ends early")


def decode_image_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, TIFF, BMP, ...) to an H×W×3 RGB uint8 array."""
    check_complete(data, name)
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # 8-bit, 3 channels, BGR
    if arr is not None:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    # Pillow reads a few formats OpenCV does not (e.g. some TIFF variants).
    import io

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not a readable image ({UNKNOWN_FORMAT})") from None
    except OSError as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an H×W×3 RGB uint8 array; a clear error names the file otherwise."""
    path = Path(path)
    return decode_image_rgb(_read_bytes(path), str(path))


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, after :func:`check_complete` (no pixel decoding: fast
    enough to check every image of a dataset); :class:`ImageReadError` names the file otherwise."""
    path = Path(path)
    data = _read_bytes(path)
    check_complete(data, str(path))
    import io

    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image ({UNKNOWN_FORMAT})") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from None
