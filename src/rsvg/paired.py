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

from rsvg.engine.evaluate import metrics_from_rows
from rsvg.errors import RowsError
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


#: fields every predictions row needs, and what each holds
REQUIRED_FIELDS = {
    "index": "an integer",
    "category": "a string",
    "pred_box": "4 finite numbers",
    "gt_box": "4 finite numbers",
    "iou": "a finite number",
}
#: fields that say which expression a row is: two rows with the same index must agree on those both have
IDENTITY_FIELDS = ("image_id", "query", "category")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _field_ok(name: str, value: Any) -> bool:
    if name == "index":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "category":
        return isinstance(value, str)
    if name == "iou":
        return _is_number(value)
    return isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)


def _check_row(row: Any, where: str) -> None:
    """:class:`RowsError` naming ``where`` (``FILE:LINE``) and the first field that is missing or not usable."""
    if not isinstance(row, dict):
        raise RowsError(f"{where}: expected a JSON object with index, pred_box, gt_box and iou")
    for name, kind in REQUIRED_FIELDS.items():
        if name not in row:
            raise RowsError(f"{where}: the field {name!r} is missing")
        if not _field_ok(name, row[name]):
            raise RowsError(f"{where}: the field {name!r} is {json.dumps(row[name])[:60]}, not {kind}")


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``predictions.jsonl`` (``rsvg eval``, ``rsvg train``'s ``val_predictions.jsonl``), each with
    its ``FILE:LINE`` under ``"_where"``. The whole file is read as JSON first, then every row is checked: a
    :class:`RowsError` names the file, the line and the field that is missing or not usable, or an index given
    twice."""
    path = Path(path)
    if path.is_dir():
        raise RowsError(f"{path} is a folder; give a predictions.jsonl file")
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise RowsError(f"{path}: not UTF-8 text; give a predictions.jsonl file") from None
    parsed: list[tuple[str, Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            parsed.append((f"{path}:{n}", json.loads(line)))
        except json.JSONDecodeError:
            raise RowsError(f"{path}:{n}: not JSON; expected an object with index, pred_box, gt_box and iou") from None
    rows: list[dict[str, Any]] = []
    seen: dict[int, str] = {}
    for where, row in parsed:
        _check_row(row, where)
        if row["index"] in seen:
            raise RowsError(f"{where}: index {row['index']} is also on {seen[row['index']]}")
        seen[row["index"]] = where
        rows.append({**row, "_where": where})
    return rows


def _where(row: dict[str, Any], fallback: str) -> str:
    return str(row.get("_where", fallback))


def _check_same_expression(ra: dict[str, Any], rb: dict[str, Any]) -> None:
    """:class:`RowsError` naming both rows when two rows of one index are not the same expression (their image,
    query or category differ where both have them) or have different ground truth."""
    index = ra["index"]
    for name in IDENTITY_FIELDS:
        if name in ra and name in rb and ra[name] != rb[name]:
            raise RowsError(
                f"{_where(ra, 'first')} and {_where(rb, 'second')}: index {index} is not the same expression "
                f"({name} {json.dumps(ra[name])[:80]} against {json.dumps(rb[name])[:80]}); compare predictions "
                "made on the same split of the same dataset"
            )
    if not np.allclose(ra["gt_box"], rb["gt_box"]):
        raise RowsError(
            f"{_where(ra, 'first')} and {_where(rb, 'second')}: index {index}: the two sets have different "
            "ground-truth boxes"
        )


def compare_predictions(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> PairedComparison:
    """Pair two prediction sets by expression ``index``; both must hold the same expressions (same image, query
    and category where the rows give them) with the same ground truth: a :class:`RowsError` (a ``ValueError``)
    names the first that differs."""
    a = {r["index"]: r for r in rows_a}
    b = {r["index"]: r for r in rows_b}
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        first = a.get(only[0]) or b[only[0]]
        raise RowsError(
            f"the two sets hold different expressions ({len(only)} unpaired, e.g. index {only[0]} at "
            f"{_where(first, 'one set')} only)"
        )
    if not a:
        raise RowsError("no predictions to compare: both files are empty")
    order = sorted(a)
    for i in order:
        _check_same_expression(a[i], b[i])
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
