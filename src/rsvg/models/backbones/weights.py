"""Reading pretrained weight files safely, matching their keys to a module, and reporting what loaded.

Every backbone keeps a :class:`LoadReport` as ``backbone.load_report``: which of its state-dict entries came from
a file (train them with the small learning rate, e.g. 1e-5) and which kept their initialisation (the larger one,
e.g. 1e-4), plus the file keys that were deliberately left out (a classifier head, DETR's transformer) or that
matched nothing. ``print(backbone.load_report)`` prints what loaded and what did not.

Loading is strict by default: a missing or unexpected key, or a shape mismatch, raises :class:`WeightsFormatError`
with the offending names, so a wrong file never half-loads silently. With ``strict=False`` missing and unexpected
keys are only listed in the report (shape mismatches always raise).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rsvg.errors import WeightsFormatError, WeightsNotFoundError

__all__ = [
    "KeyComparison",
    "LoadReport",
    "WeightsFormatError",
    "WeightsNotFoundError",
    "compare_keys",
    "load_into",
    "random_init_report",
    "read_state_dict",
    "strip_prefix",
]

# Buffers that carry no learned information: BatchNorm's step counter. Their absence is never an error.
_BOOKKEEPING_SUFFIXES = ("num_batches_tracked",)


def _is_bookkeeping(key: str) -> bool:
    return key.endswith(_BOOKKEEPING_SUFFIXES)


def _short_list(names: Iterable[str], limit: int = 10) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


@dataclass
class LoadReport:
    """What a module took from a weights file.

    Attributes:
        source: the file the weights came from, or ``"random init"``.
        loaded: module state-dict names (parameters and buffers) set from the file.
        missing: module state-dict names the file did not provide; they keep their initialisation.
        unexpected: file keys (after renaming) that matched nothing in the module.
        ignored: file keys deliberately not used (a classifier, another part of a detector, a dropped stage).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def pretrained(self) -> bool:
        """True when at least one tensor came from a file."""
        return bool(self.loaded)

    def is_loaded(self, name: str) -> bool:
        """Whether the module state-dict entry ``name`` (e.g. ``"layer2.0.conv1.weight"``) came from the file."""
        return name in self.loaded

    def with_prefix(self, prefix: str) -> LoadReport:
        """The same report with ``prefix`` prepended to the module-side names (for a parent module's view)."""
        return LoadReport(
            source=self.source,
            loaded=[prefix + n for n in self.loaded],
            missing=[prefix + n for n in self.missing],
            unexpected=list(self.unexpected),
            ignored=list(self.ignored),
        )

    def summary(self, max_names: int = 8) -> str:
        """A printable multi-line summary: counts, and the first names of each list."""
        lines = [f"weights from {self.source}: {len(self.loaded)} tensors loaded, {len(self.missing)} not loaded"]
        for title, names in (
            ("loaded", self.loaded),
            ("not loaded (kept initialisation)", self.missing),
            ("unexpected in file (unused)", self.unexpected),
            ("ignored file keys (not part of this module)", self.ignored),
        ):
            if names:
                lines.append(f"  {title} [{len(names)}]: {_short_list(names, max_names)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def random_init_report(module: nn.Module) -> LoadReport:
    """The report of a module that loaded nothing: every state-dict entry is listed as not loaded."""
    return LoadReport(source="random init", missing=[k for k in module.state_dict() if not _is_bookkeeping(k)])


def read_state_dict(path: str | Path, *, hint: str = "", allow_pickle: bool = False) -> dict[str, Any]:
    """Read a weights file on the CPU without executing code from it.

    ``.safetensors`` files are read with ``safetensors``; anything else with
    ``torch.load(path, map_location="cpu", weights_only=True)``, which refuses arbitrary pickled objects. A
    training checkpoint that also pickles Python objects (e.g. an ``argparse.Namespace``) needs
    ``allow_pickle=True``, which runs the unpickler in full: use it only for files you trust.

    Args:
        path: the file.
        hint: what file to put there, appended to the error when the file does not exist.
        allow_pickle: allow full unpickling (trusted files only).

    Returns:
        The loaded object: usually a ``dict`` of tensors, or a checkpoint ``dict`` holding one.

    Raises:
        WeightsNotFoundError: the file does not exist.
        WeightsFormatError: the file cannot be read as a PyTorch or safetensors weights file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        message = f"weights file not found: {path}"
        raise WeightsNotFoundError(message + (f". {hint}" if hint else ""))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # safetensors raises its own error types
            raise WeightsFormatError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise WeightsFormatError(f"{path} is not a readable PyTorch weights file: {exc}") from exc
        detail = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" (it pickles {detail.group(1)})" if detail else ""
        raise WeightsFormatError(
            f"{path} holds Python objects besides tensors{what}, which are not loaded by default for safety. "
            "If you trust the file, pass allow_pickle=True, or re-save only its state dict: "
            "torch.save(torch.load(p, weights_only=False)['model'], 'model_only.pth')"
        ) from exc
    except Exception as exc:  # a corrupt or foreign file fails anywhere in the unpickler (IndexError, EOFError...)
        raise WeightsFormatError(
            f"{path} is not a readable PyTorch weights file ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, Mapping):
        raise WeightsFormatError(f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of tensors)")
    return dict(obj)


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], list[str]]:
    """Split a state dict into the entries under ``prefix`` (prefix removed) and the other keys."""
    inside = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    outside = [k for k in state_dict if not k.startswith(prefix)]
    return inside, outside


@dataclass
class KeyComparison:
    """Keys of a module's state dict compared with those of a weights dict."""

    matched: list[str]
    missing: list[str]
    unexpected: list[str]
    shape_mismatch: list[str]


def compare_keys(module_state: Mapping[str, Tensor], weights: Mapping[str, Any]) -> KeyComparison:
    """Compare names and shapes; BatchNorm step counters (``num_batches_tracked``) are never missing/unexpected.

    ``shape_mismatch`` entries read ``"name: file (a, b) vs module (c, d)"``.
    """
    matched: list[str] = []
    mismatch: list[str] = []
    for key, target in module_state.items():
        if key not in weights:
            continue
        value = weights[key]
        if not isinstance(value, Tensor):
            mismatch.append(f"{key}: file holds a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != tuple(target.shape):
            mismatch.append(f"{key}: file {tuple(value.shape)} vs module {tuple(target.shape)}")
        else:
            matched.append(key)
    missing = [k for k in module_state if k not in weights and not _is_bookkeeping(k)]
    unexpected = [k for k in weights if k not in module_state and not _is_bookkeeping(k)]
    return KeyComparison(matched=matched, missing=missing, unexpected=unexpected, shape_mismatch=mismatch)


def load_into(
    module: nn.Module,
    weights: Mapping[str, Any],
    *,
    source: str,
    ignored: Iterable[str] = (),
    strict: bool = True,
) -> LoadReport:
    """Load ``weights`` (already renamed to the module's names) into ``module`` and report what happened.

    Args:
        module: the target module.
        weights: tensors keyed by the module's state-dict names.
        source: where they came from (for the report and error messages).
        ignored: file keys the caller deliberately left out of ``weights`` (listed in the report).
        strict: raise on missing or unexpected keys instead of only reporting them.

    Raises:
        WeightsFormatError: shapes differ, or (``strict``) keys are missing or unexpected.
    """
    module_state = module.state_dict()
    cmp = compare_keys(module_state, weights)
    if cmp.shape_mismatch:
        raise WeightsFormatError(
            f"{source}: {len(cmp.shape_mismatch)} tensors have the wrong shape for this model (is it the right "
            f"architecture?): {_short_list(cmp.shape_mismatch, 5)}"
        )
    if strict and (cmp.missing or cmp.unexpected):
        parts = []
        if cmp.missing:
            parts.append(f"missing {len(cmp.missing)} keys: {_short_list(cmp.missing)}")
        if cmp.unexpected:
            parts.append(f"unexpected {len(cmp.unexpected)} keys: {_short_list(cmp.unexpected)}")
        raise WeightsFormatError(
            f"{source} does not match the model ({'; '.join(parts)}). Pass strict=False to load what matches."
        )
    to_load = {k: weights[k] for k in cmp.matched}
    for key in module_state:
        if _is_bookkeeping(key) and key in weights:
            to_load[key] = weights[key]
    module.load_state_dict(to_load, strict=False)
    return LoadReport(
        source=source,
        loaded=cmp.matched,
        missing=cmp.missing,
        unexpected=cmp.unexpected,
        ignored=list(ignored),
    )
