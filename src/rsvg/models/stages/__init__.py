"""The stages after the core model (none of them in the paper; all off in its configs).

Each lives in its own module with the interface of :class:`~rsvg.models.stages.base.Stage` and its options
(``model.stages.<name>`` of a config); :data:`STAGES` lists them in the order they run:

1. :mod:`~rsvg.models.stages.object_head` (``object_head``): categories per cell, a prior on the cells head's
   scores;
2. :mod:`~rsvg.models.stages.rank` (``rank``): the best cells ranked again as objects;
3. :mod:`~rsvg.models.stages.zoom` (``zoom``): a second look at small answers, at a finer resolution;
4. :mod:`~rsvg.models.stages.refine` (``refine``): the answer's box read again and corrected.

:class:`~rsvg.models.stages.staged.StagedModel` wraps a core model with the enabled ones, the way DETR adds its
segmentation head around the detector. Adding a stage is one new module and one line in :data:`STAGES`; nothing
outside this package names a stage: the demo report, the web schemas and the benchmarks read what each says about
itself.

The visual feature map can carry extra maps for them (:data:`FEATURE_PARTS`): computed with the backbone's maps,
so feature caches hold them too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any

from torch import Tensor, nn

from rsvg.errors import ConfigError
from rsvg.models.config import check_option_types
from rsvg.models.stage_inputs import CoreFacts
from rsvg.models.stages.base import BACKBONE_STRIDE, Stage, StageContext, StageOptions, check_augmentation
from rsvg.models.stages.colours import colour_channels, colour_map
from rsvg.models.stages.object_head import ObjectHead
from rsvg.models.stages.rank import CandidateRanking
from rsvg.models.stages.refine import BoxRefiner
from rsvg.models.stages.zoom import SecondLook

__all__ = [
    "FEATURE_PARTS",
    "STAGES",
    "Stage",
    "StageContext",
    "StageOptions",
    "StageReport",
    "build_stages",
    "check_augmentation",
    "parse_stages",
    "result_notes",
    "stage_reports",
    "step_titles",
    "upgrade_legacy_config",
    "upgrade_legacy_names",
]

#: every stage, by name, in the order they run
STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (
        ObjectHead,
        CandidateRanking,
        SecondLook,
        BoxRefiner,
    )
}


@dataclass(frozen=True)
class FeaturePart:
    """A map riding at the end of the visual feature map, folded into the stride-32 grid."""

    channels: int
    compute: Callable[[Tensor], Tensor]  # the normalised image (B, 3, S, S) -> (B, channels, S/32, S/32)


FEATURE_PARTS: dict[str, FeaturePart] = {
    "colours": FeaturePart(colour_channels(BACKBONE_STRIDE), lambda image: colour_map(image, BACKBONE_STRIDE)),
}


def parse_stages(raw: Mapping[str, Any], model: Any) -> dict[str, StageOptions]:
    """``model.stages`` of a config (names → option mappings, or options already read) → each stage's options,
    in the order the stages run, checked against the model's config ``model`` (:meth:`StageOptions.check`). A
    stage whose entry is a mapping is on with those options, one whose entry is empty (null) is on with its
    defaults, and one whose entry is ``false`` is off."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"model.stages must be a mapping of stage names to options, got {raw!r}")
    unknown = sorted(set(raw) - set(STAGES))
    if unknown:
        raise ConfigError(f"model.stages: unknown stage(s) {unknown}; known: {list(STAGES)}")
    out: dict[str, StageOptions] = {}
    for name, cls in STAGES.items():
        if name not in raw or raw[name] is False:  # false: the stage is off, as if it were not named
            continue
        value = raw[name]
        options = value if isinstance(value, cls.options_type) else _read_options(name, cls, value)
        options.check(name, model)
        out[name] = options
    return out


def _read_options(name: str, cls: type[Stage], value: Any) -> StageOptions:
    where = f"model.stages.{name}"
    if value is None:
        value = {}
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of its options ({{}} for the defaults), got {value!r}")
    options_type = cls.options_type
    check_option_types(value, options_type, where)
    weights = value.get("weights") or {}
    if not isinstance(weights, Mapping):
        raise ConfigError(f"{where}.weights must map loss terms to weights, got {weights!r}")
    bad = sorted(set(weights) - set(cls.loss_terms))
    if bad:
        raise ConfigError(f"{where}.weights: unknown loss term(s) {bad}; the stage's terms: {list(cls.loss_terms)}")
    for term, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ConfigError(f"{where}.weights.{term} must be a number >= 0, got {weight!r}")
    floats = {f.name for f in fields(options_type) if isinstance(f.default, float)}
    values = {k: float(v) if k in floats else v for k, v in value.items()}  # 46 and 46.0 are one option value
    return options_type(**{**values, "weights": {t: float(w) for t, w in weights.items()}})


def options_fields(name: str) -> set[str]:
    """The option names of stage ``name`` (for overrides such as ``model.stages.rank.layers=3``)."""
    return {f.name for f in fields(STAGES[name].options_type)}


def build_stages(options: Mapping[str, StageOptions], core: CoreFacts) -> nn.ModuleDict:
    """The stages ``options`` names (:func:`parse_stages`), around a core model of sizes ``core``, in the
    order they run."""
    return nn.ModuleDict({name: STAGES[name](opts, core) for name, opts in options.items()})


def backbone_strides(options: Mapping[str, Any]) -> set[int]:
    """The backbone strides the stages ``options`` names read besides the core model's."""
    return {s for name in options for s in STAGES[name].backbone_strides}


def step_titles() -> dict[str, str]:
    """``step_key → title`` of every stage that can change the answer, in the order they run."""
    return {cls.step_key: cls.step_title for cls in STAGES.values() if cls.step_key}


def before_fields() -> dict[str, str]:
    """``before_field → title`` of every stage that keeps the answer's box from before it."""
    return {cls.before_field: cls.step_title for cls in STAGES.values() if cls.before_field}


@dataclass(frozen=True)
class StageReport:
    """What one stage that ran says about a batch's answers: which it changed (``(B,)`` bool, None when it has
    no say) and their boxes before it (``(B, 4)`` normalised, None when not kept)."""

    stage: Stage
    changed: Tensor | None
    boxes_before: Tensor | None


def stage_reports(stages: Sequence[Stage], stage_records: Mapping[str, Any]) -> list[StageReport]:
    """For each stage that left a record in an output's ``stages``, in the order they ran, what it says about the
    answers: the one reading of stage records that evaluation rows and :class:`rsvg.inference.Grounder` share."""
    reports = []
    for stage in stages:
        record = stage_records.get(stage.name)
        if record is not None:
            reports.append(StageReport(stage, stage.changed(record), stage.boxes_before(record)))
    return reports


def result_notes(rows: Sequence[Mapping[str, Any]], pr50: Callable[[list[Any]], float]) -> list[str]:
    """HTML paragraphs on what each stage did to a split's predictions (``rows`` of ``predictions.jsonl``), for
    the stages whose fields the rows carry: how many answers it changed and their Pr@0.5 (``pr50`` of a list of
    rows), or, for a stage that keeps the answer from before it, Pr@0.5 before and after."""
    notes = []
    for name, cls in STAGES.items():
        if not rows:
            break
        title = f"The {cls.step_title} (<code>model.stages.{name}</code>: {cls.note_what})"
        if cls.before_field and cls.before_field in rows[0]:
            before = 100 * sum(r[cls.before_field] > 0.5 for r in rows) / len(rows)
            after = 100 * sum(r["iou"] > 0.5 for r in rows) / len(rows)
            fixed = sum(r["iou"] > 0.5 >= r[cls.before_field] for r in rows)
            broken = sum(r[cls.before_field] > 0.5 >= r["iou"] for r in rows)
            notes.append(
                f"<p>{title} took Pr@0.5 from {before:.2f} % to {after:.2f} %: {fixed} boxes it made right, "
                f"{broken} it made wrong.</p>"
            )
        elif cls.step_key and cls.step_key in rows[0]:
            marked = [r for r in rows if r[cls.step_key]]
            if not marked:
                notes.append(f"<p>The {cls.step_title} (<code>model.stages.{name}</code>) {cls.note_none}</p>")
                continue
            notes.append(
                f"<p>{title} {cls.note_changed} {len(marked)} of the {len(rows)} test boxes; Pr@0.5 on those: "
                f"{pr50(marked):.2f} %.</p>"
            )
    return notes


def upgrade_legacy_config(model: dict[str, Any], loss: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``model`` section written before the stages had their own section (flat ``model.zoom: true``,
    ``model.zoom_window: 96``, ``loss.zoom_weight: 2``) with those keys moved into ``model.stages``; the loss
    weights are popped from ``loss`` in place. A stage that was off drops its options, as they did nothing then.
    Current sections pass unchanged."""
    out = dict(model)
    stages = dict(out.get("stages") or {})
    for name, cls in STAGES.items():
        switch = out.pop(name, None)
        options = {new: out.pop(old) for old, new in cls.legacy_options.items() if old in out}
        weight = loss.pop(cls.legacy_weight, None) if loss is not None and cls.legacy_weight else None
        if switch is not None and not isinstance(switch, bool):
            raise ConfigError(f"model.{name} must be true or false, got {switch!r} (now model.stages.{name})")
        if switch is False:
            stages.pop(name, None)
        if not (switch or name in stages):
            continue  # the stage is off: its options did nothing
        entry = stages.get(name) or {}
        entry = asdict(entry) if is_dataclass(entry) and not isinstance(entry, type) else dict(entry)
        entry.update(options)
        if weight is not None:
            entry["weights"] = {term: weight for term in cls.loss_terms}
        stages[name] = entry
    if stages or "stages" in model:
        out["stages"] = stages
    return out


#: checkpoints written before the stages had their own folder named their parameters differently
LEGACY_PREFIXES = {
    "object_head.": "stages.object_head.object_head.",
    "query_category.": "stages.object_head.query_category.",
    "prior_scale": "stages.object_head.prior_scale",
    "ranker.": "stages.rank.",
    "second_look.": "stages.zoom.",
    "refiner.": "stages.refine.",
}


def upgrade_legacy_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict with the stages' parameters under their current names (older checkpoints kept them at the
    top of the model); current names pass unchanged."""
    out = {}
    for key, value in state.items():
        for old, new in LEGACY_PREFIXES.items():
            if key == old or (old.endswith(".") and key.startswith(old)):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out
