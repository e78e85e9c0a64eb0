"""Removal of the hidden partial folders that killed writers leave next to their destination.

The dataset and checkpoint writers build their output in a hidden sibling of the destination and rename it into
place when it is complete. A process killed before the rename (SIGKILL, out of memory, a lost node) cannot remove
that sibling, and nothing else ever does, so they accumulate (a checkpoint or a dataset each). Every writer calls
:func:`remove_stale_partials` right before it creates its own temporary sibling, which bounds what is left over to
at most the one folder of the last killed run.

Two naming styles are in use, both anchored on the destination's name ``NAME``:

* ``"partial"``: ``.NAME.XXXXXXXX.partial``, made by ``tempfile.mkdtemp(prefix=".NAME.", suffix=".partial")``
  (``XXXXXXXX``: 8 characters from ``a-z``, ``0-9`` and ``_``). Used by
  :class:`rsvg.data.dior_rsvg.GroundingDatasetWriter` (``rsvg build``, ``rsvg review-export``) and
  :func:`rsvg.engine.checkpoint.save_checkpoint` (``rsvg train``'s ``last`` and ``best``).
* ``"tmp"``: ``.NAME.tmp-PID-HHHHHHHH`` (a process id, 8 lowercase hex digits), made by
  :func:`rsvg.synth.write_synthetic_dataset` (``rsvg synth``).

Nothing else is matched: not the destination itself, not the ``.NAME.old`` copies kept during a swap (they may be
the only complete copy), not another destination's partials, not a user's file with a similar name.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Literal

PartialStyle = Literal["partial", "tmp"]

# the tails that follow ".NAME" in each style; the mkdtemp alphabet is tempfile's (lowercase, digits, underscore)
_TAILS: dict[str, str] = {
    "partial": r"\.[a-z0-9_]{8}\.partial",
    "tmp": r"\.tmp-[0-9]+-[0-9a-f]{8}",
}


def remove_stale_partials(parent: Path, final_name: str, style: PartialStyle = "partial") -> list[Path]:
    """Delete the partial folders a killed writer left in ``parent`` for the destination ``parent / final_name``.

    Writers build their output in a hidden sibling and rename it into place once it is complete; a killed
    process leaves that sibling behind, and without this call each killed run adds one more (up to a whole
    dataset or checkpoint each). An entry is removed only when its name is exactly what the writer of ``style``
    (see the module docstring) creates for ``final_name``, and only when it is a plain folder or file; symbolic
    links are left alone. Entries that disappear or cannot be removed meanwhile are skipped, so this never fails
    the write that follows. A second writer running at the same moment for the same destination would lose its
    folder: writing one destination from two processes at once is not supported.

    Returns the paths removed (empty when ``parent`` does not exist).
    """
    if style not in _TAILS:
        raise ValueError(f"style must be one of {sorted(_TAILS)}, got {style!r}")
    if final_name in ("", ".", "..") or "/" in final_name:
        return []
    pattern = re.compile(r"\." + re.escape(final_name) + _TAILS[style])
    parent = Path(parent)
    try:
        entries = [p for p in parent.iterdir() if pattern.fullmatch(p.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed: list[Path] = []
    for path in sorted(entries):
        try:
            if path.is_symlink():
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file():
                path.unlink()
            else:
                continue
        except OSError:
            continue
        if not path.exists():
            removed.append(path)
    return removed
