"""Paired comparison of two prediction sets: counts, the exact sign test, clear errors, the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsvg.cli import app
from rsvg.paired import compare_predictions, read_predictions, sign_test


def _row(index: int, pred: list[float], iou: float, gt: list[float] | None = None) -> dict:
    return {"index": index, "pred_box": pred, "gt_box": gt or [0.0, 0.0, 10.0, 10.0], "iou": iou, "category": "ship"}


def test_sign_test_matches_the_binomial_distribution() -> None:
    # 5 against 0: both tails of Binomial(5, 1/2) at the extremes, 2 / 32
    assert sign_test(5, 0) == (pytest.approx(2 / 32), pytest.approx(5 / math.sqrt(5)))
    # 3 against 3: the whole distribution
    assert sign_test(3, 3)[0] == 1.0
    p, z = sign_test(2, 8)
    assert p == pytest.approx(2 * (1 + 10 + 45) / 2**10) and z < 0
    assert sign_test(0, 0) == (1.0, 0.0)


def test_counts_changed_answers_and_one_sided_wins() -> None:
    a = [_row(0, [0, 0, 10, 10], 1.0), _row(1, [0, 0, 10, 10], 1.0), _row(2, [5, 5, 9, 9], 0.16)]
    b = [_row(2, [0, 0, 10, 10], 1.0), _row(1, [0.2, 0, 10, 10], 0.98), _row(0, [6, 6, 20, 20], 0.04)]
    c = compare_predictions(a, b)
    assert c.count == 3 and c.changed == 2 and c.max_shift_px == pytest.approx(10.0)
    assert (c.right_only_a, c.right_only_b) == (1, 1)
    assert c.metrics_a["Pr@0.5"] == pytest.approx(200 / 3) and c.metrics_b["Pr@0.5"] == pytest.approx(200 / 3)
    assert c.sign_test_p == 1.0
    assert "right only for a: 1" in c.summary()


def test_sets_of_different_expressions_or_ground_truth_are_refused() -> None:
    a = [_row(0, [0, 0, 10, 10], 1.0)]
    with pytest.raises(ValueError, match="different expressions"):
        compare_predictions(a, [_row(1, [0, 0, 10, 10], 1.0)])
    with pytest.raises(ValueError, match="ground-truth"):
        compare_predictions(a, [_row(0, [0, 0, 10, 10], 1.0, gt=[1, 1, 5, 5])])
    with pytest.raises(ValueError, match="no predictions"):
        compare_predictions([], [])


def test_the_command_prints_both_and_names_a_bad_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(_row(i, [0, 0, 10, 10], 1.0)) + "\n" for i in range(4)))
    b.write_text(
        "".join(
            json.dumps(_row(i, [0, 0, 10, 10] if i else [20, 20, 30, 30], 1.0 if i else 0.0)) + "\n" for i in range(4)
        )
    )
    out = tmp_path / "cmp.json"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--names", "fp32,bf16", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "fp32" in result.output and "right only for fp32: 1, only for bf16: 0" in result.output
    saved = json.loads(out.read_text())
    assert saved["names"] == ["fp32", "bf16"] and saved["changed"] == 1 and saved["metrics_b"]["Pr@0.5"] == 75.0
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--names", "fp32"])
    assert result.exit_code == 2 and "--names" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"index": 0}\nnot json\n')
    result = CliRunner().invoke(app, ["compare", str(a), str(bad)])
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        read_predictions(tmp_path / "missing.jsonl")
