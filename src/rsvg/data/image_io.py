"""Reading images of any common format as RGB uint8 arrays (grayscale and RGBA converted)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageReadError(ValueError):
    """A file is missing or is not an image we can decode."""


def decode_image_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, TIFF, BMP, ...) to an H×W×3 RGB uint8 array."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # 8-bit, 3 channels, BGR
    if arr is not None:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    # Pillow reads a few formats OpenCV does not (e.g. some TIFF variants).
    import io

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from None


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an H×W×3 RGB uint8 array; a clear error names the file otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    return decode_image_rgb(data, str(path))
