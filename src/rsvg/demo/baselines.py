"""Query-blind baselines: how well can one do without reading the query?

- **prior box**: always predict the training split's mean box (normalised to each image's size), the best single
  box a model that ignores both image and query could learn under an L1 loss.
- **blind pick**: see the image perfectly (every referred object of it is detected) but not the query, and pick one
  of the image's referred objects at random; its expected Pr@k and meanIoU are computed exactly (mean over the
  candidates). This is the bar that shows a model truly uses language to choose among objects.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from rsvg.boxes import intersection_union, paired_iou
from rsvg.data.dior_rsvg import load_split, read_grounding_annotations
from rsvg.metrics import THRESHOLDS, grounding_metrics


def prior_box_baseline(root: Path, split: str = "test") -> dict[str, float]:
    """The seven metrics of predicting the mean normalised training box on ``split``."""
    train = load_split(root, "train")
    test = load_split(root, split)
    norm = np.array([[s.box[0] / s.width, s.box[1] / s.height, s.box[2] / s.width, s.box[3] / s.height] for s in train])
    mean = norm.mean(0)
    size = np.array([[s.width, s.height, s.width, s.height] for s in test], dtype=np.float64)
    pred = mean[None, :] * size
    gt = np.array([s.box for s in test], dtype=np.float64)
    return grounding_metrics(pred, gt).overall.values


def blind_pick_baseline(root: Path, split: str = "test") -> dict[str, float]:
    """Expected Pr@k and meanIoU on ``split`` of picking one of the image's referred objects at random (query
    ignored)."""
    samples = read_grounding_annotations(root).samples
    by_image: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for s in samples:
        by_image[s.image_id].append(s.box)
    test = load_split(root, split)
    hits = {t: 0.0 for t in THRESHOLDS}
    mean_iou = total_inter = total_union = 0.0
    for s in test:
        cands = np.array(by_image[s.image_id], dtype=np.float64)
        truth = np.repeat(np.array([s.box], dtype=np.float64), len(cands), 0)
        iou = paired_iou(cands, truth)
        inter, union = intersection_union(cands, truth)
        for t in THRESHOLDS:
            hits[t] += float((iou > t).mean())
        mean_iou += float(iou.mean())
        total_inter += float(inter.mean())
        total_union += float(union.mean())
    n = max(len(test), 1)
    values = {f"Pr@{t}": hits[t] / n * 100 for t in THRESHOLDS}
    values["meanIoU"] = mean_iou / n * 100
    values["cumIoU"] = total_inter / total_union * 100 if total_union > 0 else 0.0
    return values
