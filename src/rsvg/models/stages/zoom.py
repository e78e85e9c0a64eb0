"""The second look (``model.stages.zoom``, not in the paper): small objects grounded again at a finer resolution.

At the lite config's 384-px input an object under 30 px wide in an 800-px scene covers a few input pixels, less
than one stride-32 cell of the backbone; the cells head finds roughly where it is but its box is far too large.
When the first box is small (longer side at most ``max_side`` input
pixels), the model takes a second look:

1. a window of ``window × window`` input pixels centred on the first box (moved inside the canvas),
   cut from the image letterboxed at ``scale ×`` the input size (the same layout, each input pixel
   ``scale`` pixels wide: :func:`rsvg.models.stages.zoom_canvas.zoom_letterbox`);
2. the frozen backbone's stride-8 and stride-16 maps of that crop, stride 8 folded into stride 16 as channels
   (:func:`crop_map`): a ``g × g`` grid, ``g = window · scale / 16``;
3. :class:`SecondLook`: the crop's tokens, with their position in the whole image and in the window, attend to
   the query's words in ``layers`` decoder layers; a cells head picks the target's cell in the window and
   regresses its box, which replaces the first one.

Training uses crops around every referred object no larger than ``max_side``, its centre moved by up to
``± jitter`` input pixels (at inference the window is centred on the first box, which is off by about that
much when it is near but not on the object); the crops' maps are computed once (the backbone is frozen,
:meth:`SecondLook.prepare_training`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.data.dataset import read_sample_image
from rsvg.data.records import GroundingSample
from rsvg.data.transforms import LetterboxParams, letterbox_geometry, padding_mask
from rsvg.errors import ConfigError
from rsvg.models.heads import CellHead
from rsvg.models.loss import LossConfig, cell_losses
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stage_inputs import CoreFacts
from rsvg.models.stages.base import Stage, StageContext, StageOptions
from rsvg.models.stages.zoom_canvas import ZoomCanvas, zoom_letterbox
from rsvg.models.transformer import DecoderLayer, query_memory, sine_encoding_xy

ZOOM_STRIDE = 16  # the second look's token grid: stride 16 of the crop
# Crops the backbone reads at once on a CPU. Its depthwise layers are memory-bound there, and a few crops' maps
# stay in the CPU caches while a whole batch's do not (`rsvg bench features` on a zoom config measures both).
CPU_CROPS_AT_ONCE = 2


def needs_zoom(boxes: Tensor, image_size: int, max_side: float) -> Tensor:
    """``(B,)`` bool: the normalised boxes whose longer side is at most ``max_side`` input pixels."""
    sides = (boxes[:, 2:] - boxes[:, :2]).amax(-1) * image_size
    return sides <= max_side


def window_origins(boxes: Tensor, image_size: int, window: int) -> Tensor:
    """``(B, 2)`` integer input-pixel corners ``(x0, y0)`` of the windows centred on the normalised boxes, moved
    to lie inside the ``image_size`` canvas."""
    centre = (boxes[:, :2] + boxes[:, 2:]).float() / 2 * image_size
    return (centre - window / 2).round().clamp(0, image_size - window).long()


def to_window(boxes: Tensor, origins: Tensor, image_size: int, window: int) -> Tensor:
    """Boxes normalised to the input → normalised to their windows (``origins`` from :func:`window_origins`)."""
    shift = origins.float().repeat(1, 2)
    return (boxes.float() * image_size - shift) / window


def from_window(boxes: Tensor, origins: Tensor, image_size: int, window: int) -> Tensor:
    """The inverse of :func:`to_window`."""
    shift = origins.float().repeat(1, 2)
    return (boxes.float() * window + shift) / image_size


def window_padding(padding_mask: Tensor, origins: Tensor, window: int) -> Tensor:
    """The input's padding ``(B, S, S)`` inside each window: ``(B, window, window)``."""
    return torch.stack(
        [pad[y0 : y0 + window, x0 : x0 + window] for pad, (x0, y0) in zip(padding_mask, origins.tolist(), strict=True)]
    )


def crop_windows(
    zoom_images: Tensor,
    padding_mask: Tensor,
    origins: Tensor,
    window: int,
    scale: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> tuple[Tensor, Tensor]:
    """Cut the windows out of uint8 zoom canvases ``(B, 3, S·scale, S·scale)`` and normalise them.

    ``padding_mask`` ``(B, S, S)`` is the input's letterbox padding (True = padding): the crops' padding is set
    to 0 after normalisation, as :func:`~rsvg.data.transforms.normalize` does for the input. Returns the crops
    ``(B, 3, w·scale, w·scale)`` and their padding masks at the input resolution ``(B, w, w)``."""
    side = window * scale
    crop = (
        torch.stack(
            [
                image[:, y0 * scale : y0 * scale + side, x0 * scale : x0 * scale + side]
                for image, (x0, y0) in zip(zoom_images, origins.tolist(), strict=True)
            ]
        ).float()
        / 255.0
    )
    m = torch.tensor(mean, dtype=crop.dtype, device=crop.device).reshape(1, -1, 1, 1)
    s = torch.tensor(std, dtype=crop.dtype, device=crop.device).reshape(1, -1, 1, 1)
    mask = window_padding(padding_mask, origins, window)
    fine = mask.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return ((crop - m) / s).masked_fill(fine.unsqueeze(1), 0.0), mask


def crop_map(backbone: nn.Module, crops: Tensor, at_once: int | None = None) -> Tensor:
    """The second look's input from normalised crops ``(B, 3, w·k, w·k)``: the backbone's stride-16 map with
    its stride-8 map folded in as channels (space-to-depth), ``(B, C16 + 4·C8, g, g)``. The backbone (which must
    return both levels) stops after stride 16. It reads ``at_once`` crops per call (default: all on an
    accelerator, :data:`CPU_CROPS_AT_ONCE` on a CPU)."""
    if at_once is None:
        at_once = CPU_CROPS_AT_ONCE if crops.device.type == "cpu" else len(crops)
    if len(crops) > at_once > 0:
        return torch.cat([crop_map(backbone, part, at_once) for part in crops.split(at_once)])
    maps = dict(zip((8, 16), backbone(crops, up_to=16)[-2:], strict=True))
    return torch.cat([maps[16], F.pixel_unshuffle(maps[8], 2)], 1)


def window_token_padding(mask: Tensor, grid: int) -> Tensor:
    """``(B, w, w)`` input-pixel padding of the windows → ``(B, grid²)`` token padding (a token is padding only
    if all its pixels are; a window that is all padding keeps every token, so the softmax stays defined)."""
    valid = F.adaptive_max_pool2d((~mask).unsqueeze(1).float(), (grid, grid)).flatten(1) > 0.5
    valid |= ~valid.any(1, keepdim=True)
    return ~valid


@dataclass
class ZoomRecord:
    rows: Tensor  # (Z,) the samples that got a second look
    origins: Tensor  # (Z, 2) their windows' input-pixel corners
    scores: Tensor  # (Z, g²) the second look's cell scores
    boxes: Tensor  # (Z, g², 4) its window-normalised boxes
    first_boxes: Tensor | None = None  # (B, 4) at inference: the answers before the second look


@dataclass
class ZoomCrops:
    """The second look's training crops, encoded once: one row per sample whose target is small enough
    (``max_side``), a window around it moved by up to ``± jitter`` input pixels. A sample extra
    (:mod:`rsvg.data.extras`): each sample gets ``zoom_features``, ``zoom_origin`` and ``zoom_valid``."""

    maps: Tensor  # (N, C16 + 4·C8, g, g) float16, crop_map of each crop
    origins: Tensor  # (N, 2) int64: the windows' input-pixel corners (x0, y0)
    rows: dict[int, int]  # sample index -> row of maps / origins
    key = "zoom_crops"
    supports_augmentation = False

    def bind(self, samples: Sequence[GroundingSample]) -> None:
        pass

    def add(
        self, out: dict, sample: GroundingSample | None, params: LetterboxParams, image: Callable[[], Tensor]
    ) -> None:
        if sample is None:
            raise ValueError("training crops belong to annotated samples")
        out.update(self.for_sample(sample.index))

    def for_sample(self, index: int) -> dict[str, Tensor]:
        """The zoom entries of sample ``index``: zero maps and ``zoom_valid`` False when it has none."""
        row = self.rows.get(index)
        if row is None:
            return {
                "zoom_features": torch.zeros(self.maps.shape[1:]),
                "zoom_origin": torch.zeros(2, dtype=torch.int64),
                "zoom_valid": torch.tensor(False),
            }
        return {
            "zoom_features": self.maps[row].float(),
            "zoom_origin": self.origins[row],
            "zoom_valid": torch.tensor(True),
        }


@dataclass
class ZoomOptions(StageOptions):
    """``model.stages.zoom`` (input pixels): a first box whose longer side is at most ``max_side`` is looked at
    again in a ``window``-wide window read at ``scale ×``; ``layers`` decoder layers; training crops move their
    target by up to ``± jitter``."""

    scale: int = 2
    window: int = 96
    max_side: float = 46.0
    jitter: float = 32.0
    layers: int = 2
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def grid(self) -> int:
        """Side of the second look's token grid (stride 16 of the ``window · scale`` crop)."""
        return self.window * self.scale // ZOOM_STRIDE

    def check(self, stage: str, model: Any) -> None:
        where = f"model.stages.{stage}"
        if not model.freeze_backbone:
            raise ConfigError(f"{where} needs model.freeze_backbone: true (its training crops are encoded once)")
        if self.scale < 1:
            raise ConfigError(f"{where}.scale must be >= 1, got {self.scale}")
        if not 16 <= self.window <= model.image_size or (self.window * self.scale) % 16:
            raise ConfigError(
                f"{where}.window must lie in 16..model.image_size ({model.image_size}) and window x scale must be "
                f"a multiple of 16 (the crop's token grid), got {self.window} x {self.scale}"
            )
        if self.max_side <= 0:
            raise ConfigError(f"{where}.max_side must be > 0 (input pixels), got {self.max_side}")
        if not 0 <= self.jitter < self.window / 2:
            raise ConfigError(
                f"{where}.jitter must lie in 0..window/2 ({self.window / 2:g}) so that the target stays in its "
                f"training window, got {self.jitter}"
            )
        if self.layers < 1:
            raise ConfigError(f"{where}.layers must be >= 1, got {self.layers}")


class SecondLook(Stage):
    """Text-conditioned cells head on the crop's ``g × g`` map (see the module docstring).

    Each token is the crop map's channels (LayerNorm, linear to D) plus the sine encoding of its centre in the
    whole input (so "on the left" keeps its meaning inside a window) and a learned embedding of its place in
    the window. ``layers`` post-norm decoder layers: self-attention over the window, cross-attention to the
    query's word tokens and sentence token. A :class:`~rsvg.models.heads.CellHead` scores every token and
    regresses a box around its cell (window-normalised)."""

    name = "zoom"
    batch_keys = ("zoom_image", "zoom_features", "zoom_origin", "zoom_valid")
    loss_terms = ("zoom",)
    backbone_strides = (8, 16)
    may_skip_parameters = True  # it trains only on samples with small targets: a batch may have none
    supports_augmentation = False
    augmentation_note = "its training crops are encoded once"
    step_key = "second_look"
    step_title = "second look"
    note_what = "a small first box is found again in a window read at a finer resolution"
    note_changed = "gave"
    note_none = "gave none of the test boxes: no first box was small."

    options_type = ZoomOptions
    legacy_options: ClassVar[dict[str, str]] = {
        "zoom_scale": "scale",
        "zoom_window": "window",
        "zoom_max_side": "max_side",
        "zoom_jitter": "jitter",
        "zoom_layers": "layers",
    }
    legacy_weight = "zoom_weight"

    def __init__(self, options: ZoomOptions, core: CoreFacts) -> None:
        super().__init__(options, core)
        self.image_size = core.image_size
        dim, text_dim = core.dim, core.text_dim
        # its input map: the crop's stride-16 map with the stride-8 map folded in
        channels = core.level_channels[16] + 4 * core.level_channels[8]
        heads, ffn_dim, layers, grid, max_tokens = (
            core.heads,
            core.ffn_dim,
            options.layers,
            options.grid,
            core.max_tokens,
        )
        self.channels = channels
        self.grid = grid
        self.visual_norm = nn.LayerNorm(channels)
        self.visual_proj = nn.Linear(channels, dim)
        self.word_norm = nn.LayerNorm(text_dim)
        self.sentence_norm = nn.LayerNorm(text_dim)
        self.text_proj = nn.Linear(text_dim, dim)
        self.text_pos = nn.Embedding(max_tokens + 1, dim)
        self.window_pos = nn.Parameter(torch.zeros(1, grid * grid, dim))
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn_dim, 0.0) for _ in range(layers))
        self.head = CellHead(dim, text_dim)
        for p in self.parameters():
            if p.dim() > 1 and p is not self.window_pos:
                nn.init.xavier_uniform_(p)

    def forward(self, out: GroundingOutput, ctx: StageContext) -> None:
        """In training the second look reads the encoded crops around the targets (its loss is added; the answers
        stay); at inference it reads windows of the zoom canvas around the small answers and its boxes replace
        them. Without either input it does nothing."""
        cfg, batch = self.options, ctx.batch
        crops = all(k in batch for k in ("zoom_features", "zoom_origin", "zoom_valid"))
        first_boxes = None
        if crops:  # crops around the targets, encoded once
            rows = batch["zoom_valid"].nonzero().flatten()
            origins = batch["zoom_origin"][rows]
        elif "zoom_image" in batch:  # inference: windows around the small first boxes
            first_boxes = out.boxes
            rows = needs_zoom(out.boxes.detach(), self.image_size, cfg.max_side).nonzero().flatten()
            origins = window_origins(out.boxes.detach()[rows], self.image_size, cfg.window)
        else:
            return
        if len(rows) == 0:
            empty = out.boxes.new_zeros((0, cfg.grid**2))
            out.stages[self.name] = ZoomRecord(
                rows, origins, empty, empty.new_zeros((0, cfg.grid**2, 4)), first_boxes
            )
            return
        if crops:
            maps = batch["zoom_features"][rows]
            crop_pad = window_padding(ctx.padding_mask[rows], origins, cfg.window)
        else:
            windows, crop_pad = crop_windows(
                batch["zoom_image"][rows],
                ctx.padding_mask[rows],
                origins,
                cfg.window,
                cfg.scale,
                ctx.backbone.mean,
                ctx.backbone.std,
            )
            maps = crop_map(ctx.backbone, windows)
        scores, boxes = self.look(
            maps,
            origins,
            self.image_size,
            cfg.window,
            window_token_padding(crop_pad, cfg.grid),
            ctx.words[rows],
            ctx.sentence[rows],
            ctx.text_padding[rows],
        )
        out.stages[self.name] = ZoomRecord(rows, origins, scores, boxes, first_boxes)
        if not crops:  # the second look's box replaces the first
            best = boxes[torch.arange(len(rows), device=rows.device), scores.argmax(1)]
            answers = out.boxes.clone()
            answers[rows] = from_window(best, origins, self.image_size, cfg.window).to(answers.dtype)
            out.boxes = answers

    def terms(
        self, out: GroundingOutput, target: Tensor, batch: Mapping[str, Any], cfg: LossConfig
    ) -> dict[str, Tensor]:
        """The cells head's terms on the second look's grid, the target mapped into each crop's window (none when
        no sample of the batch had a crop)."""
        record: ZoomRecord | None = out.stages.get(self.name)
        if record is None or len(record.rows) == 0:
            return {}
        in_window = to_window(target[record.rows].float(), record.origins, self.image_size, self.options.window)
        side = math.isqrt(record.scores.shape[1])
        return {"zoom": cell_losses(record.scores, record.boxes, in_window, side, side, cfg)["loss"]}

    def sample_extras(self, training: bool) -> tuple[Any, ...]:
        return () if training else (ZoomCanvas(self.options.scale),)

    @torch.inference_mode()
    def prepare_training(
        self, model: nn.Module, samples: Sequence[GroundingSample], device: torch.device, seed: int = 0
    ) -> ZoomCrops:
        """Encode the training crops of ``samples`` (see :class:`ZoomCrops`), all crops of an image in one backbone
        call. The jitter comes from ``seed`` and the sample's index: the same crops every run (and after a
        resume). Rows are preallocated: millions of small tensors would fragment the heap."""
        cfg = self.options
        size, window, scale = self.image_size, cfg.window, cfg.scale
        chosen: dict[str, list[tuple[GroundingSample, Tensor]]] = {}
        for s in samples:
            params = letterbox_geometry(s.width, s.height, size)
            box = torch.as_tensor(params.box_to_network(torch.tensor(s.box, dtype=torch.float64)), dtype=torch.float32)
            if float((box[2:] - box[:2]).max()) > cfg.max_side:
                continue
            gen = torch.Generator().manual_seed(seed * 1_000_003 + s.index)
            shift = (torch.rand(2, generator=gen) * 2 - 1) * cfg.jitter
            chosen.setdefault(s.image_id, []).append((s, (box / size + shift.repeat(2) / size)))
        count = sum(len(v) for v in chosen.values())
        maps = torch.empty((count, self.channels, cfg.grid, cfg.grid), dtype=torch.float16)
        origins = torch.empty((count, 2), dtype=torch.int64)
        rows: dict[int, int] = {}
        backbone = copy.deepcopy(model.backbone).eval()
        backbone.fold_frozen_batchnorm()
        for items in chosen.values():
            first = items[0][0]
            params = letterbox_geometry(first.width, first.height, size)
            canvas = zoom_letterbox(read_sample_image(first), params, scale)
            corners = window_origins(torch.stack([centre for _, centre in items]), size, window)
            windows, _ = crop_windows(
                canvas.unsqueeze(0).expand(len(items), -1, -1, -1),
                padding_mask(params).unsqueeze(0).expand(len(items), -1, -1),
                corners,
                window,
                scale,
                model.backbone.mean,
                model.backbone.std,
            )
            encoded = crop_map(backbone, windows.to(device)).to("cpu", torch.float16)
            for (s, _), m, corner in zip(items, encoded, corners, strict=True):
                row = len(rows)
                maps[row], origins[row], rows[s.index] = m, corner, row
        return ZoomCrops(maps, origins, rows)

    def describe_preparation(self, crops: ZoomCrops, samples: int) -> str:
        return (
            f"the second look's {len(crops.rows)} training crops (targets <= {self.options.max_side:g} input px of "
            f"{samples})"
        )

    def changed(self, record: ZoomRecord) -> Tensor | None:
        if record.first_boxes is None:
            return None
        looked = torch.zeros(len(record.first_boxes), dtype=torch.bool, device=record.rows.device)
        looked[record.rows] = True
        return looked

    def boxes_before(self, record: ZoomRecord) -> Tensor | None:
        return record.first_boxes

    def example_extras(self, sample: dict[str, Any], index: int, generator: torch.Generator) -> None:
        """Encoded crops (random maps of the cached crops' shape) for two samples in three, each window around
        its box."""
        cfg = self.options
        box = sample["box"][None] / self.image_size
        sample["zoom_features"] = torch.randn(self.channels, cfg.grid, cfg.grid, generator=generator)
        sample["zoom_origin"] = window_origins(box, self.image_size, cfg.window)[0]
        sample["zoom_valid"] = torch.tensor(index % 3 != 2)

    def feature_timings(self, model: nn.Module, count: int, repeats: int, device: torch.device) -> dict[str, Any]:
        """ms per crop of the second look's input, read as :func:`crop_map` reads it now (a few at once on a CPU)
        and all at once (how validation encoded them before), the best of ``repeats`` alternating passes over
        ``count`` random crops, by the backbone as inference holds it (BatchNorm folded, default memory layout)."""
        side = self.options.window * self.options.scale
        x = torch.randn(count, 3, side, side, generator=torch.Generator().manual_seed(1)).to(device)
        backbone = copy.deepcopy(model.backbone).eval().to(device)
        backbone.fold_frozen_batchnorm()
        now = CPU_CROPS_AT_ONCE if device.type == "cpu" else count
        best = {"now": float("inf"), "all": float("inf")}

        def one_pass(at_once: int) -> float:
            t0 = time.perf_counter()
            crop_map(backbone, x, at_once)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        with torch.inference_mode():
            one_pass(now)  # warm-up
            for _ in range(repeats):
                best["now"] = min(best["now"], one_pass(now))
                best["all"] = min(best["all"], one_pass(count))
        return {
            "crop_size": side,
            "crops": count,
            "crops_at_once": now,
            "crop_ms": 1000 * best["now"] / count,
            "crops_all_at_once_ms": 1000 * best["all"] / count,
            "crop_speedup": best["all"] / best["now"],
        }

    def look(
        self,
        maps: Tensor,
        origins: Tensor,
        image_size: int,
        window: int,
        token_padding: Tensor,
        words: Tensor,
        sentence: Tensor,
        text_padding: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """``maps`` ``(B, C, g, g)``, ``origins`` ``(B, 2)`` input pixels, ``token_padding`` ``(B, g²)``, the text
        encoder's ``words`` ``(B, Nt, b)``, ``sentence`` ``(B, b)`` and ``text_padding`` ``(B, Nt)`` → cell scores
        ``(B, g²)`` and window-normalised boxes ``(B, g², 4)``."""
        g = maps.shape[-1]
        if g != self.grid:
            raise ValueError(f"a {g}x{g} crop map does not match the second look's {self.grid}x{self.grid} grid")
        x = self.visual_proj(self.visual_norm(maps.flatten(2).transpose(1, 2)))
        centres = (torch.arange(g, device=maps.device, dtype=torch.float32) + 0.5) * (window / g)
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")
        xy = torch.stack((cx.flatten(), cy.flatten()), -1)[None] + origins.float()[:, None, :]
        pos = sine_encoding_xy(xy / image_size, x.shape[-1]).to(x.dtype) + self.window_pos
        x = x + pos
        memory, memory_pos, memory_pad, sentence = query_memory(
            words, sentence, text_padding, self.word_norm, self.sentence_norm, self.text_proj, self.text_pos
        )
        for layer in self.layers:
            x, _ = layer(x, pos, token_padding, memory, memory_pos, memory_pad)
        return self.head(x, token_padding, g, g, sentence)
