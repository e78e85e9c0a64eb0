"""Step stamps: a step's output is reused while the options and inputs it was made from are unchanged.

Each step writes ``OUT/.stamps/STEP.json`` holding the key it was made with, after its output is complete. A
step whose stored key equals the new key is skipped; otherwise its output is removed and it runs again. Keys chain:
a step's key includes the keys of the steps it reads, so a changed option rebuilds exactly what depends on it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from rsvg.data.xmlio import atomic_write_text


def make_key(**parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (options, file contents, upstream keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stamps:
    """Reads and writes the stamps of one demo folder."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / ".stamps"

    def _read(self, step: str) -> dict[str, Any]:
        """A step's stamp as stored (its key and what the step recorded); empty when missing or unreadable."""
        try:
            stored = json.loads((self.dir / f"{step}.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return stored if isinstance(stored, dict) else {}

    def is_fresh(self, step: str, key: str) -> bool:
        return self._read(step).get("key") == key

    def stored_key(self, step: str) -> str | None:
        return self._read(step).get("key")

    def info(self, step: str) -> dict[str, Any]:
        """What a step's stamp recorded beside its key (e.g. its wall time, ``seconds``); empty when none."""
        return {k: v for k, v in self._read(step).items() if k != "key"}

    def mark(self, step: str, key: str, info: dict[str, Any] | None = None) -> None:
        atomic_write_text(self.dir / f"{step}.json", json.dumps({"key": key, **(info or {})}, indent=2))

    def invalidate(self, step: str, *outputs: Path) -> None:
        """Forget a step and remove its outputs (they were made with other options)."""
        (self.dir / f"{step}.json").unlink(missing_ok=True)
        for out in outputs:
            if out.is_dir():
                shutil.rmtree(out)
            elif out.exists():
                out.unlink()
