"""Box operations shared by the data layer, the model, the loss and the metrics.

Conventions: boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates (no "+1": a box from 10 to 20
is 10 pixels wide). Degenerate boxes are well defined everywhere: an inverted side (x2 < x1) counts as zero
length, so such a box has zero area, and the IoU of anything with a zero-area box is 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_convert

ArrayLike = np.ndarray | torch.Tensor

__all__ = [
    "box_area",
    "box_convert",
    "clip_boxes",
    "intersection_union",
    "paired_iou",
    "stack_objects",
]


def _as_float64(boxes: ArrayLike) -> np.ndarray:
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (N, 4), got {tuple(arr.shape)}")
    return arr


def box_area(boxes: ArrayLike) -> np.ndarray:
    """Area of each ``(x1, y1, x2, y2)`` box; inverted sides count as zero length."""
    b = _as_float64(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def intersection_union(pred: ArrayLike, gt: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise intersection and union areas of two aligned sets of boxes (float64)."""
    p, g = _as_float64(pred), _as_float64(gt)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {p.shape} and {g.shape}")
    iw = np.clip(np.minimum(p[:, 2], g[:, 2]) - np.maximum(p[:, 0], g[:, 0]), 0, None)
    ih = np.clip(np.minimum(p[:, 3], g[:, 3]) - np.maximum(p[:, 1], g[:, 1]), 0, None)
    inter = iw * ih
    # A degenerate box has zero area and so no intersection either.
    union = box_area(p) + box_area(g) - inter
    return inter, union


def paired_iou(pred: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """Element-wise IoU of aligned boxes; 0 where the union is empty (two degenerate boxes)."""
    inter, union = intersection_union(pred, gt)
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def clip_boxes(boxes: ArrayLike, width: float, height: float) -> np.ndarray:
    """Clip boxes to the image ``[0, width] x [0, height]``."""
    b = _as_float64(boxes).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    return b


def stack_objects(objects: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample object tables (one ``(K, 5)`` tensor per sample, rows ``(class, x1, y1, x2, y2)``) as one
    ``(N, 5)`` table and the sample each row belongs to ``(N,)``."""
    device = objects[0].device if objects else torch.device("cpu")
    if not objects:
        return torch.zeros(0, 5, device=device), torch.zeros(0, dtype=torch.long, device=device)
    counts = torch.tensor([len(o) for o in objects], device=device)
    return torch.cat(objects), torch.repeat_interleave(torch.arange(len(objects), device=device), counts)
