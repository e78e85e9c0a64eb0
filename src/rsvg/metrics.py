"""The paper's seven grounding metrics, computed by one function for training, evaluation and reports.

- ``Pr@k`` for k in 0.5 ... 0.9: share of samples whose IoU is **strictly greater** than k (as the reference
  evaluation counts it), in percent.
- ``meanIoU``: mean of the per-sample IoU, in percent.
- ``cumIoU``: total intersection over total union across samples (sum I / sum U), in percent.

IoU is computed in original image pixels with no "+1" (see :mod:`rsvg.boxes`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rsvg.boxes import ArrayLike, intersection_union

THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
METRIC_NAMES: tuple[str, ...] = (*(f"Pr@{t}" for t in THRESHOLDS), "meanIoU", "cumIoU")


@dataclass
class Metrics:
    """The seven metrics (percent) over ``count`` samples."""

    count: int
    values: dict[str, float]


@dataclass
class MetricsReport:
    """Overall metrics and the per-category breakdown."""

    overall: Metrics
    per_category: dict[str, Metrics] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "unit": "percent",
            "pr_rule": "IoU > k",
            "overall": asdict(self.overall),
            "per_category": {k: asdict(v) for k, v in sorted(self.per_category.items())},
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """A plain-text table: one row for all samples, then one per category."""
        head = ["category", "n", *METRIC_NAMES]
        rows = [["all", str(self.overall.count), *(f"{self.overall.values[m]:.2f}" for m in METRIC_NAMES)]]
        for name, m in sorted(self.per_category.items()):
            rows.append([name, str(m.count), *(f"{m.values[k]:.2f}" for k in METRIC_NAMES)])
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def fmt(r: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )

        return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def _metrics_from(inter: np.ndarray, union: np.ndarray) -> Metrics:
    n = int(inter.shape[0])
    if n == 0:
        return Metrics(count=0, values={m: float("nan") for m in METRIC_NAMES})
    iou = np.zeros_like(inter)
    np.divide(inter, union, out=iou, where=union > 0)
    values = {f"Pr@{t}": float((iou > t).mean() * 100.0) for t in THRESHOLDS}
    values["meanIoU"] = float(iou.mean() * 100.0)
    total_union = float(union.sum())
    values["cumIoU"] = float(inter.sum() / total_union * 100.0) if total_union > 0 else 0.0
    return Metrics(count=n, values=values)


def grounding_metrics(
    pred_boxes: ArrayLike, gt_boxes: ArrayLike, categories: Sequence[str] | None = None
) -> MetricsReport:
    """Compute the seven metrics for aligned predicted and ground-truth boxes (original pixels).

    ``categories`` (one per sample) adds a per-category breakdown.
    """
    inter, union = intersection_union(pred_boxes, gt_boxes)
    report = MetricsReport(overall=_metrics_from(inter, union))
    if categories is not None:
        cats = np.asarray(list(categories), dtype=object)
        if cats.shape[0] != inter.shape[0]:
            raise ValueError(f"got {cats.shape[0]} categories for {inter.shape[0]} boxes")
        for name in sorted(set(cats.tolist())):
            sel = cats == name
            report.per_category[str(name)] = _metrics_from(inter[sel], union[sel])
    return report
