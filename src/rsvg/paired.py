"""Two sets of predictions on the same expressions, compared pair by pair.

Used to tell whether two models (MGVLF against an ablation) or two ways of running one model (fp32 against bf16)
differ: the seven metrics of each (:func:`rsvg.metrics.grounding_metrics`, through
:func:`rsvg.engine.evaluate.metrics_from_rows`), how many answers changed, how many crossed IoU 0.5 each way, and
an exact two-sided sign test on those crossings (the expressions both got right or both got wrong say nothing
about which is better).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsvg.metrics import METRIC_NAMES

#: an answer "changed" when a corner moved by more than this many original pixels
CHANGED_PX = 0.5


@dataclass
class PairedComparison:
    """What separates predictions ``a`` from ``b`` on the same expressions (metrics in percent)."""

    count: int
    metrics_a: dict[str, float]
    metrics_b: dict[str, float]
    changed: int  # answers whose box moved by more than CHANGED_PX
    max_shift_px: float
    right_only_a: int  # IoU > 0.5 for a, not for b
    right_only_b: int
    sign_test_p: float  # exact two-sided binomial test of right_only_a against right_only_b
    sign_test_z: float  # the normal approximation's z (positive: a better)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self, name_a: str = "a", name_b: str = "b") -> str:
        delta = self.metrics_b["Pr@0.5"] - self.metrics_a["Pr@0.5"]
        return (
            f"{self.count} expressions: Pr@0.5 {name_a} {self.metrics_a['Pr@0.5']:.2f}, {name_b} "
            f"{self.metrics_b['Pr@0.5']:.2f} ({delta:+.2f}); {self.changed} answers moved by more than {CHANGED_PX} "
            f"px (largest {self.max_shift_px:.1f} px); right only for {name_a}: {self.right_only_a}, only for "
            f"{name_b}: {self.right_only_b} (sign test p = {self.sign_test_p:.3g}, z = {self.sign_test_z:+.2f})"
        )


def sign_test(wins: int, losses: int) -> tuple[float, float]:
    """``(p, z)``: the exact two-sided binomial p-value of ``wins`` against ``losses`` under equal chances, and
    the normal approximation's z (0 when there is no discordant pair)."""
    n = wins + losses
    if n == 0:
        return 1.0, 0.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail), (wins - losses) / math.sqrt(n)


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``predictions.jsonl`` (``rsvg eval``, ``rsvg train``'s ``val_predictions.jsonl``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"index": int(row["index"]), **row})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ValueError(f"{path}:{n}: expected a JSON object with index, pred_box, gt_box and iou") from None
    return rows


def compare_predictions(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> PairedComparison:
    """Pair two prediction sets by expression ``index``; both must hold the same expressions with the same
    ground truth (a ``ValueError`` names the first that differs)."""
    from rsvg.engine.evaluate import metrics_from_rows

    a = {r["index"]: r for r in rows_a}
    b = {r["index"]: r for r in rows_b}
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        raise ValueError(f"the two sets hold different expressions ({len(only)} unpaired, e.g. index {only[0]})")
    if not a:
        raise ValueError("no predictions to compare")
    order = sorted(a)
    for i in order:
        if not np.allclose(a[i]["gt_box"], b[i]["gt_box"]):
            raise ValueError(f"index {i}: the two sets have different ground-truth boxes")
    pa = np.array([a[i]["pred_box"] for i in order], dtype=np.float64)
    pb = np.array([b[i]["pred_box"] for i in order], dtype=np.float64)
    shift = np.abs(pa - pb).max(axis=1)
    right_a = np.array([a[i]["iou"] > 0.5 for i in order])
    right_b = np.array([b[i]["iou"] > 0.5 for i in order])
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    p, z = sign_test(only_a, only_b)
    ma = metrics_from_rows([a[i] for i in order]).overall.values
    mb = metrics_from_rows([b[i] for i in order]).overall.values
    return PairedComparison(
        count=len(order),
        metrics_a={k: ma[k] for k in METRIC_NAMES},
        metrics_b={k: mb[k] for k in METRIC_NAMES},
        changed=int((shift > CHANGED_PX).sum()),
        max_shift_px=float(shift.max()),
        right_only_a=only_a,
        right_only_b=only_b,
        sign_test_p=p,
        sign_test_z=z,
    )
