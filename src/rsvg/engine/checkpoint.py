"""Checkpoints.

A **model checkpoint** is a folder that rebuilds the model without the training config::

    model.safetensors   the weights
    config.json         rsvg version, the model config, input normalisation, metrics at save time
    text/               the text encoder's tokenizer files and config (so no other folder is needed)

A **training checkpoint** (``OUT/last``) is a model checkpoint plus ``training_state.pt``: optimiser,
scheduler, grad scaler, RNG states, epoch and step, best metric and history — everything ``--resume`` needs.
It holds only tensors and plain Python data (numbers, strings, lists, tuples, dicts) and is read with
``torch.load(weights_only=True)``, which refuses anything else: a pickle can run code when it is loaded, and a
run folder is not a trusted place. States written before the RNG states were plain data hold numpy's as a numpy
array; exactly those numpy types are allowed as well, nothing else.

Folders are written to a temporary sibling and renamed into place, so killing the process at any moment
leaves either the previous checkpoint or the new one, never a half-written one. Every file is written with
Python's own file I/O and synced before the rename, so a full disk is an ``OSError`` (``ENOSPC``) naming the
checkpoint, the temporary folder is removed and the previous checkpoint stays as it was.

Reading refuses what cannot be used with a :class:`~rsvg.errors.CheckpointError` naming the file: a
``config.json`` that is not a JSON mapping, weights that cannot be read or hold NaN or infinite values, a training
state that is empty, truncated, not a training state or holds anything but plain data.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from rsvg import __version__
from rsvg.config import RunConfig, non_finite_place
from rsvg.data.partials import remove_stale_partials
from rsvg.errors import CheckpointError
from rsvg.models.interface import GroundingModel
from rsvg.output_paths import creation_mode

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.pt"
TEXT_DIR = "text"


def _replace_dir(tmp: Path, dst: Path) -> None:
    """Move ``tmp`` to ``dst``, replacing it; at every moment one complete copy exists on disk."""
    old = dst.with_name(f".{dst.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and sync it: a full disk or any other write error is an ``OSError`` here, not
    a short file found later (serialisers that write on their own may report it as another type, or not at all)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_model_files(
    folder: Path, model: torch.nn.Module, meta: dict[str, Any], text_files: dict[str, bytes] | None
) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_file(folder / MODEL_FILE, save_safetensors(state, metadata={"format": "pt", "rsvg_version": __version__}))
    write_file(folder / CONFIG_FILE, json.dumps({"rsvg_version": __version__, **meta}, indent=2).encode())
    if text_files:
        (folder / TEXT_DIR).mkdir()
        for name, data in text_files.items():
            write_file(folder / TEXT_DIR / name, data)


def _state_bytes(training_state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(training_state, buffer)
    return buffer.getvalue()


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    text_files: dict[str, bytes] | None = None,
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write a (model or training) checkpoint folder atomically.

    The folder is written to a hidden ``.NAME.XXXXXXXX.partial`` sibling and renamed into place. Such siblings
    left by a killed run (of this or an earlier process, ``--resume`` included) are removed first, so at most one
    is ever left over per checkpoint name. Only the process that writes checkpoints calls this (rank 0 under
    torchrun, holding the run folder's lock), so the other ranks never delete anything. A write that fails (a
    full disk) removes the temporary folder and raises an ``OSError`` that names ``folder``; the previous
    checkpoint there is left as it was.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder.parent, folder.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    os.chmod(tmp, creation_mode(directory=True))
    try:
        _write_model_files(tmp, model, meta, text_files)
        if training_state is not None:
            write_file(tmp / STATE_FILE, _state_bytes(training_state))
        _replace_dir(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno is None:
            raise
        raise OSError(exc.errno, f"{exc.strerror or exc} while writing the checkpoint", str(folder)) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _check_meta(path: Path, meta: Any) -> None:
    """The parts of a checkpoint's ``config.json`` every reader uses: a ``model`` mapping and the input
    normalisation (``mean``, ``std``: three finite numbers each)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict) or "rsvg_version" not in meta:
        raise CheckpointError(f"{path} is not an rsvg checkpoint config (no 'model' section)")
    for key in ("mean", "std"):
        value = meta.get(key)
        if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
            raise CheckpointError(f"{path}: {key!r} must be the input normalisation, three numbers; got {value!r}")
    if non_finite_place([meta["model"], meta["mean"], meta["std"]]) is not None:
        raise CheckpointError(f"{path}: the model config or the input normalisation holds NaN or infinity")


def read_checkpoint_meta(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint folder, with clear errors for what is missing or unusable."""
    folder = Path(folder)
    if folder.is_file() and folder.name in (MODEL_FILE, CONFIG_FILE):
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint not found: {folder} (a folder with {MODEL_FILE} and {CONFIG_FILE})")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder} is not an rsvg checkpoint: {name} is missing")
    path = folder / CONFIG_FILE
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{path}: not UTF-8 text (byte {exc.start}); it should be the checkpoint's JSON"
        ) from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    _check_meta(path, meta)
    _check_text_files(folder / TEXT_DIR)
    return meta


def _check_text_files(text: Path) -> None:
    """The text encoder's JSON files (tokenizer, config) must be JSON mappings and its word lists (``vocab.txt``,
    ``merges.txt``) UTF-8 text: the libraries that read them otherwise fail without naming the file."""
    if not text.is_dir():
        return
    for path in sorted(text.glob("*.txt")):
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(
                f"{path}: not UTF-8 text (byte {exc.start}); the checkpoint's text encoder files are damaged: "
                "restore the folder from a copy"
            ) from None
    for path in sorted(text.glob("*.json")):
        try:
            value = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"{path}: not valid JSON ({exc}); the checkpoint's text encoder files are damaged: restore the "
                "folder from a copy"
            ) from None
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: not a JSON mapping; the checkpoint's text encoder files are damaged")


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint folder; a :class:`CheckpointError` naming the file when they cannot be read or
    hold NaN or infinite values (the run that wrote them diverged: boxes from them would be NaN)."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    path = folder / MODEL_FILE
    try:
        weights = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"{path}: cannot be read ({exc})") from None
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} tensor(s) hold NaN or infinite values (e.g. {bad[0]}); the run that wrote it "
            "diverged: use a checkpoint saved before that"
        )
    return weights


def rng_state() -> dict[str, Any]:
    """Every random generator's state, as tensors and plain Python data only (see the module docstring)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (also its earlier form, numpy's state as an array)."""
    random.setstate(_as_tuples(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """Python's RNG state takes tuples only."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


#: what a training state needs, with the type each entry must have
_STATE_KEYS: dict[str, type | tuple[type, ...]] = {
    "optimizer": dict,
    "scheduler": dict,
    "scaler": dict,
    "epoch": int,
    "step_in_epoch": int,
    "global_step": int,
    "best": (list, tuple),
    "history": list,
    "rng": list,
}

# numpy's RNG state as states written before it was plain data held it: an array of one plain dtype
_OLD_RNG_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]
try:
    from numpy._core.multiarray import _reconstruct  # numpy 2
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core.multiarray import _reconstruct
_OLD_RNG_GLOBALS += [
    (_reconstruct, "numpy._core.multiarray._reconstruct"),
    (_reconstruct, "numpy.core.multiarray._reconstruct"),
]


def load_training_state(folder: Path) -> dict[str, Any]:
    """The ``training_state.pt`` of a training checkpoint, read safely (``weights_only=True``) and checked; a
    :class:`CheckpointError` that names the file and how to go on when it cannot be used."""
    path = Path(folder) / STATE_FILE
    recover = (
        f"start again without --resume into a new --out, or put back a good copy of {path.name} (the folder's "
        "other files are kept)"
    )
    try:
        with torch.serialization.safe_globals(_OLD_RNG_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise CheckpointError(
                f"{path} holds Python objects other than tensors and plain data; rsvg does not load those (loading "
                f"them could run code): {recover}"
            ) from None
        raise CheckpointError(f"{path} cannot be read (not a training state, or damaged): {recover}") from None
    except OSError:
        raise
    except Exception:  # torch raises several types for empty, truncated or foreign files
        raise CheckpointError(f"{path} cannot be read (empty, truncated or not a training state): {recover}") from None
    problem = _state_problem(state)
    if problem:
        raise CheckpointError(f"{path} is not an rsvg training state ({problem}): {recover}")
    return state


def _state_problem(state: Any) -> str | None:
    """What is wrong with a loaded training state, or None."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a mapping"
    for key, kind in _STATE_KEYS.items():
        if key not in state:
            return f"no {key!r}"
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            return f"{key!r} is a {type(state[key]).__name__}"
    if min(state["epoch"], state["step_in_epoch"], state["global_step"]) < 0:
        return "a negative epoch or step"
    if len(state["best"]) != 2 or not state["rng"] or not all(isinstance(r, dict) for r in state["rng"]):
        return "'best' or 'rng' has the wrong form"
    return None


def find_resume(out: Path) -> Path | None:
    """The last complete training checkpoint under ``out`` (``last``, or the copy a crash left mid-swap)."""
    for name in ("last", ".last.old"):
        p = Path(out) / name
        if (p / STATE_FILE).is_file() and (p / MODEL_FILE).is_file() and (p / CONFIG_FILE).is_file():
            return p
    return None


def checkpoint_meta(model: GroundingModel, cfg: RunConfig, extra: dict[str, Any]) -> dict[str, Any]:
    """What a model checkpoint's config.json holds: enough to rebuild the model and its input pipeline (with a
    BERT-family text encoder, the sentence feature it resolved ``auto`` to)."""
    mode = getattr(model.text, "sentence_mode", None)
    model_cfg = replace(model.cfg, sentence_feature=mode or model.cfg.sentence_feature, backbone_weights=None)
    return {
        "model": model_cfg.to_dict(),
        "mean": list(model.mean),
        "std": list(model.std),
        "run": cfg.to_dict(),
        **extra,
    }


def model_text_files(model: GroundingModel) -> dict[str, bytes]:
    """The text encoder's files a checkpoint carries (its tokenizer and model config)."""
    return model.text.checkpoint_files()
