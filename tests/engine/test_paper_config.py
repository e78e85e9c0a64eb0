"""The paper's configuration itself trains: ``configs/mgvlf_dior.yaml`` as a GPU user runs it (ResNet-50, a
bert-base-shaped text encoder, 640 px, Nt = 40, the reference code's three optimiser groups, dropout, the paper's
box loss) memorises eight samples on a CPU.

This runs the paper-sized model end to end, so it takes minutes; it carries the ``paper_scale`` mark and runs with
``make test-paper`` (the default run's ``tests/engine/test_train.py`` trains the same code path on a tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers.datasets import write_official_xml
from helpers.scenes import COLORS, blank, draw_rect
from rsvg.config import load_config
from rsvg.engine.trainer import train

pytestmark = pytest.mark.paper_scale

# eight 800×800 scenes, one object each, placed and sized differently (DIOR's image size)
BOXES = [
    (60, 80, 300, 260),
    (420, 60, 720, 330),
    (100, 420, 330, 720),
    (480, 460, 760, 740),
    (280, 250, 560, 520),
    (40, 300, 260, 600),
    (520, 240, 780, 470),
    (250, 540, 580, 780),
]
NAMES = ["vehicle", "ship", "storagetank", "airplane", "bridge", "dam", "chimney", "windmill"]
EPOCHS = 60  # one step each (batch 8)
EVAL_EVERY = 10


def eight_samples(root: Path) -> Path:
    import cv2

    colours = list(COLORS.values())
    for k, (box, name) in enumerate(zip(BOXES, NAMES, strict=True)):
        image_id = f"{k:05d}"
        img = blank(800, seed=k)
        draw_rect(img, box, colours[k % len(colours)])
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        objects = [{"name": name, "box": box, "description": f"The {name} in the scene"}]
        write_official_xml(root / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", 800, 800, objects)
    for split in ("train", "val", "test"):
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in range(8)))
    return root


def test_the_paper_config_overfits_eight_samples(tmp_path: Path) -> None:
    root = eight_samples(tmp_path / "data")
    # Only what a run on eight samples needs changes: no pretrained weights (none are offline: ResNet-50 starts at
    # random and the text encoder is bert-base's shape with random weights), no loader processes, the epoch count, a
    # validation every few epochs, and the learning rates: the paper's three groups keep their 10:1 ratio, at 10x
    # the paper's rates, so that eight samples are memorised in minutes rather than hours.
    cfg = load_config(
        "configs/mgvlf_dior.yaml",
        [
            f"data.root={root}",
            "model.text_encoder=bert-base-random",
            "model.pretrained_backbone=false",
            "data.workers=0",
            f"train.epochs={EPOCHS}",
            f"train.eval_every={EVAL_EVERY}",
            "train.save_every_epochs=1000",
            "train.step_epochs=[1000]",
            "train.lr=1e-3",
            "train.lr_pretrained=1e-4",
            "train.log_every=1",
        ],
    )
    assert cfg.model.backbone == "resnet50" and cfg.model.image_size == 640 and cfg.model.max_tokens == 40
    assert cfg.train.lr_groups == "reference" and cfg.train.batch_size == 8 and cfg.model.head == "reg"
    torch.manual_seed(0)
    result = train(cfg, tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "val_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert min(r["iou"] for r in rows) > 0.5, [round(r["iou"], 3) for r in rows]
    assert result["best_val_pr50"] == 100.0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"] / 2

