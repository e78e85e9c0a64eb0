"""The 20 DIOR object categories, their spellings in the wild and their natural-language names."""

from __future__ import annotations

from collections.abc import Mapping

# Canonical names, exactly as DIOR's XML files spell them (DIOR-RSVG uses the same names).
DIOR_CLASSES: tuple[str, ...] = (
    "airplane",
    "airport",
    "baseballfield",
    "basketballcourt",
    "bridge",
    "chimney",
    "dam",
    "Expressway-Service-area",
    "Expressway-toll-station",
    "golffield",
    "groundtrackfield",
    "harbor",
    "overpass",
    "ship",
    "stadium",
    "storagetank",
    "tenniscourt",
    "trainstation",
    "vehicle",
    "windmill",
)

# Position of each canonical name in DIOR_CLASSES (the class index of the object head).
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(DIOR_CLASSES)}

# Words used in referring expressions for each class (attribute a1 of the paper).
NATURAL_NAMES: dict[str, str] = {
    "airplane": "airplane",
    "airport": "airport",
    "baseballfield": "baseball field",
    "basketballcourt": "basketball court",
    "bridge": "bridge",
    "chimney": "chimney",
    "dam": "dam",
    "Expressway-Service-area": "expressway service area",
    "Expressway-toll-station": "expressway toll station",
    "golffield": "golf field",
    "groundtrackfield": "ground track field",
    "harbor": "harbor",
    "overpass": "overpass",
    "ship": "ship",
    "stadium": "stadium",
    "storagetank": "storage tank",
    "tenniscourt": "tennis court",
    "trainstation": "train station",
    "vehicle": "vehicle",
    "windmill": "windmill",
}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


_BY_KEY: dict[str, str] = {_key(c): c for c in DIOR_CLASSES}


def canonical_category(name: str, mapping: Mapping[str, str] | None = None) -> str | None:
    """Return the canonical DIOR class for ``name`` or ``None`` if it is unknown.

    Matching ignores case, spaces, hyphens and underscores ("Expressway-Service-area",
    "expressway service area" and "expresswayservicearea" are one class). ``mapping`` maps extra names
    (e.g. another dataset's classes) to DIOR classes; its targets must be DIOR classes themselves.
    """
    if mapping:
        for src, dst in mapping.items():
            if _key(src) == _key(name):
                return _BY_KEY.get(_key(dst))
    return _BY_KEY.get(_key(name))


def natural_name(category: str) -> str:
    """Natural words for a canonical class ("groundtrackfield" -> "ground track field")."""
    return NATURAL_NAMES[category]
