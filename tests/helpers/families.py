"""What the model families' tests share: parameter counts per submodule and a lite config memorising four
samples through rsvg train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers.datasets import make_official_dataset
from rsvg.config import load_config
from rsvg.engine.trainer import train

#: the settings every memorising run shares: checkpoints only at the end, no channels-last on tiny maps
MEMORISE = ["train.save_every_epochs=1000", "train.log_every=50", "train.channels_last=false"]


def submodule_counts(module: torch.nn.Module, depth: int = 1) -> dict[str, int]:
    """Parameters per submodule, by the first ``depth`` parts of their names."""
    counts: dict[str, int] = {}
    for name, p in module.named_parameters():
        key = ".".join(name.split(".")[:depth])
        counts[key] = counts.get(key, 0) + p.numel()
    return counts


def memorise(
    tmp_path_factory: pytest.TempPathFactory, config: str, overrides: list[str], samples: tuple[int, ...] = (0, 1, 2, 3)
) -> Path:
    """``config`` with ``overrides`` trained on four samples (of :func:`make_official_dataset`'s six) and validated
    on the same ones; the run folder."""
    base = tmp_path_factory.mktemp(Path(config).stem + "_memorised")
    root = make_official_dataset(base / "data")
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in samples))
    cfg = load_config(config, [f"data.root={root}", *overrides, *MEMORISE])
    torch.manual_seed(0)
    train(cfg, base / "run")
    return base / "run"


def assert_memorised(run: Path) -> None:
    """The run's validation (its training samples) reached Pr@0.5 100 and its loss fell to a third."""
    rows = [json.loads(x) for x in (run / "val_predictions.jsonl").read_text().splitlines()]
    history = json.loads((run / "history.json").read_text())
    assert len(rows) == 4 and history[-1]["loss"] < history[0]["loss"] / 3
    assert max(h["val"]["Pr@0.5"] for h in history if "val" in h) == 100.0
