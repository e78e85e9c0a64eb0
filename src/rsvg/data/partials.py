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

The dataset writers also share how a finished folder takes its destination's place (:func:`replace_folder`: an
interruption at any point leaves the old or the new complete output, never neither). Every writer holds the
destination's lock (:func:`rsvg.output_paths.output_lock`) for the whole write, so a second process writing the same
destination is refused instead of deleting the first one's temporary folder as a stale partial.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import shutil
import uuid
from collections.abc import Callable
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
    the write that follows. Call it while holding the destination's lock
    (:func:`rsvg.output_paths.output_lock`): a second writer of the same destination is then refused before it
    gets here, instead of deleting the first one's live folder.

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


# --- replacing a finished output and locking it while it is written ----------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


def old_copy_path(out: Path) -> Path:
    """A free hidden name beside ``out`` where :func:`replace_folder` keeps the previous output while it swaps
    without an atomic exchange: ``.NAME.old``, or ``.NAME.old-HHHHHHHH`` when that is taken (an earlier copy is
    never overwritten: it may be the only complete one)."""
    out = Path(out)
    old = out.with_name(f".{out.name}.old")
    while os.path.lexists(old):
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    return old


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """The C library's ``renameat2`` (Linux, glibc 2.28+), or ``None`` where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (``renameat2(RENAME_EXCHANGE)``); ``False`` where the system or
    the file system cannot, so the caller falls back to two renames."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace_folder(new: Path, out: Path) -> None:
    """Put the finished folder ``new`` at ``out``, replacing what is there, so that an interruption at any point
    leaves a complete output: the old one or the new one.

    Where the system can swap two paths atomically (Linux), ``out`` always holds one complete folder and the old
    content, then at ``new``'s (hidden, partial-style) name, is deleted afterwards; a killed deletion is cleared by
    the next writer's :func:`remove_stale_partials`. Elsewhere the old folder is first renamed to
    :func:`old_copy_path` and deleted once the new one is in place; an error or interrupt between the two renames
    puts it back at once, and only a killed process leaves it there, complete, under its hidden name (nothing
    deletes it).
    """
    new, out = Path(new), Path(out)
    if not os.path.lexists(out):
        os.replace(new, out)
        return
    if exchange_paths(new, out):
        shutil.rmtree(new, ignore_errors=True)  # the old output, now under the partial's name
        return
    old = old_copy_path(out)
    os.replace(out, old)
    try:
        os.replace(new, out)
    except BaseException:
        os.replace(old, out)  # the old output back in place
        raise
    shutil.rmtree(old, ignore_errors=True)
