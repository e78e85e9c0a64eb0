"""Class mappings: other datasets' class names onto the 20 DIOR classes, from a YAML or JSON file.

The file holds one mapping ``source name: DIOR class``, e.g. ``{"car": "vehicle", "oil_tank": "storagetank"}``.
Targets are matched like DIOR names (case, spaces, hyphens and underscores ignored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from rsvg.data.categories import DIOR_CLASSES, canonical_category


def check_class_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    """Validate a mapping (string keys, DIOR-class targets); ``ValueError`` naming the first bad entry."""
    if not isinstance(mapping, Mapping):
        raise ValueError(f"a class mapping must map names to DIOR classes, got {type(mapping).__name__}")
    out: dict[str, str] = {}
    for src, dst in mapping.items():
        if not isinstance(src, str) or not isinstance(dst, str):
            raise ValueError(f"class mapping entry {src!r}: {dst!r} must map a name to a name")
        canonical = canonical_category(dst)
        if canonical is None:
            raise ValueError(
                f"class mapping entry {src!r}: {dst!r} is not a DIOR class (e.g. {', '.join(DIOR_CLASSES[:3])}, ...)"
            )
        out[src] = canonical
    return out


def load_class_mapping(path: Path) -> dict[str, str]:
    """Read and validate a YAML or JSON class-mapping file; ``ValueError`` naming the file on any problem."""
    path = Path(path)
    fmt = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the class mapping ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file in UTF-8, so not a {fmt} class mapping") from None
    try:
        data = json.loads(text) if fmt == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid {fmt}: {str(exc).splitlines()[0]}") from None
    if data is None or data == {}:
        raise ValueError(f"{path}: the class mapping is empty; write one line per class, e.g. 'car: vehicle'")
    try:
        return check_class_mapping(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
