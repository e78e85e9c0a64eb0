"""Evaluation: run a model over a split, map boxes back to original pixels, compute the seven metrics.

A model whose boxes are NaN or infinite is refused (:class:`~rsvg.errors.NonFiniteError`) instead of being
scored: no metric is ever NaN because of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from rsvg.boxes import paired_iou
from rsvg.data.dataset import RSVGDataset, box_to_original
from rsvg.data.xmlio import atomic_write_text
from rsvg.engine import distributed as dist
from rsvg.engine.allocator import keep_freed_memory
from rsvg.engine.amp import autocast_context
from rsvg.engine.batching import collate, forward_batch, to_device
from rsvg.engine.feature_cache import encode_images
from rsvg.engine.sampler import ImageBatchSampler
from rsvg.errors import NonFiniteError
from rsvg.metrics import MetricsReport, grounding_metrics
from rsvg.models.stages import stage_reports


def eval_loader(dataset: RSVGDataset, batch_size: int, workers: int, device: torch.device) -> DataLoader:
    """Every sample exactly once across ranks (no padding, no drop_last), in batches that keep each image's
    expressions together (:class:`~rsvg.engine.sampler.ImageBatchSampler`): each image is decoded and encoded
    once."""
    sampler = ImageBatchSampler(
        [s.image_id for s in dataset.samples], batch_size, rank=dist.rank(), world_size=dist.world_size()
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def share_image_features(model: torch.nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
    """Run the backbone once per distinct image of an evaluation batch (a split lists an image's expressions
    one after another, so a batch of 16 holds ~3 images), in chunks of
    :func:`~rsvg.engine.feature_cache.backbone_batch_size` (one image at a time on a CPU), and give every sample
    its image's map.

    Only for evaluation, where equal ``image_id`` means equal pixels (no augmentation). Returns the batch
    unchanged when it already carries features."""
    if "image" not in batch or "image_features" in batch:
        return batch
    first: dict[str, int] = {}
    for k, image_id in enumerate(batch["image_id"]):
        first.setdefault(image_id, k)
    net = getattr(model, "module", model)  # DistributedDataParallel
    images = batch["image"]
    if len(first) < len(batch["image_id"]):
        images = images.index_select(0, torch.tensor(list(first.values()), device=images.device))
    maps = encode_images(net, images, len(images))
    if len(first) < len(batch["image_id"]):
        slot = {image_id: n for n, image_id in enumerate(first)}
        maps = maps.index_select(0, torch.tensor([slot[i] for i in batch["image_id"]], device=maps.device))
    shared = dict(batch)
    shared["image_features"] = maps
    del shared["image"]
    return shared


def stage_fields(
    model: torch.nn.Module, out: Any, batch: dict[str, Any], image_size: int, gt: np.ndarray
) -> list[dict[str, Any]]:
    """Per sample, what each stage that ran says about its answer: whether it changed it (under its ``step_key``)
    and, where a stage names a ``before_field``, the IoU the box had before it."""
    fields: list[dict[str, Any]] = [{} for _ in range(len(gt))]
    for report in stage_reports(model.stage_list(), out.stages):
        stage = report.stage
        if stage.step_key and report.changed is not None:
            for k, flag in enumerate(report.changed.tolist()):
                fields[k][stage.step_key] = bool(flag)
        if stage.before_field and report.boxes_before is not None:
            boxes = box_to_original(report.boxes_before.float() * image_size, batch["letterbox"]).cpu().numpy()
            for k, value in enumerate(paired_iou(boxes, gt)):
                fields[k][stage.before_field] = float(value)
    return fields


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    image_size: int,
    amp: str = "off",
    channels_last: bool = False,
) -> list[dict[str, Any]]:
    """One row per sample of this rank: index, image, query, category, predicted and ground-truth boxes in
    original pixels, IoU, and what the model's stages say about the answer (:func:`stage_fields`)."""
    model.eval()
    keep_freed_memory()  # each batch allocates the same large maps again (rsvg.engine.allocator)
    rows: list[dict[str, Any]] = []
    for batch in loader:
        batch = to_device(batch, device, channels_last)
        with autocast_context(device, amp):
            batch = share_image_features(model, batch)
            out = forward_batch(model, batch)
        _check_boxes(out.boxes, batch)
        pred = box_to_original(out.boxes.float() * image_size, batch["letterbox"]).cpu().numpy()
        gt = batch["orig_box"].cpu().numpy()
        iou = paired_iou(pred, gt)
        extra = stage_fields(getattr(model, "module", model), out, batch, image_size, gt)
        for k in range(len(pred)):
            rows.append(
                {
                    "index": int(batch["index"][k]),
                    "image_id": batch["image_id"][k],
                    "query": batch["query"][k],
                    "category": batch["category"][k],
                    "pred_box": [float(v) for v in pred[k]],
                    "gt_box": [float(v) for v in gt[k]],
                    "iou": float(iou[k]),
                    **extra[k],
                }
            )
    # in the split's order (the batches group by image)
    position = {s.index: k for k, s in enumerate(getattr(loader.dataset, "samples", ()))}
    if position:
        rows.sort(key=lambda r: position[r["index"]])
    return rows


def _check_boxes(boxes: torch.Tensor, batch: dict[str, Any]) -> None:
    """Refuse NaN or infinite predicted boxes, naming the first sample that has one."""
    finite = torch.isfinite(boxes).all(-1)
    if not bool(finite.all()):
        k = int((~finite).nonzero()[0, 0])
        raise NonFiniteError(
            f"the model predicted a NaN or infinite box for {batch['image_id'][k]} ({batch['query'][k]!r}): its "
            "weights or its input are not finite"
        )


def predict_all(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    image_size: int,
    amp: str = "off",
    channels_last: bool = False,
) -> list[dict[str, Any]]:
    """:func:`predict` on every rank and :func:`gather_rows`: all rows, sorted by index. A rank that meets
    non-finite boxes tells the others before the gather, so every rank raises :class:`NonFiniteError` instead
    of the others waiting for it forever."""
    problem: str | None = None
    rows: list[dict[str, Any]] = []
    try:
        rows = predict(model, loader, device, image_size=image_size, amp=amp, channels_last=channels_last)
    except NonFiniteError as exc:
        problem = str(exc)
    if dist.any_rank(problem is not None):
        raise NonFiniteError(problem or "another process met a NaN or infinite box")
    return gather_rows(rows)


def gather_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All ranks' rows, one per global index, sorted by index."""
    merged: dict[int, dict[str, Any]] = {}
    for part in dist.all_gather_objects(rows):
        for row in part:
            merged[row["index"]] = row
    return [merged[i] for i in sorted(merged)]


def metrics_from_rows(rows: list[dict[str, Any]]) -> MetricsReport:
    """The seven metrics (and per category) of prediction rows; the one metrics function does the work."""
    pred = np.array([r["pred_box"] for r in rows], dtype=np.float64).reshape(-1, 4)
    gt = np.array([r["gt_box"] for r in rows], dtype=np.float64).reshape(-1, 4)
    return grounding_metrics(pred, gt, [r["category"] for r in rows])


def write_predictions(path: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON line per sample (index, image, query, predicted box, ground-truth box, IoU)."""
    atomic_write_text(Path(path), "".join(json.dumps(r) + "\n" for r in rows))
