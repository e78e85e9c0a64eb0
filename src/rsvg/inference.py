"""Grounding on your own images: ``Grounder.from_checkpoint(path).predict(image, query)``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rsvg.boxes import clip_boxes
from rsvg.data.dataset import RSVGDataset, verify_images
from rsvg.data.image_io import (
    DEFAULT_LIMITS,
    MIN_IMAGE_SIDE,
    ImageLimits,
    ImageReadError,
    check_image_side,
    read_image_rgb,
)
from rsvg.data.sample_builder import SampleBuilder
from rsvg.data.tokenizer import QueryTooLongError, shorten
from rsvg.data.transforms import LetterboxParams
from rsvg.engine.amp import autocast_context
from rsvg.engine.batching import collate, forward_batch, to_device
from rsvg.engine.checkpoint import TEXT_DIR, CheckpointError, load_weights, read_checkpoint_meta
from rsvg.engine.devices import parse_device
from rsvg.engine.precision import Precision, resolve_precision
from rsvg.errors import NonFiniteError
from rsvg.geo.scene import SceneGrounder, SceneGrounding, SceneOptions
from rsvg.models.build import build_model
from rsvg.models.interface import GroundingModel
from rsvg.models.outputs import GroundingOutput
from rsvg.models.registry import model_config_from_dict
from rsvg.models.stages import stage_reports
from rsvg.results import GroundingResult

# GroundingResult is defined in rsvg.results; docs/inference.md presents it with the grounder, so it is named here too
__all__ = ["MIN_IMAGE_SIDE", "Grounder", "GroundingResult", "ImageReadError", "QueryTooLongError", "clip_box"]

#: above this share of unknown words (:func:`unknown_word_share`) a query is warned about (refused by
#: ``rsvg ground --strict``)
UNKNOWN_QUERY_SHARE = 0.5
#: a word that a word-piece vocabulary does not hold whole and splits into pieces shorter than this on average
#: (characters) is spelled out letter by letter rather than built from word parts ("asdkfj" → as ##d ##k ##f ##j,
#: while "overpass" → over ##pass and "windmills" → windmill ##s): what nonsense and misspellings become
MIN_PIECE_CHARS = 3
_WORD = re.compile(r"\w+")
_PIECE_MARKS = "#Ġ▁"  # the marks word-piece, byte-level BPE and SentencePiece vocabularies put on pieces


def query_text(query: str) -> str:
    """The query as the model reads it (whitespace collapsed); ``ValueError`` when nothing is left."""
    if not query or not query.strip():
        raise ValueError("the query is empty")
    return " ".join(query.split())


def unknown_word_share(tokenizer: object, query: str) -> float:
    """Share of the query's words that the text encoder does not know, 0..1.

    A word is unknown when the tokenizer reads it as ``[UNK]`` (another script, an emoji) or, for a word-piece
    vocabulary (the Hugging Face tokenizers), spells it out in pieces of under :data:`MIN_PIECE_CHARS` characters
    on average: such a query (Chinese, or letters typed at random) reaches the model as noise, and the box it gets
    means nothing even when its score is high. A word vocabulary (the LSTM models') counts the words it lacks. The
    share of ``[UNK]`` tokens is taken too, for queries without a word character."""
    token_share = getattr(tokenizer, "unknown_share", None)
    share = float(token_share(query)) if token_share is not None else 0.0
    hf = getattr(tokenizer, "tokenizer", None)
    pieces_of = getattr(hf, "tokenize", None)
    words = _WORD.findall(query)
    if pieces_of is None or not words:
        return share
    unk = getattr(hf, "unk_token", None)

    def unknown(word: str) -> bool:
        pieces = pieces_of(word)
        if not pieces or (unk is not None and unk in pieces):
            return True
        if len(pieces) == 1:
            return False
        return sum(len(p.lstrip(_PIECE_MARKS)) for p in pieces) / len(pieces) < MIN_PIECE_CHARS

    return max(share, sum(unknown(w) for w in words) / len(words))


def clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    """A box ``(x1, y1, x2, y2)`` clipped to the image ``[0, width] × [0, height]``: what every box rsvg gives a
    user is (the model's raw box may reach past the image's edges; training and the metrics use it raw)."""
    x1, y1, x2, y2 = (float(v) for v in clip_boxes(np.asarray(box, np.float64), width, height)[0])
    return (x1, y1, x2, y2)


class Grounder:
    """A trained model plus its input pipeline, ready to ground queries on any image."""

    def __init__(
        self,
        model: GroundingModel,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        self.model = model.eval().to(device)
        self.device = device
        #: fp32, or bf16 autocast (``auto``: where the hardware has native bf16, :mod:`rsvg.engine.precision`)
        self.precision: Precision = resolve_precision(precision, device)
        self.mean, self.std = mean, std
        self.tokenizer = model.tokenizer()
        self.image_size = model.image_size
        self.max_tokens = model.max_tokens
        #: the title of each step after the first look that can change the answer, by its key (the model's stages)
        self.step_titles = {s.step_key: s.step_title for s in model.stage_list() if s.step_key}
        # what the model needs in each sample at inference (rsvg.data.extras)
        self.builder = SampleBuilder(self.image_size, self.tokenizer, self.max_tokens, mean, std)
        #: the largest image file :meth:`predict` reads by path (arrays are taken as they are)
        self.image_limits: ImageLimits = DEFAULT_LIMITS
        for extra in model.sample_extras(training=False):
            self.builder.add_extra(extra)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        *,
        precision: str = "fp32",
        fold_batchnorm: bool = True,
        device_option: str = "device",
    ) -> Grounder:
        """Load a checkpoint folder written by ``rsvg train`` (``OUT/best``); no training config is needed.

        ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked first
        (:func:`~rsvg.engine.devices.parse_device`: an unknown name or a missing GPU is a
        :class:`~rsvg.errors.DeviceError` naming ``device_option``, before anything is loaded).
        ``precision``: ``fp32``, ``bf16`` or ``auto`` (:func:`~rsvg.engine.precision.resolve_precision`).
        ``fold_batchnorm`` folds the backbone's frozen BatchNorm into its convolutions (same boxes up to float
        rounding, faster; ``rsvg bench model --ablate`` measures it): the loaded model is for inference only."""
        torch_device = parse_device(str(device), device_option)
        folder = Path(path)
        meta = read_checkpoint_meta(folder)
        if folder.is_file():
            folder = folder.parent
        try:
            cfg = model_config_from_dict(meta["model"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{folder}: the model config cannot be used by this rsvg version ({exc})") from None
        text_folder = folder / TEXT_DIR
        if not text_folder.is_dir():
            raise CheckpointError(f"{folder}: the text encoder folder {TEXT_DIR}/ is missing")
        try:
            model = build_model(cfg, load_pretrained=False, text_folder=text_folder)
        except OSError as exc:  # the tokenizer library's errors on a damaged text folder carry no errno
            if exc.errno is not None:
                raise
            raise CheckpointError(f"{folder}: cannot be loaded ({str(exc)[:300]})") from None
        try:
            model.load_state_dict(load_weights(folder))
        except RuntimeError as exc:
            raise CheckpointError(f"{folder}: weights do not match the model config ({str(exc)[:300]})") from None
        if fold_batchnorm:
            model.fold_frozen_batchnorm()
        return cls(model, tuple(meta["mean"]), tuple(meta["std"]), torch_device, precision)

    def dataset(self, root: str | Path, split: str) -> RSVGDataset:
        """A split of a DIOR-RSVG-layout dataset read as this model reads its input (size, tokenizer, normalisation);
        every image is checked first (:func:`~rsvg.data.dataset.verify_images`)."""
        dataset = RSVGDataset(
            root,
            split,
            image_size=self.image_size,
            tokenizer=self.tokenizer,
            max_tokens=self.max_tokens,
            mean=self.mean,
            std=self.std,
            extras=self.model.sample_extras(training=False),
        )
        verify_images(dataset.samples)
        return dataset

    def query_warning(self, query: str) -> str | None:
        """A sentence when most of the query's words are unknown to the text encoder (:func:`unknown_word_share`:
        another script or language, or no words at all), whose box then means little; ``None`` otherwise. The one
        place this is decided: ``rsvg ground`` prints it (refuses the query with ``--strict``), ``POST
        /api/ground`` returns it in ``warnings`` and the grounding page shows it."""
        unknown = unknown_word_share(self.tokenizer, query)
        if unknown <= UNKNOWN_QUERY_SHARE:
            return None
        return (
            f"{unknown:.0%} of the query's words are unknown to the text encoder (read as [UNK] or spelled out in "
            f"short word pieces): {shorten(query)!r}; the model reads English expressions, so the box means little"
        )

    def check_query(self, query: str) -> int:
        """The number of tokens ``query`` takes in the model's input (special tokens included), checked as
        :meth:`predict` checks it: ``ValueError`` for an empty query, :class:`QueryTooLongError` (the same
        sentence) for one over :attr:`max_tokens`. ``rsvg serve``'s token counter calls it as the user types, so
        the page's count and the refusal on submitting cannot disagree."""
        text = query_text(query)
        if self.tokenizer is None:
            return 0
        self.tokenizer.encode(text, self.max_tokens, truncate=False)  # raises as the sample builder does
        return int(self.tokenizer.num_tokens(text))

    def query_tokens(self, query: str) -> int:
        """The number of tokens ``query`` takes in the model's input, whatever its length (0 when empty)."""
        if not query.strip() or self.tokenizer is None:
            return 0
        return int(self.tokenizer.num_tokens(query_text(query)))

    def _prepare(
        self, image: str | Path | np.ndarray, query: str, truncate: bool = False
    ) -> tuple[dict, LetterboxParams]:
        """The user's image and query as a batch of one (the dataset's sample builder; text trimmed as in
        :func:`~rsvg.engine.batching.collate`) and the letterbox geometry."""
        samples, params = self._samples([image], query, truncate)
        return to_device(collate(samples), self.device), params[0]

    def _samples(
        self, images: Sequence[str | Path | np.ndarray], query: str, truncate: bool
    ) -> tuple[list[dict], list[LetterboxParams]]:
        """One sample per image with the same query, and each image's letterbox geometry (the images are read
        before the query is checked, so a missing file is named first)."""
        arrays = [_as_rgb(image, self.image_limits) for image in images]
        for image, rgb in zip(images, arrays, strict=True):
            check_image_side(rgb.shape[1], rgb.shape[0], str(image) if isinstance(image, (str, Path)) else "image")
        text = query_text(query)
        samples, params = [], []
        for rgb in arrays:
            tensor = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
            sample, geometry = self.builder.from_image(tensor, text, truncate=truncate)
            samples.append(sample)
            params.append(geometry)
        return samples, params

    @torch.inference_mode()
    def predict(
        self,
        image: str | Path | np.ndarray,
        query: str,
        return_attention: bool = False,
        *,
        truncate: bool = False,
        need_score: bool = False,
    ) -> GroundingResult:
        """Ground ``query`` on ``image`` (a path or an RGB array). The box is clipped to the image. Raises
        :class:`ImageReadError` (also for an image file over :attr:`image_limits`, or under
        :data:`MIN_IMAGE_SIDE` pixels a side), :class:`QueryTooLongError` or ``ValueError`` (empty query) on bad
        input. ``truncate=True`` cuts a query longer than the model's ``max_tokens`` instead, as training and
        evaluation do with a dataset's queries; ``need_score`` as :meth:`predict_many`."""
        return self.predict_many([image], query, return_attention, truncate=truncate, need_score=need_score)[0]

    @torch.inference_mode()
    def predict_many(
        self,
        images: Sequence[str | Path | np.ndarray],
        query: str,
        return_attention: bool = False,
        *,
        truncate: bool = False,
        need_score: bool = False,
    ) -> list[GroundingResult]:
        """Ground the same ``query`` on each of ``images`` in one batch (e.g. the tiles of a scene): one result per
        image, as :meth:`predict` gives it. ``need_score`` runs the forward with the attention the [REG] head's
        :attr:`GroundingResult.score` is read from, without resizing the maps to the images (the cells head
        always has its score)."""
        if not images:
            return []
        samples, params = self._samples(images, query, truncate)
        batch = to_device(collate(samples), self.device)
        with autocast_context(self.device, self.precision.amp):
            out = forward_batch(self.model, batch, need_attention=return_attention or need_score)
        if not torch.isfinite(out.boxes).all():
            raise NonFiniteError(
                f"the model answered a NaN or infinite box for {query!r}: its weights are damaged (a diverged "
                "training run?); evaluate another checkpoint"
            )
        scores = out.score()
        first_looks, steps = self._provenance_all(out, len(samples))
        results = []
        for i, geometry in enumerate(params):
            width, height = geometry.orig_w, geometry.orig_h
            box = clip_box(geometry.box_to_original(out.boxes[i].double().cpu() * self.image_size), width, height)
            attention = mlcm = None
            if return_attention and out.attention is not None:
                attention = self._attention_to_image(out.attention[i].float().cpu(), geometry)
            if return_attention and out.mlcm_attention is not None:
                mlcm = self._attention_to_image(out.mlcm_attention[i].float().cpu(), geometry)
            first = None
            if first_looks[i] is not None:
                original = geometry.box_to_original(first_looks[i].double().cpu() * self.image_size)
                first = clip_box(original, width, height)
            results.append(
                GroundingResult(
                    box,
                    width,
                    height,
                    attention,
                    mlcm,
                    first_look_box=first,
                    steps=steps[i],
                    step_titles=self.step_titles,
                    score=None if scores is None else float(scores[i]),
                )
            )
        return results

    def ground_scene(self, path: str | Path, query: str, **options: Any) -> SceneGrounding:
        """Ground ``query`` on a raster scene of any size (a GeoTIFF, read with rasterio): tiles at this model's
        input size, answers ranked by :attr:`GroundingResult.score` and merged across overlapping tiles, boxes in
        scene pixels and map coordinates. ``options`` are :class:`~rsvg.geo.scene.SceneOptions` fields
        (``bands``, ``scale`` or ``tile_gsd``, ``overlap``, ``top_k``, ``percentiles``, ``nodata``, ...)."""
        return SceneGrounder(self).ground(path, query, SceneOptions(**options))

    def _provenance(self, out: GroundingOutput) -> tuple[torch.Tensor | None, dict[str, bool]]:
        """The first look's box (network frame, 0..1) and which later stages changed the answer, for sample 0."""
        firsts, steps = self._provenance_all(out, 1)
        return firsts[0], steps[0]

    def _provenance_all(
        self, out: GroundingOutput, size: int
    ) -> tuple[list[torch.Tensor | None], list[dict[str, bool]]]:
        """Per sample of a batch of ``size``: the first look's box (network frame, 0..1) and which later stages
        changed the answer; the box before the earliest stage that kept one is the first look's."""
        reports = stage_reports(self.model.stage_list(), out.stages)
        firsts: list[torch.Tensor | None] = []
        steps: list[dict[str, bool]] = []
        for i in range(size):
            changed = {
                r.stage.step_key: bool(r.changed[i]) for r in reports if r.stage.step_key and r.changed is not None
            }
            first = next((r.boxes_before[i] for r in reports if r.boxes_before is not None), None)
            firsts.append(first if changed else None)
            steps.append(changed)
        return firsts, steps

    def _attention_to_image(self, att: torch.Tensor, params) -> np.ndarray:
        """Token attention (h × w) → canvas → crop of the image area → original size, scaled to 0..1."""
        s = self.image_size
        canvas = F.interpolate(att[None, None], size=(s, s), mode="bilinear", align_corners=False)[0, 0]
        crop = canvas[params.pad_y : params.pad_y + params.resized_h, params.pad_x : params.pad_x + params.resized_w]
        full = F.interpolate(crop[None, None], size=(params.orig_h, params.orig_w), mode="bilinear")[0, 0]
        full = full - full.min()
        return (full / full.max().clamp(min=1e-12)).numpy()


def _as_rgb(image: str | Path | np.ndarray, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """An image path or array as an H×W×3 RGB uint8 array (grayscale repeated, alpha dropped); a file over
    ``limits`` is refused from its header."""
    if isinstance(image, (str, Path)):
        return read_image_rgb(image, limits)
    rgb = np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise ImageReadError(f"expected an H×W, H×W×3 or H×W×4 uint8 array, got {rgb.shape} {rgb.dtype}")
    return rgb[..., :3]
