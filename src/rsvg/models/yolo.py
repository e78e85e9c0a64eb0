"""The one-stage (YOLOv3-style) grounding head's shared parts: anchors, targets, layout, decoding and loss.

Three reference families ground a phrase with a YOLOv3 head that scores every anchor-cell and regresses a box
at each; the answer is the box of the best-scoring anchor-cell:

- FAOA: ``zyang-ur/onestage_grounding`` @ 2fff0943c3bc (``train_yolo.py``: ``build_target``, ``yolo_loss``,
  ``validate_epoch``/``test_epoch``),
- ReSC-base: ``zyang-ur/ReSC`` @ 5cb03df88b4f (``model/loss.py``: ``build_target``, ``yolo_loss``; ``train.py``),
- LBYL-Net: ``svip-lab/LBYLNet`` @ 47a0e83b6db6 (``core/models/utils/losses.py``: ``Loss``, ``_build_target``;
  ``core/utils/misc.py``: ``make_anchors``; ``core/test/test.py``: ``_decode_anchorbased``).

They share the head's output (per grid ``[B, A*5, G, G]``, channel ``a*5 + k`` with ``k`` = tx, ty, tw, th,
conf), the choice of one target anchor-cell per image, the decoding and the loss (a cross-entropy over all
anchor-cells plus 5 × MSE of the regression at the target anchor-cell). They differ in the grids, in how the
anchor numbers are scaled (:class:`AnchorSet`) and in one clamp of the loss (:class:`YoloLossConfig`).

Layout of the flat anchor-cells (:func:`flatten_outputs`): the levels in the order of ``AnchorSet.strides``
(coarse to fine for FAOA and LBYL-Net: 8×8, 16×16, 32×32 at 256 px), then within a level anchor-major, then row
``gj``, then column ``gi``: ``index = offset[level] + (a * G + gj) * G + gi``. This is the order of the
references' ``view(B, A, 5, G, G)[:, :, 4].view(B, -1)`` concatenated over the scales (FAOA ``yolo_loss``, LBYL
``Loss.reshape``), so a flat index means the same anchor-cell as theirs.

Boxes are ``(x1, y1, x2, y2)`` in network-input pixels, as in :mod:`rsvg.boxes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "COCO_ANCHORS",
    "FAOA_ANCHORS",
    "LBYL_ANCHORS",
    "LBYL_LOSS",
    "RESC_ANCHORS",
    "AnchorSet",
    "Decoded",
    "YoloLossConfig",
    "YoloTargets",
    "build_targets",
    "cell_table",
    "decode",
    "flatten_outputs",
    "kmeans_anchors",
    "wh_iou",
    "yolo_grounding_loss",
]

# YOLOv3's 9 COCO anchors (w, h), in 416-px units, smallest first, as the references list them.
COCO_ANCHORS: tuple[tuple[float, float], ...] = (
    (10.0, 13.0),
    (16.0, 30.0),
    (33.0, 23.0),
    (30.0, 61.0),
    (62.0, 45.0),
    (59.0, 119.0),
    (116.0, 90.0),
    (156.0, 198.0),
    (373.0, 326.0),
)
# All three references reverse the list (``anchors_full = [...][::-1]``): largest first.
_REVERSED_COCO = tuple(reversed(COCO_ANCHORS))


@dataclass(frozen=True)
class AnchorSet:
    """Anchors (w, h) and the output levels (grids) that carry them.

    ``anchors``: the anchor numbers, in the order the head's channels use them. ``levels[i]``: the indices into
    ``anchors`` carried by level ``i`` (its channel ``a*5 + k`` belongs to ``anchors[levels[i][a]]``).
    ``strides[i]``: level ``i``'s stride in network pixels (its grid is ``input_size // stride``).

    ``anchor_imsize``: the image size the anchor numbers are measured at. An anchor becomes grid-cell units by
    dividing by ``anchor_imsize / G`` (FAOA and ReSC, ``--anchor_imsize 416``: at a 256-px input the anchors
    are in effect scaled by 256/416); ``None`` divides by ``input_size / G`` = the stride instead, i.e. the
    numbers are network-input pixels (LBYL-Net: ``make_anchors`` keeps them at their 416-px values and
    ``Loss.compute_grid_offsets`` divides by ``img_dim / grid``).
    """

    anchors: tuple[tuple[float, float], ...]
    levels: tuple[tuple[int, ...], ...]
    strides: tuple[int, ...]
    anchor_imsize: float | None = 416.0

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.strides) or not self.levels:
            raise ValueError(f"need one stride per level, got {len(self.levels)} levels, {len(self.strides)} strides")
        used = [i for level in self.levels for i in level]
        if not all(level for level in self.levels) or any(not 0 <= i < len(self.anchors) for i in used):
            raise ValueError(f"each level needs anchors among 0..{len(self.anchors) - 1}, got {self.levels}")
        if len(set(used)) != len(used):
            raise ValueError(f"an anchor may belong to one level only, got {self.levels}")
        if any(s <= 0 for s in self.strides) or (self.anchor_imsize is not None and self.anchor_imsize <= 0):
            raise ValueError("strides and anchor_imsize must be > 0")

    def grids(self, input_size: int) -> tuple[int, ...]:
        """The grid side of each level at ``input_size`` (which every stride must divide)."""
        if any(input_size % s for s in self.strides):
            raise ValueError(f"input size {input_size} is not a multiple of the strides {self.strides}")
        return tuple(input_size // s for s in self.strides)

    def num_cells(self, input_size: int) -> int:
        """The number of anchor-cells N over all levels: Σ A_i · G_i²."""
        return sum(len(level) * g * g for level, g in zip(self.levels, self.grids(input_size), strict=True))

    def offsets(self, input_size: int) -> tuple[int, ...]:
        """The flat index of each level's first anchor-cell."""
        out, total = [], 0
        for level, g in zip(self.levels, self.grids(input_size), strict=True):
            out.append(total)
            total += len(level) * g * g
        return tuple(out)

    def in_cells(self, level: int, input_size: int) -> Tensor:
        """``(A, 2)`` float64: the anchors of ``level`` in its grid-cell units, ``a · G / anchor_imsize``
        (``a · G / input_size`` when ``anchor_imsize`` is None)."""
        g = self.grids(input_size)[level]
        ref = float(input_size if self.anchor_imsize is None else self.anchor_imsize)
        return torch.tensor([self.anchors[i] for i in self.levels[level]], dtype=torch.float64) * (g / ref)

    def in_pixels(self, input_size: int) -> Tensor:
        """``(K, 2)`` float64: the anchors carried by the levels (level order) in network-input pixels."""
        return torch.cat([self.in_cells(i, input_size) * s for i, s in enumerate(self.strides)])


# FAOA: 3 anchors on each of the 8×8, 16×16, 32×32 grids (strides 32, 16, 8), largest on the coarsest.
FAOA_ANCHORS = AnchorSet(_REVERSED_COCO, ((0, 1, 2), (3, 4, 5), (6, 7, 8)), (32, 16, 8), 416.0)
# ReSC-base: all 9 on its one stride-8 grid (32×32 at 256 px); anchor a of the head is the a-th of the reversed list.
RESC_ANCHORS = AnchorSet(_REVERSED_COCO, (tuple(range(9)),), (8,), 416.0)
# LBYL-Net: FAOA's grids and assignment, the numbers used as network-input pixels.
LBYL_ANCHORS = AnchorSet(_REVERSED_COCO, ((0, 1, 2), (3, 4, 5), (6, 7, 8)), (32, 16, 8), None)


def wh_iou(wh: Tensor, anchors: Tensor, eps: float = 1e-16) -> Tensor:
    """``(M, K)``: the IoU of boxes ``wh`` ``(M, 2)`` with anchors ``(K, 2)``, both aligned at a corner:
    ``min(w)·min(h) / (w·h + a_w·a_h − min(w)·min(h) + eps)`` (the references' anchor match; YOLOv2's k-means
    distance is 1 − this)."""
    inter = torch.minimum(wh[:, None, 0], anchors[None, :, 0]) * torch.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = (wh[:, 0] * wh[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    return inter / (union + eps)


def kmeans_anchors(wh: Tensor, k: int, seed: int = 0, iters: int = 300, restarts: int = 10) -> Tensor:
    """``(k, 2)``: k anchors (w, h) for the boxes ``wh`` ``(M, 2)``, sorted by area (smallest first).

    YOLOv2's k-means: distance 1 − IoU of corner-aligned boxes (:func:`wh_iou`), centroids the mean (w, h) of
    their boxes, until no box changes cluster or ``iters`` rounds. Each of ``restarts`` runs is seeded by
    k-means++ with the same distance; the run with the highest mean IoU of a box with its nearest anchor (YOLOv2's
    "Avg IoU") wins, which keeps one unlucky seeding from splitting a cluster in two. All draws come from a
    generator seeded by ``seed``, so the result depends on the data and the seed only. A cluster left empty keeps
    its centroid. For a dataset whose objects are not COCO's (DIOR-RSVG), in the units of ``wh``.
    """
    if wh.ndim != 2 or wh.shape[1] != 2:
        raise ValueError(f"expected (M, 2) widths and heights, got {tuple(wh.shape)}")
    if k < 1 or len(wh) < k:
        raise ValueError(f"need 1 <= k <= number of boxes, got k={k} for {len(wh)} boxes")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    out_dtype = wh.dtype if wh.is_floating_point() else torch.float32
    boxes = wh.detach().to("cpu", torch.float64)
    gen = torch.Generator().manual_seed(seed)
    best, best_iou = boxes[:k], -1.0
    for _ in range(restarts):
        centroids = _kmeans(boxes, _kmeans_pp(boxes, k, gen), iters)
        mean_iou = float(wh_iou(boxes, centroids).max(1).values.mean())
        if mean_iou > best_iou:
            best, best_iou = centroids, mean_iou
    order = (best[:, 0] * best[:, 1]).argsort(stable=True)
    return best[order].to(out_dtype)


def _kmeans_pp(boxes: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeding with the 1 − IoU distance: each next centroid a box drawn with probability ∝ its
    distance to the nearest centroid so far."""
    centroids = boxes[torch.randint(len(boxes), (1,), generator=gen)]
    while len(centroids) < k:
        dist = (1 - wh_iou(boxes, centroids)).min(1).values.clamp(min=0)
        weights = dist if dist.sum() > 0 else torch.ones_like(dist)
        centroids = torch.cat([centroids, boxes[torch.multinomial(weights, 1, generator=gen)]])
    return centroids


def _kmeans(boxes: Tensor, centroids: Tensor, iters: int) -> Tensor:
    """Lloyd's iterations with the 1 − IoU distance from the given centroids."""
    centroids = centroids.clone()
    assign = None
    for _ in range(iters):
        new = wh_iou(boxes, centroids).argmax(1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for c in range(len(centroids)):
            members = boxes[assign == c]
            if len(members):
                centroids[c] = members.mean(0)
    return centroids


def cell_table(
    anchor_set: AnchorSet,
    input_size: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """``(N, 5)``: per flat anchor-cell (layout in the module docstring) its column ``gi``, row ``gj``, anchor
    width and height in grid cells (:meth:`AnchorSet.in_cells`) and the level's stride."""
    rows = []
    for level, g in enumerate(anchor_set.grids(input_size)):
        cells = anchor_set.in_cells(level, input_size)  # (A, 2)
        a, gj, gi = torch.meshgrid(torch.arange(len(cells)), torch.arange(g), torch.arange(g), indexing="ij")
        a, gj, gi = a.flatten(), gj.flatten(), gi.flatten()
        stride = torch.full_like(gi, anchor_set.strides[level], dtype=torch.float64)
        rows.append(torch.stack([gi.double(), gj.double(), cells[a, 0], cells[a, 1], stride], 1))
    return torch.cat(rows).to(device=device, dtype=dtype)


def flatten_outputs(outputs: Sequence[Tensor], anchor_set: AnchorSet) -> tuple[Tensor, Tensor]:
    """The head's per-level outputs ``[B, A_i*5, G_i, G_i]`` (in ``anchor_set.levels`` order) as confidence
    logits ``[B, N]`` and raw regressions ``[B, N, 4]`` (tx, ty, tw, th) in the flat layout of the module
    docstring. Channel ``a*5 + k`` is anchor ``a``'s value ``k``, as the references' ``view(B, A, 5, G, G)``."""
    if len(outputs) != len(anchor_set.levels):
        raise ValueError(f"expected {len(anchor_set.levels)} outputs, got {len(outputs)}")
    confs, regs = [], []
    for out, level in zip(outputs, anchor_set.levels, strict=True):
        b, c, h, w = out.shape
        if c != len(level) * 5 or h != w:
            raise ValueError(f"expected [B, {len(level) * 5}, G, G], got {tuple(out.shape)}")
        x = out.view(b, len(level), 5, h, w).permute(0, 1, 3, 4, 2).reshape(b, -1, 5)
        confs.append(x[..., 4])
        regs.append(x[..., :4])
    return torch.cat(confs, 1), torch.cat(regs, 1)


@dataclass
class Decoded:
    """:func:`decode`'s answer. ``boxes`` ``[B, N, 4]``: every anchor-cell's box; ``index`` ``[B]``: the
    best-scoring anchor-cell; ``box`` ``[B, 4]``: its box; ``score`` ``[B]``: its confidence logit."""

    boxes: Tensor
    index: Tensor
    box: Tensor
    score: Tensor


def decode(conf: Tensor, reg: Tensor, anchor_set: AnchorSet, input_size: int) -> Decoded:
    """Boxes ``(x1, y1, x2, y2)`` in network pixels from the flat logits ``[B, N]`` and regressions ``[B, N, 4]``.

    Per anchor-cell: centre ``((σ(tx) + gi)·stride, (σ(ty) + gj)·stride)``, size ``(exp(tw)·a_w·stride,
    exp(th)·a_h·stride)`` with the anchor in grid cells (FAOA ``validate_epoch``; LBYL
    ``Loss.target_generator``). The answer is the argmax of the confidence over all anchor-cells (the first on a
    tie), FAOA over 4,032 anchor-cells at 256 px, ReSC over 9,216.
    """
    dtype = torch.promote_types(reg.dtype, torch.float32)  # exp of a half-precision tw overflows early
    conf, reg = conf.to(dtype), reg.to(dtype)
    table = cell_table(anchor_set, input_size, dtype, reg.device)
    if reg.shape[1:] != (len(table), 4) or conf.shape != reg.shape[:2]:
        raise ValueError(f"expected conf [B, {len(table)}] and reg [B, {len(table)}, 4]")
    gi, gj, aw, ah, stride = table.unbind(1)
    cx = (reg[..., 0].sigmoid() + gi) * stride
    cy = (reg[..., 1].sigmoid() + gj) * stride
    w = reg[..., 2].exp() * aw * stride
    h = reg[..., 3].exp() * ah * stride
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    score, index = conf.max(1)
    return Decoded(boxes, index, boxes[torch.arange(len(boxes), device=boxes.device), index], score)


@dataclass
class YoloTargets:
    """:func:`build_targets`'s answer, per image: ``index`` ``[B]`` the target anchor-cell's flat index;
    ``reg`` ``[B, 4]`` its regression targets (tx*, ty*, tw*, th*); ``anchor`` ``[B]`` the chosen anchor (an index
    into ``AnchorSet.anchors``); ``level`` ``[B]`` its level."""

    index: Tensor
    reg: Tensor
    anchor: Tensor
    level: Tensor


def build_targets(boxes: Tensor, anchor_set: AnchorSet, input_size: int, eps: float = 1e-16) -> YoloTargets:
    """One target anchor-cell per ground-truth box ``(B, 4)`` (network pixels) and its regression targets.

    The anchor: the best width-height IoU (:func:`wh_iou`, boxes aligned at a corner) among all anchors of all
    levels, the first on a tie; its level is the grid. FAOA ``build_target`` takes the argmax over the 9 IoUs,
    ReSC over its 9 on one grid, LBYL ``Loss.loss`` the best per scale then the scale with the largest best IoU,
    which is the same anchor. Each computes the IoU in a level's cell units; the IoU does not change with the
    unit, so it is computed here in pixels with the anchors of :meth:`AnchorSet.in_pixels`.

    With the box in the chosen grid's cells (``cx = (x1 + x2) / (2·input_size) · G``, ``w = (x2 − x1) /
    input_size · G``): the cell ``gi = ⌊cx⌋``, ``gj = ⌊cy⌋`` (clamped to ``G − 1`` for a centre on the far
    edge; the references' training loops clamp the boxes to ``[0, input_size − 1]`` before), ``tx* = cx − gi``,
    ``ty* = cy − gj``, ``tw* = log(w / a_w + eps)``, ``th* = log(h / a_h + eps)`` with the anchor in the same
    cells, eps = 1e-16 in all three references.
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"expected (B, 4) boxes, got {tuple(boxes.shape)}")
    dtype = boxes.dtype if boxes.is_floating_point() else torch.float32
    boxes = boxes.to(dtype)
    device = boxes.device
    grids = anchor_set.grids(input_size)
    offsets = anchor_set.offsets(input_size)
    level_of = torch.tensor([lv for lv, level in enumerate(anchor_set.levels) for _ in level], device=device)
    local_of = torch.tensor([a for level in anchor_set.levels for a in range(len(level))], device=device)
    anchor_of = torch.tensor([i for level in anchor_set.levels for i in level], device=device)
    cells_of = torch.cat([anchor_set.in_cells(lv, input_size) for lv in range(len(grids))]).to(device, dtype)

    wh = boxes[:, 2:] - boxes[:, :2]
    best = wh_iou(wh, anchor_set.in_pixels(input_size).to(device, dtype)).argmax(1)  # first max on a tie
    level, local = level_of[best], local_of[best]
    g = torch.tensor(grids, device=device, dtype=dtype)[level]
    centre = (boxes[:, :2] + boxes[:, 2:]) / (2 * input_size) * g[:, None]
    size = wh / input_size * g[:, None]
    cell = centre.floor().clamp(min=0).minimum((g - 1)[:, None])
    reg = torch.cat([centre - cell, torch.log(size / cells_of[best] + eps)], 1)
    gi, gj = cell.long().unbind(1)
    gl = g.long()
    index = torch.tensor(offsets, device=device)[level] + (local * gl + gj) * gl + gi
    return YoloTargets(index=index, reg=reg, anchor=anchor_of[best], level=level)


@dataclass(frozen=True)
class YoloLossConfig:
    """The loss's settings. ``coord_weight``: the weight of the regression term (5 in all three references:
    ``yolo_loss(w_coord=5.)``, LBYL ``Loss(off_weight=5.)``). ``sigmoid_clamp``: σ(tx), σ(ty) are clamped to
    ``[sigmoid_clamp, 1 − sigmoid_clamp]`` in the loss (LBYL ``_sigmoid``: 1e-4; FAOA and ReSC: none, 0)."""

    coord_weight: float = 5.0
    sigmoid_clamp: float = 0.0

    def __post_init__(self) -> None:
        if self.coord_weight < 0:
            raise ValueError(f"coord_weight must be >= 0, got {self.coord_weight}")
        if not 0 <= self.sigmoid_clamp < 0.5:
            raise ValueError(f"sigmoid_clamp must be in [0, 0.5), got {self.sigmoid_clamp}")


LBYL_LOSS = YoloLossConfig(sigmoid_clamp=1e-4)


def yolo_grounding_loss(
    conf: Tensor, reg: Tensor, targets: YoloTargets, cfg: YoloLossConfig | None = None
) -> dict[str, Tensor]:
    """The references' loss on the flat logits ``[B, N]`` and regressions ``[B, N, 4]``.

    ``conf``: cross-entropy of the confidence logits over all N anchor-cells with the target anchor-cell as the
    class, averaged over the batch. ``coord``: at the target anchor-cell, MSE(σ(tx), tx*) + MSE(σ(ty), ty*) +
    MSE(tw, tw*) + MSE(th, th*), each averaged over the batch (FAOA/ReSC ``MSELoss(size_average=True)`` per
    coordinate; LBYL's ``(l_x + l_y + l_w + l_h).mean()`` is the same number). ``loss = conf + coord_weight ·
    coord`` (with grad); the two terms are returned detached and unweighted. LBYL-Net reports its offset term
    already multiplied by 5.
    """
    cfg = cfg or YoloLossConfig()
    conf, reg = conf.float(), reg.float()
    rows = torch.arange(len(reg), device=reg.device)
    at = reg[rows, targets.index]  # (B, 4)
    xy = at[:, :2].sigmoid()
    if cfg.sigmoid_clamp > 0:
        xy = xy.clamp(cfg.sigmoid_clamp, 1 - cfg.sigmoid_clamp)
    target = targets.reg.float()
    coord = ((xy - target[:, :2]) ** 2).mean(0).sum() + ((at[:, 2:] - target[:, 2:]) ** 2).mean(0).sum()
    ce = F.cross_entropy(conf, targets.index)
    return {"loss": ce + cfg.coord_weight * coord, "conf": ce.detach(), "coord": coord.detach()}
