"""Cutting a scene into overlapping tiles, and ranking and merging the tiles' answers.

A tile is a window of the scene ``side`` pixels a side, read resampled to the model's input size (``side`` is the
model's ``image_size`` times the scale: scene pixels per model pixel). Neighbouring tiles overlap, so an object cut
by one tile's edge is whole in another; the last tile of a row or column is moved back to end at the scene's edge,
so every tile is full-sized unless the scene itself is smaller than a tile. Because the tiles overlap, one object
can be the answer of several of them: answers are ranked by the model's score and a box that overlaps a better
one by more than an IoU threshold is dropped (greedy non-maximum suppression in scene pixels).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rsvg.data.image_io import MIN_IMAGE_SIDE

Box = tuple[float, float, float, float]

DEFAULT_OVERLAP = 0.25
MAX_OVERLAP = 0.9
DEFAULT_MERGE_IOU = 0.5


@dataclass(frozen=True)
class Tile:
    """A window of the scene in scene pixels and the size it is read at for the model."""

    index: int
    col: int
    row: int
    width: int
    height: int
    out_width: int
    out_height: int

    @property
    def window(self) -> tuple[int, int, int, int]:
        """``(col_off, row_off, width, height)`` in scene pixels."""
        return (self.col, self.row, self.width, self.height)

    @property
    def box(self) -> Box:
        """``(x1, y1, x2, y2)`` in scene pixels."""
        return (float(self.col), float(self.row), float(self.col + self.width), float(self.row + self.height))

    def to_scene(self, box: Box) -> Box:
        """A box in the pixels of the tile as read (``out_width × out_height``) → scene pixels."""
        sx, sy = self.width / self.out_width, self.height / self.out_height
        x1, y1, x2, y2 = box
        return (self.col + x1 * sx, self.row + y1 * sy, self.col + x2 * sx, self.row + y2 * sy)


def tile_side(image_size: int, scale: float) -> int:
    """The side in scene pixels of a tile read at ``scale`` scene pixels per model pixel."""
    if not scale > 0:
        raise ValueError(f"the scale must be positive, got {scale}")
    return max(1, round(image_size * scale))


def axis_starts(length: int, side: int, stride: int) -> list[int]:
    """Where tiles of ``side`` pixels start along an axis of ``length`` pixels, ``stride`` apart; the last one ends
    at the edge. One tile at 0 when the axis is no longer than a tile."""
    if length <= side:
        return [0]
    starts = list(range(0, length - side, stride))
    if starts[-1] != length - side:
        starts.append(length - side)
    return starts


def tile_grid(width: int, height: int, image_size: int, scale: float, overlap: float = DEFAULT_OVERLAP) -> list[Tile]:
    """The tiles of a ``width × height`` scene for a model of input ``image_size`` at ``scale``, overlapping by the
    fraction ``overlap`` of a tile's side, row by row from the top left."""
    if not 0 <= overlap <= MAX_OVERLAP:
        raise ValueError(f"--overlap {overlap}: give a fraction of the tile side from 0 to {MAX_OVERLAP}")
    side = tile_side(image_size, scale)
    stride = max(1, side - round(side * overlap))
    tiles: list[Tile] = []
    for row in axis_starts(height, side, stride):
        for col in axis_starts(width, side, stride):
            w, h = min(side, width - col), min(side, height - row)
            out_w = image_size if w == side else _out_side(w, scale)
            out_h = image_size if h == side else _out_side(h, scale)
            tiles.append(Tile(len(tiles), col, row, w, h, out_w, out_h))
    return tiles


def _out_side(length: int, scale: float) -> int:
    """The side a tile shorter than a full one is read at: ``length / scale``, but never resampled below
    :data:`~rsvg.data.image_io.MIN_IMAGE_SIDE` (a few pixels hold nothing a box could tell apart)."""
    return max(min(length, MIN_IMAGE_SIDE), round(length / scale), 1)


@dataclass
class Answer:
    """One tile's answer in scene pixels, with the model's score and, once ranked, its rank (1 = best)."""

    box: Box
    score: float
    tile: Tile
    rank: int = 0
    #: per step after the first look (models that have them), whether it changed the answer
    steps: dict[str, bool] = field(default_factory=dict)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (0 for empty boxes)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge_answers(
    answers: Iterable[Answer], iou_threshold: float = DEFAULT_MERGE_IOU, top_k: int | None = None
) -> list[Answer]:
    """The answers best score first (ties: the earlier tile), each dropped when it overlaps a better kept one by
    an IoU above ``iou_threshold``, numbered from rank 1, at most ``top_k`` of them."""
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"--merge-iou {iou_threshold}: give an IoU from 0 to 1")
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k {top_k}: give at least 1")
    kept: list[Answer] = []
    for answer in sorted(answers, key=lambda a: (-a.score, a.tile.index)):
        if all(box_iou(answer.box, k.box) <= iou_threshold for k in kept):
            kept.append(answer)
            if top_k is not None and len(kept) == top_k:
                break
    for rank, answer in enumerate(kept, 1):
        answer.rank = rank
    return kept
