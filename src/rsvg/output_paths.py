"""Checks on the paths a command writes to, made before anything is written, and a lock per output.

One guard for every writer, so no command can delete or replace what it reads:

* :func:`check_output_folder` for a folder a command creates or replaces (``rsvg build OUT``, ``synth OUT``,
  ``review-export OUT``, ``train --out``, ``eval --out``): refused when it is a file, when it exists and
  ``--overwrite`` was not given (for commands that replace), and when it is, holds or lies inside one of the
  command's inputs or the current folder. Paths are compared after resolving symbolic links, so a link to the
  input is the input.
* :func:`check_output_file` for a single file (``--json``, ``--out`` of a picture): refused when it is a folder,
  when its parent is a file, when it is one of the inputs, and when it would replace a file inside an input folder.
* :func:`output_lock`: an exclusive lock on a hidden ``.NAME.lock`` file beside an output, held while a process
  writes it. A second process that asks for the same output is refused at once instead of deleting the first
  one's temporary folder as a stale leftover. The lock is released by the operating system when the process
  ends, however it ends, so a killed run never leaves a lock that blocks the next one (only an unlocked, empty
  ``.NAME.lock`` file that the next write takes over and removes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from rsvg.errors import OutputLockedError, OutputPathError

try:  # POSIX; elsewhere writes are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

Inputs = Mapping[str, Path | str | None]


def resolved(path: Path | str) -> Path:
    """The absolute path with symbolic links resolved (as far as the path exists); a link loop is refused."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError for a loop, 3.13 OSError(ELOOP)
        raise OutputPathError(f"{path}: symbolic links that lead back to themselves ({exc})") from None


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_parent(path: Path, option: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{option} {path}: {parent} is a file, not a folder")
            return


def check_output_folder(
    out: Path | str,
    option: str,
    *,
    inputs: Inputs | None = None,
    overwrite: bool | None = None,
    may_lie_inside_inputs: bool = False,
) -> Path:
    """Refuse an output folder that cannot be written safely; returns it resolved.

    ``option`` names the argument in messages (``"OUT"``, ``"--out"``). ``inputs`` maps each input's argument name
    to its path (``None`` entries are skipped). ``overwrite``: ``None`` for a command that adds files to an existing
    folder, ``False``/``True`` for one that replaces the whole folder (then an existing non-empty folder needs
    ``True``). ``may_lie_inside_inputs`` allows an output inside an input (``eval``'s default ``CHECKPOINT/eval_test``)
    but never one that is or holds an input.
    """
    path = Path(out)
    real = resolved(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{option} {path} is a file; give a folder (new or empty) for the output")
    _check_parent(real, option)
    for name, given in (inputs or {}).items():
        if given is None:
            continue
        source = resolved(given)
        if real == source:
            raise OutputPathError(f"{option} {path} is the input {name} ({given}); write the output elsewhere")
        if _inside(source, real):
            raise OutputPathError(
                f"{option} {path} holds the input {name} ({given}); writing there could destroy it, choose a folder "
                "outside it"
            )
        if not may_lie_inside_inputs and _inside(real, source):
            raise OutputPathError(
                f"{option} {path} lies inside the input {name} ({given}); choose a folder outside it"
            )
    if overwrite is not None:
        cwd = Path.cwd().resolve()
        if _inside(cwd, real):
            raise OutputPathError(f"{option} {path} is the current folder or holds it; choose a new folder")
        if not overwrite and path.is_dir() and any(path.iterdir()):
            raise OutputPathError(f"{option} {path} already exists; choose another folder or pass --overwrite")
    return real


def check_output_file(path: Path | str, option: str, *, inputs: Inputs | None = None) -> Path:
    """Refuse an output file that cannot be written: a folder, under a file, one of the inputs, or an existing
    file inside an input folder (an annotation, a split file, a checkpoint's config: writing would replace it)."""
    given = Path(path)
    real = resolved(given)
    if given.is_dir():
        raise OutputPathError(f"{option} {given} is a folder; give a file name (e.g. {given / 'out.json'})")
    _check_parent(real, option)
    for name, source in (inputs or {}).items():
        if source is None:
            continue
        if resolved(source) == real:
            raise OutputPathError(f"{option} {given} is the input {name}; write the output elsewhere")
        if real.is_file() and Path(source).is_dir() and resolved(source) in real.parents:
            raise OutputPathError(
                f"{option} {given} is a file of the input {name} ({source}); writing there would replace it, "
                "choose a path outside it"
            )
    return real


def lock_path(out: Path | str) -> Path:
    """The hidden lock file of an output: ``.NAME.lock`` beside it."""
    out = resolved(out)
    return out.with_name(f".{out.name}.lock")


@contextlib.contextmanager
def output_lock(out: Path | str, what: str = "output") -> Iterator[Path]:
    """Hold the exclusive write lock of ``out`` for the block; :class:`OutputLockedError` if another process has it.

    The lock file's parent folder is created if needed, and the lock file is removed when the block ends (while
    still locked), so a finished or failed write leaves nothing beside ``out``. A process that opened the file just
    before that removal finds, once it has the lock, that the path no longer leads to the file it locked, and
    starts over with a new one. Within one process the lock is not re-entrant: take it once, around the whole write.
    """
    path = lock_path(out)
    if fcntl is None:  # pragma: no cover - Windows
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _locked_descriptor(path, out, what)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)  # closing the descriptor releases the lock


def _locked_descriptor(path: Path, out: Path | str, what: str) -> int:
    """Open and lock ``path``, making sure the file locked is the one the path leads to now."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLockedError(
                f"another rsvg process (pid {holder}) is writing the {what} {out} now; wait for it to finish or "
                "choose another output"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder before us removed this file as it finished: lock the new one


def _umask() -> int:
    """This process's umask, read without changing it where the system says it (Linux), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def creation_mode(directory: bool = False) -> int:
    """The permissions a plain ``open`` or ``mkdir`` would give a new file or folder under the umask. Temporary
    files and folders are created owner-only (0600 / 0700); outputs written through them are set to this before
    they are renamed into place, so a dataset or checkpoint is as readable as any other file the user makes."""
    return (0o777 if directory else 0o666) & ~_umask()
