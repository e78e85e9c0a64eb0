"""The one-stage families train as MGVLF does: an interrupted run resumes to the same weights, with what is fitted
to the training split when training starts (the LSTM's vocabulary; k-means anchors need more boxes than these
datasets have and are fitted by the same step, ``tests/models/test_faoa.py``) and the references' augmentation
(flips, the random affine transform, colour jitter); and two processes train one model under DDP, every rank
fitting the same vocabulary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from helpers.cli import set_args
from rsvg.config import load_config
from rsvg.engine.trainer import train

#: a one-stage paper config at the size of a test: a random EfficientNet-Lite0 for DarkNet-53, 64 px, narrow fusion
TINY_ONE_STAGE = [
    "model.backbone=efficientnet_lite0",
    "model.pretrained_backbone=false",
    "model.image_size=64",
    "model.max_tokens=12",
    "model.emb_size=16",
    "data.workers=0",
    "train.log_every=50",
    "train.channels_last=false",
    "train.warmup_steps=2",
]
TINY_LBYL = [*TINY_ONE_STAGE, "model.out_dim=16", "model.ctx_dim=8"]


def _config(root: Path, *extra: str):
    return load_config("configs/lbyl_lstm.yaml", [*TINY_LBYL, f"data.root={root}", *extra])


def test_an_interrupted_one_stage_run_resumes_exactly(official_dataset: Path, tmp_path: Path) -> None:
    common = ["train.epochs=3", "train.batch_size=2", "train.checkpoint_every_steps=1", "train.seed=4"]
    cfg = _config(official_dataset, *common)
    assert cfg.data.augment is not None and cfg.data.augment["affine"]  # the reference's augmentation is on
    straight = train(cfg, tmp_path / "a")
    train(_config(official_dataset, *common, "train.epochs=1"), tmp_path / "b")
    resumed = train(cfg, tmp_path / "b", resume=True)
    a = load_file(str(tmp_path / "a" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight["best_val_pr50"] == resumed["best_val_pr50"]
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    # the fitted vocabulary is the checkpoint's, the same in both runs
    meta_a = json.loads((tmp_path / "a" / "best" / "config.json").read_text())["model"]
    meta_b = json.loads((tmp_path / "b" / "best" / "config.json").read_text())["model"]
    assert meta_a["vocabulary"] and meta_a["vocabulary"] == meta_b["vocabulary"]


def test_two_process_ddp_training_of_a_one_stage_family(official_dataset: Path, tmp_path: Path) -> None:
    (official_dataset / "train.txt").write_text("0\n1\n2\n3\n5\n")
    (official_dataset / "val.txt").write_text("2\n4\n5\n")
    (official_dataset / "test.txt").write_text("")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    overrides = [*TINY_ONE_STAGE, "train.epochs=2", "train.batch_size=2", "train.eval_batch_size=1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29523"]
    cmd += ["-m", "rsvg.cli", "train", "--config", "configs/faoa_lstm.yaml", "--data", str(official_dataset)]
    cmd += ["--out", str(out), "--device", "cpu", *set_args(overrides)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("training on cpu x2") == 1 and proc.stdout.count("vocabulary: ") == 1
    rows = [json.loads(x) for x in (out / "val_predictions.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [2, 4, 5]
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and all(h["val"]["Pr@0.5"] >= 0 for h in history)
    state = torch.load(out / "last" / "training_state.pt", weights_only=False)
    assert len(state["rng"]) == 2  # one RNG state per rank
    model = json.loads((out / "best" / "config.json").read_text())["model"]
    assert model["arch"] == "faoa" and model["vocabulary"]
