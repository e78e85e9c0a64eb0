"""Small helpers to read and write Pascal-VOC-style XML by tag name, and to write files atomically."""

from __future__ import annotations

import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rsvg.output_paths import creation_mode


def child_text(elem: ET.Element, tag: str) -> str | None:
    """Stripped text of the first direct child ``tag`` (searched by name, never by position)."""
    found = elem.find(tag)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def parse_number(text: str | None, what: str) -> float:
    """Parse a finite number from an XML field; raise ``ValueError`` naming the field (``nan`` and ``inf`` parse
    as floats but would make every box computation NaN, so they are refused too)."""
    if text is None or text == "":
        raise ValueError(f"missing <{what}>")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"<{what}> is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"<{what}> is not a finite number: {text!r}")
    return value


def parse_bndbox(obj: ET.Element) -> tuple[float, float, float, float]:
    """The ``<bndbox>`` of an ``<object>`` as floats ``(xmin, ymin, xmax, ymax)``."""
    bb = obj.find("bndbox")
    if bb is None:
        raise ValueError("missing <bndbox>")
    return tuple(parse_number(child_text(bb, k), f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[return-value]


def parse_size(root: ET.Element) -> tuple[int, int] | None:
    """``(width, height)`` from ``<size>``, or ``None`` when absent or zero."""
    size = root.find("size")
    if size is None:
        return None
    try:
        w = int(float(child_text(size, "width") or 0))
        h = int(float(child_text(size, "height") or 0))
    except (ValueError, OverflowError):  # not a number, nan, inf
        return None
    return (w, h) if w > 0 and h > 0 else None


def format_number(v: float) -> str:
    """Integers without a decimal point, other values with up to 3 decimals."""
    return str(int(v)) if float(v).is_integer() else f"{v:.3f}".rstrip("0").rstrip(".")


def annotation_element(filename: str, width: int, height: int, folder: str = "JPEGImages") -> ET.Element:
    """A VOC ``<annotation>`` root with filename and size."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    return root


def add_object(
    root: ET.Element, name: str, box: tuple[float, float, float, float], extra: dict[str, str] | None = None
) -> ET.Element:
    """Append an ``<object>`` with ``<name>``, ``<bndbox>`` and any extra text children."""
    obj = ET.SubElement(root, "object")
    ET.SubElement(obj, "name").text = name
    ET.SubElement(obj, "difficult").text = "0"
    bb = ET.SubElement(obj, "bndbox")
    for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
        ET.SubElement(bb, k).text = format_number(v)
    for k, v in (extra or {}).items():
        ET.SubElement(obj, k).text = v
    return obj


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file in the same folder and a rename, ``write`` filling the open binary
    file (e.g. ``torch.save`` into it, with no copy of the bytes in memory). A write error that names no file (a
    full disk met by ``write``) is raised naming ``path``; the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, creation_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno is None or exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (:func:`atomic_write_with`)."""
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_xml(path: Path, root: ET.Element) -> None:
    """Write an indented XML document atomically."""
    ET.indent(root, space="  ")
    atomic_write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n")
