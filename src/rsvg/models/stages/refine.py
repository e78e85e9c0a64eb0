"""Box refinement (``model.stages.refine``, not in the paper): the answer's box read again, finer, and corrected.

Every box the model gives comes from one token: a stride-32 cell of the first look (12×12 cells at 384 px), or a
stride-16 cell of the second look's window. Such a box is often on the right object but a poor fit.

So the answer's box, grown by ``refine_grow`` to see the object's edges, is read as a ``refine_bins`` ×
``refine_bins`` grid (``roi_align``) from the backbone's stride-16 map (behind a LayerNorm) and from the image's
colour map (:mod:`rsvg.models.stages.colours`, the image averaged over 4 px), and an MLP gives the correction:
a shift of the centre in units of the box size and a log-scale of width and height. The last layer starts at
zero, so an untrained refiner returns the box unchanged.

What the box is does not depend on the query, so the refiner is trained on every annotated object of the
training images, each moved and rescaled at random (:func:`jitter_boxes`), not only on the referred one: about
six boxes per sample instead of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from rsvg.boxes import stack_objects
from rsvg.errors import ConfigError
from rsvg.models.loss import LossConfig, grounding_loss
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stage_inputs import CoreFacts
from rsvg.models.stages.base import Stage, StageContext, StageOptions, require_finite_boxes
from rsvg.models.stages.objects import ImageObjects, example_objects, normalised_objects

REFINE_HIDDEN = 256
GEOMETRY_INPUTS = 4  # centre x, y and log width, log height of the box being refined
MAX_LOG_SCALE = 2.0  # a refinement changes a side by at most e² (7.4x)


def jitter_boxes(boxes: Tensor, shift: float = 0.2, scale: float = 0.3) -> Tensor:
    """Training inputs of the refiner: normalised boxes ``(N, 4)`` with their centres moved by N(0, ``shift``)
    box sizes and their sides scaled by exp(N(0, ``scale``)) (the global RNG, as dropout)."""
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
    centre = centre + torch.randn_like(centre) * shift * size
    size = size * torch.exp(torch.randn_like(size) * scale)
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def _to_map(boxes: Tensor, rows: Tensor, height: int, width: int) -> Tensor:
    """``roi_align``'s rois: the sample index, then the normalised boxes in pixels of a ``height`` × ``width`` map."""
    scale = boxes.new_tensor([width, height, width, height])
    return torch.cat([rows[:, None].to(boxes.dtype), boxes * scale], 1)


@dataclass
class RefineRecord:
    boxes: Tensor  # training: the refined jittered objects (N, 4); inference: the refined answers (B, 4)
    truth: Tensor | None = None  # training: those objects' boxes (N, 4)
    unrefined: Tensor | None = None  # inference: the answers before the refinement (B, 4)


@dataclass
class RefineOptions(StageOptions):
    """``model.stages.refine``: the box grown by ``grow`` is read as a ``bins × bins`` grid."""

    bins: int = 7
    grow: float = 1.5
    weights: dict[str, float] = field(default_factory=dict)

    def check(self, stage: str, model: Any) -> None:
        if not getattr(model, "stride16_detail", False):
            raise ConfigError(
                f"model.stages.{stage} reads the stride-16 map that model.stride16_detail folds into the visual "
                "features: set it true"
            )
        if self.bins < 1:
            raise ConfigError(f"model.stages.{stage}.bins must be >= 1, got {self.bins}")
        if self.grow < 1:
            raise ConfigError(f"model.stages.{stage}.grow must be >= 1 (the box and its edges), got {self.grow}")


class BoxRefiner(Stage):
    """Corrects normalised boxes from the stride-16 map ``(B, channels, H, W)`` and the colour map
    ``(B, 3, H', W')``: in training the image's annotated objects, moved at random (the loss compares them with
    their boxes; the answer stays), at inference the answer's box. Needs ``model.stride16_detail``."""

    name = "refine"
    feature_parts = ("colours",)
    batch_keys = ("objects",)
    loss_terms = ("refine",)
    step_key = "refined"
    step_title = "box refinement"
    note_what = "the answer's box read again from the stride-16 map and the image's colours, and corrected"
    before_field = "unrefined_iou"

    options_type = RefineOptions
    legacy_options: ClassVar[dict[str, str]] = {"refine_bins": "bins", "refine_grow": "grow"}
    legacy_weight = "refine_weight"

    def __init__(self, options: RefineOptions, core: CoreFacts, hidden: int = REFINE_HIDDEN) -> None:
        super().__init__(options, core)
        self.image_size = core.image_size
        channels = core.level_channels[16]
        bins, grow = options.bins, options.grow
        self.bins, self.grow = bins, grow
        self.detail_norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear((channels + 3) * bins * bins + GEOMETRY_INPUTS, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 4),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero the last layer: an untrained refiner leaves every box as it is (call again after a model-wide
        init, which would overwrite it)."""
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, out: GroundingOutput, ctx: StageContext) -> None:
        detail, colours = ctx.stride16, ctx.colours
        if self.training:
            table, rows = stack_objects(normalised_objects(ctx.batch, self.image_size))
            truth = table[:, 1:].to(detail.device, torch.float32)
            rows = rows.to(detail.device)
            out.stages[self.name] = RefineRecord(self.refine(detail, colours, rows, jitter_boxes(truth)), truth)
            return
        rows = torch.arange(len(out.boxes), device=detail.device)
        refined = self.refine(detail, colours, rows, out.boxes.detach()).to(out.boxes.dtype)
        out.stages[self.name] = RefineRecord(refined, unrefined=out.boxes)
        out.boxes = refined

    def terms(
        self, out: GroundingOutput, target: Tensor, batch: Mapping[str, Any], cfg: LossConfig
    ) -> dict[str, Tensor]:
        """The paper's box loss of the refined jittered objects against their boxes."""
        record: RefineRecord = out.stages[self.name]
        if record.truth is None or not len(record.truth):
            return {}
        return {"refine": grounding_loss(record.boxes, record.truth, cfg)["loss"]}

    def sample_extras(self, training: bool) -> tuple[Any, ...]:
        return (ImageObjects(),) if training else ()

    def example_extras(self, sample: dict[str, Any], index: int, generator: torch.Generator) -> None:
        example_objects(sample, index, self.image_size)

    def changed(self, record: RefineRecord) -> Tensor | None:
        if record.unrefined is None:
            return None
        return torch.ones(len(record.boxes), dtype=torch.bool, device=record.boxes.device)

    def boxes_before(self, record: RefineRecord) -> Tensor | None:
        return record.unrefined

    def _read(self, maps: Tensor, boxes: Tensor, rows: Tensor) -> Tensor:
        """The ``bins`` × ``bins`` grid of each box (``rows``: the map each reads) → ``(N, C, bins, bins)``."""
        return roi_align(maps, _to_map(boxes, rows, *maps.shape[-2:]), self.bins, sampling_ratio=2, aligned=True)

    def _read_detail(self, detail: Tensor, boxes: Tensor, rows: Tensor) -> Tensor:
        """The grid of each box from the stride-16 map behind ``detail_norm`` → ``(N, C·bins²)``.

        The LayerNorm's per-channel scale and shift are applied after ``roi_align``, not before: ``roi_align`` is
        a weighted average whose weights sum to the share of its samples inside the map, so
        ``roi_align(γ·x + β) = γ·roi_align(x) + β·roi_align(1)``. The same grid up to rounding, and the backward
        then runs through the small grids alone instead of ``roi_align``'s (single-threaded on a CPU) backward
        over the whole map, which a frozen backbone's map does not need."""
        norm = self.detail_norm
        x = detail.float().permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, norm.normalized_shape, eps=norm.eps).permute(0, 3, 1, 2)
        grid = self._read(x, boxes, rows)
        inside = self._read(torch.ones_like(x[:, :1]), boxes, rows)
        grid = grid * norm.weight[:, None, None] + inside * norm.bias[:, None, None]
        return grid.flatten(1)

    def refine(self, detail: Tensor, colours: Tensor, rows: Tensor, boxes: Tensor) -> Tensor:
        """``rows`` (N,) the sample each box ``(N, 4)`` (normalised to the input) belongs to → refined boxes
        ``(N, 4)``; NaN or infinite boxes are refused before ``roi_align`` (:class:`~rsvg.errors.NonFiniteError`)."""
        require_finite_boxes(boxes, "box refinement")
        boxes = boxes.float()
        centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, ((boxes[:, 2:] - boxes[:, :2]) / 2).clamp(min=1e-4)
        seen = torch.cat([centre - self.grow * half, centre + self.grow * half], 1)
        parts = [self._read_detail(detail, seen, rows), self._read(colours.float(), seen, rows).flatten(1)]
        geometry = torch.cat([centre, (2 * half).log()], 1)
        delta = self.mlp(torch.cat([*parts, geometry], 1))
        centre = centre + delta[:, :2] * 2 * half
        half = half * delta[:, 2:].clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE).exp()
        return torch.cat([centre - half, centre + half], 1)
