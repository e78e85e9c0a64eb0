"""Checkpoints.

A **model checkpoint** is a folder that rebuilds the model without the training config::

    model.safetensors   the weights
    config.json         rsvg version, the model config, input normalisation, metrics at save time
    text/               the text encoder's tokenizer files and config (so no other folder is needed)

A **training checkpoint** (``OUT/last``) is a model checkpoint plus ``training_state.pt``: optimiser,
scheduler, grad scaler, RNG states, epoch and step, best metric and history — everything ``--resume`` needs.

Folders are written to a temporary sibling and renamed into place, so killing the process at any moment
leaves either the previous checkpoint or the new one, never a half-written one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rsvg import __version__
from rsvg.data.partials import remove_stale_partials
from rsvg.errors import CheckpointError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.pt"
TEXT_DIR = "text"
TOKENIZER_FILES = (
    "config.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "merges.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def _replace_dir(tmp: Path, dst: Path) -> None:
    """Move ``tmp`` to ``dst``, replacing it; at every moment one complete copy exists on disk."""
    old = dst.with_name(f".{dst.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def text_assets(tokenizer_folder: Path, model_config_json: str) -> dict[str, bytes]:
    """The files a checkpoint's ``text/`` folder needs: the tokenizer's and the text model's config."""
    files = {
        name: (tokenizer_folder / name).read_bytes()
        for name in TOKENIZER_FILES
        if name != "config.json" and (tokenizer_folder / name).is_file()
    }
    files["config.json"] = model_config_json.encode()
    return files


def _write_model_files(
    folder: Path, model: torch.nn.Module, meta: dict[str, Any], text_files: dict[str, bytes] | None
) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / MODEL_FILE), metadata={"format": "pt", "rsvg_version": __version__})
    (folder / CONFIG_FILE).write_text(json.dumps({"rsvg_version": __version__, **meta}, indent=2))
    if text_files:
        (folder / TEXT_DIR).mkdir()
        for name, data in text_files.items():
            (folder / TEXT_DIR / name).write_bytes(data)


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
    torchrun), so the other ranks never delete anything.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder.parent, folder.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        _write_model_files(tmp, model, meta, text_files)
        if training_state is not None:
            torch.save(training_state, tmp / STATE_FILE)
        _replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_checkpoint_meta(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint folder, with clear errors for what is missing."""
    folder = Path(folder)
    if folder.is_file() and folder.name in (MODEL_FILE, CONFIG_FILE):
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint not found: {folder} (a folder with {MODEL_FILE} and {CONFIG_FILE})")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder} is not an rsvg checkpoint: {name} is missing")
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE}: not valid JSON ({exc})") from None
    if "model" not in meta or "rsvg_version" not in meta:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not an rsvg checkpoint config (no 'model' section)")
    return meta


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    try:
        return load_file(str(folder / MODEL_FILE))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"{folder / MODEL_FILE}: cannot be read ({exc})") from None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_resume(out: Path) -> Path | None:
    """The last complete training checkpoint under ``out`` (``last``, or the copy a crash left mid-swap)."""
    for name in ("last", ".last.old"):
        p = Path(out) / name
        if (p / STATE_FILE).is_file() and (p / MODEL_FILE).is_file() and (p / CONFIG_FILE).is_file():
            return p
    return None
