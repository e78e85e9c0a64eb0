"""The train / eval / ground commands end to end, and a 2-process DDP run (gloo) under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.cli import set_args
from helpers.models import TINY_MODEL
from rsvg.cli import app

runner = CliRunner()


def test_train_eval_ground_commands(official_dataset, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "--config",
            "configs/mgvlf_lite.yaml",
            "--data",
            str(official_dataset),
            "--out",
            str(out),
            *set_args(
                [*TINY_MODEL, "model.freeze_backbone=false", "model.zoom=false", "train.epochs=1", "train.batch_size=3"]
            ),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "best validation Pr@0.5" in res.output and (out / "best" / "model.safetensors").is_file()

    res = runner.invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(out / "best"),
            "--data",
            str(official_dataset),
            "--split",
            "test",
            "--workers",
            "0",
            "--out",
            str(tmp_path / "ev"),
        ],
        terminal_width=200,
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["overall"]["count"] == 2 and set(metrics["per_category"]) == {"ship", "vehicle"}
    rows = [json.loads(x) for x in (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [2, 4]
    assert {"index", "image_id", "query", "pred_box", "gt_box", "iou"} <= set(rows[0])
    assert "Pr@0.5" in res.output and "cumIoU" in res.output

    image = official_dataset / "JPEGImages" / "00002.jpg"
    res = runner.invoke(
        app,
        ["ground", "--checkpoint", str(out / "best"), str(image), "the ship on the left", "--out", str(tmp_path / "g")],
    )
    assert res.exit_code == 0, res.output
    answer = json.loads(res.output.strip().splitlines()[-1])
    assert answer["width"] == 200 and len(answer["box"]) == 4 and Path(answer["picture"]).is_file()
    # the two heatmaps give different pictures of the same box; an unknown one is a usage error
    ground = ["ground", "--checkpoint", str(out / "best"), str(image), "the ship on the left"]
    res = runner.invoke(app, [*ground, "--out", str(tmp_path / "h"), "--heatmap", "head"])
    assert res.exit_code == 0, res.output
    head = json.loads(res.output.strip().splitlines()[-1])
    assert head["box"] == answer["box"]
    assert Path(head["picture"]).read_bytes() != Path(answer["picture"]).read_bytes()
    assert runner.invoke(app, [*ground, "--heatmap", "nope"]).exit_code == 2
    # bf16 on request: the choice is printed, the answer is close to fp32's; a wrong precision is named
    res = runner.invoke(app, [*ground, "--out", str(tmp_path / "b"), "--precision", "bf16"])
    assert res.exit_code == 0, res.output
    assert "precision bf16 (asked for)" in res.output
    bf16 = json.loads(res.output.strip().splitlines()[-1])
    assert max(abs(a - b) for a, b in zip(bf16["box"], answer["box"], strict=True)) < 0.1 * answer["width"]
    res = runner.invoke(app, [*ground, "--precision", "fp8"])
    assert res.exit_code == 2 and "--precision" in res.output and "auto, fp32, bf16" in res.output

    batch = tmp_path / "pairs.csv"
    batch_ground = ["ground", "--checkpoint", str(out / "best"), "--batch", str(batch), "--out", str(tmp_path / "g2")]
    batch.write_text(f"image,query\n{image},a ship\nmissing.jpg,a ship\n")
    res = runner.invoke(app, batch_ground)
    assert res.exit_code == 2  # a row naming no file: refused before the model runs, with its line
    assert "missing.jpg" in res.output and "pairs.csv:3" in res.output and '"box"' not in res.output
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(b"not a picture at all" * 40)
    batch.write_text(f"image,query\n{image},a ship\n{damaged},a ship\n")
    res = runner.invoke(app, batch_ground)
    assert res.exit_code == 1  # one of two pairs failed while running, and said so
    assert "damaged.jpg" in res.output and res.output.count('"box"') == 1


def test_bad_command_input_is_named(official_dataset, tmp_path):
    res = runner.invoke(app, ["train", "--config", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "nope.yaml" in res.output
    res = runner.invoke(app, ["train", "--config", "configs/mgvlf_lite.yaml", "--set", "train.epochs=many"])
    assert res.exit_code == 2 and "train.epochs" in res.output
    res = runner.invoke(
        app,
        ["train", "--config", "configs/mgvlf_dior.yaml", "--data", str(official_dataset), "--out", str(tmp_path / "r")],
    )
    assert res.exit_code == 2 and "detr-r50" in res.output  # no ResNet-50 weights: says which file to give
    res = runner.invoke(app, ["eval", "--checkpoint", str(tmp_path), "--data", str(official_dataset)])
    assert res.exit_code == 2 and "model.safetensors" in res.output
    res = runner.invoke(app, ["ground", "--checkpoint", str(tmp_path)])
    assert res.exit_code != 0


@pytest.mark.slow
def test_two_process_ddp_training(official_dataset, tmp_path):
    # 5 training samples over 2 ranks (uneven) and 3 validation samples (each seen exactly once)
    (official_dataset / "train.txt").write_text("0\n1\n2\n3\n5\n")
    (official_dataset / "val.txt").write_text("2\n4\n5\n")
    (official_dataset / "test.txt").write_text("")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "rsvg.cli",
        "train",
        "--config",
        "configs/mgvlf_lite.yaml",
        "--data",
        str(official_dataset),
        "--out",
        str(out),
        "--device",
        "cpu",
        *set_args([*TINY_MODEL, "train.epochs=2", "train.batch_size=2", "train.eval_batch_size=1"]),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "training on cpu x2" in proc.stdout
    # summaries and progress lines come from rank 0 alone
    assert proc.stdout.count("best validation Pr@0.5") == 1
    assert proc.stdout.count("training on cpu x2") == 1 and proc.stdout.count("epoch 1/2 step") == 1
    rows = [json.loads(x) for x in (out / "val_predictions.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [2, 4, 5]
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and all(h["val"]["Pr@0.5"] >= 0 for h in history)
    assert (out / "last" / "training_state.pt").is_file()
    state = __import__("torch").load(out / "last" / "training_state.pt", weights_only=False)
    assert len(state["rng"]) == 2  # one RNG state per rank
