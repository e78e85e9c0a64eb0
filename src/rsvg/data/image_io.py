"""Reading images of any common format as RGB uint8 arrays (grayscale and RGBA converted)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from rsvg.errors import ImageReadError

UNKNOWN_FORMAT = "not JPEG, PNG, TIFF, BMP, WebP or another known format"


# how much of a file's end check_complete looks at for the end-of-image marker
TAIL_BYTES = 1024


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
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in end[-64:]:
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
    """``(width, height)`` of an image file from its header, after :func:`check_complete` on its first and last
    bytes (no pixel decoding and no full read: fast enough to check every image of a dataset before training);
    :class:`ImageReadError` names the file otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(16)
            size = f.seek(0, 2)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    check_complete(head, str(path), tail=tail)
    try:
        with Image.open(path) as im:  # reads the header only
            return int(im.size[0]), int(im.size[1])
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not a readable image ({UNKNOWN_FORMAT})") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from None
