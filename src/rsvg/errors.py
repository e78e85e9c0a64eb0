"""Every exception type rsvg raises on purpose, one kind of bad input or refusal each.

All derive from :class:`RsvgError`: the command line prints any of them as one ``error: ...`` line (exit 2) and
never a traceback, so a new check only has to raise the right type with a message that names the file, field or
option. Types that callers used to catch as a built-in (``ValueError``, ``FileNotFoundError``) still are one.

This module imports nothing from rsvg, so every layer can raise these types without an import circle.
"""

from __future__ import annotations

from dataclasses import dataclass


class RsvgError(Exception):
    """Something rsvg refuses to do as asked; the message says what, where and what to do instead."""


# --- configuration and arguments ------------------------------------------------------------------------------


class ConfigError(RsvgError, ValueError):
    """A config file or ``--set`` override that cannot be used (unknown key, wrong type, value out of range)."""


class DeviceError(RsvgError, ValueError):
    """A ``--device`` that is not a known device or is not present on this machine."""


# --- files and folders the user names ---------------------------------------------------------------------------


class OutputPathError(RsvgError, ValueError):
    """An output path that cannot be written as asked: it is, holds or lies inside an input; it is a file where a
    folder goes (or the reverse); it exists without ``--overwrite``."""


class OutputLockedError(RsvgError):
    """Another rsvg process is writing the same output now."""


class DatasetError(RsvgError):
    """A dataset cannot be used as given; the message names the file and what to do."""


class DatasetNotFoundError(DatasetError):
    """A dataset folder or one of its required parts is missing."""


class ImageReadError(RsvgError, ValueError):
    """A file is missing or is not an image we can decode."""


class CheckpointError(RsvgError, ValueError):
    """A checkpoint folder is missing, incomplete or not an rsvg checkpoint."""


class WeightsNotFoundError(RsvgError, FileNotFoundError):
    """A weights file is not where it was said to be; the message says which file to put where."""


class WeightsFormatError(RsvgError, ValueError):
    """A weights file exists but is not in the expected format (wrong keys, wrong shapes, unreadable)."""


class RowsError(RsvgError, ValueError):
    """A predictions or results file whose rows cannot be used (a missing or non-numeric field, rows that do not
    pair up)."""


# --- queries and scenes -----------------------------------------------------------------------------------------


class QueryTooLongError(RsvgError, ValueError):
    """A query needs more tokens than the model takes (Nt)."""


class SceneError(RsvgError, ValueError):
    """A scene that cannot be read as asked; the message names the file or the argument."""


class GeoreferenceError(RsvgError, ValueError):
    """A scene's coordinates cannot be given or transformed as asked (the message names the file)."""


@dataclass
class SceneUploadError(RsvgError, ValueError):
    """An uploaded scene that cannot be used: ``status`` is the HTTP code to answer with (413 over the limits,
    415 unreadable), ``detail`` the sentence to answer."""

    status: int
    detail: str

    def __str__(self) -> str:
        return self.detail


# --- training ---------------------------------------------------------------------------------------------------


class NonFiniteError(RsvgError, FloatingPointError):
    """A model's boxes became NaN or infinite (weights that diverged, or a corrupt checkpoint): refused before
    they reach a kernel that cannot take them (``roi_align`` crashes the process on them) or a metric."""


class TrainingDivergedError(NonFiniteError):
    """The loss or a predicted box became NaN or infinite; the message names the epoch and step, and the last
    checkpoint written before it is left as it was."""


# --- benchmarks -------------------------------------------------------------------------------------------------


class BenchError(RsvgError, RuntimeError):
    """The benchmark cannot run as asked (missing CUDA, a text encoder that is not there ...)."""


# --- the review tool and its accounts ---------------------------------------------------------------------------


class AccountError(RsvgError, ValueError):
    """A request about accounts that cannot be done (bad name, role or password, unknown user)."""


class LoginThrottled(RsvgError):
    """Too many failed logins for this name or client: ``retry_after`` seconds until the next attempt counts."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after} s")
        self.retry_after = retry_after


class ReviewDBError(RsvgError):
    """The review database cannot be used (unreadable, another dataset's, or a request it must refuse)."""


class ReviewPermissionError(ReviewDBError):
    """A user asked to change a decision that is not theirs."""


class GuardError(RsvgError):
    """A request that breaks a limit: ``status`` is the HTTP code to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
