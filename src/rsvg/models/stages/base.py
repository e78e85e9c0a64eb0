"""What a stage is: a step after the paper's model that reads its result and may change the answer.

The core model (:class:`~rsvg.models.mgvlf.MGVLF`) runs the paper's path — encoders, MLCM, fusion, a head — and
then each enabled stage in order. A stage is an ``nn.Module`` with one small interface:

* what it needs: ``batch_keys`` (entries of a batch it reads, handed over in :attr:`StageContext.batch`),
  ``feature_parts`` (maps riding in the visual feature map, e.g. ``"colours"``), and ``sample_extras`` (what the
  dataset must add to each sample for it, :mod:`rsvg.data.extras`);
* what it adds: its own record in ``GroundingOutput.stages[name]``; it may replace the answer's box
  (``out.boxes``) or the cell scores;
* its loss terms: :meth:`Stage.loss` returns named terms and their weighted sum; :attr:`Stage.loss_terms` names
  them up front (the trainer logs every name every step).

Nothing outside :mod:`rsvg.models.stages` knows a stage by name: trainer, evaluation, inference and benchmarks
ask the model's stages through this interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.data.records import GroundingSample
from rsvg.errors import NonFiniteError
from rsvg.models.backbones.base import BACKBONE_STRIDE
from rsvg.models.loss import LossConfig
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stage_inputs import CoreFacts, CoreState
from rsvg.models.stages.colours import unfold_colour_map


def require_finite_boxes(boxes: Tensor, reader: str) -> None:
    """Raise :class:`~rsvg.errors.NonFiniteError` when ``boxes`` hold NaN or infinity, before ``reader`` (a stage
    that reads boxes with a compiled kernel such as ``roi_align``, which crashes the whole process on NaN) gets
    them. The training step turns it into a stop that names the epoch and step; inference refuses the answer."""
    if not bool(torch.isfinite(boxes).all()):
        raise NonFiniteError(
            f"the {reader} was given NaN or infinite boxes: the model's weights or its input are not finite"
        )


@dataclass
class StageOptions:
    """A stage's options (``model.stages.<name>`` of a config): each stage subclasses it with its own fields.

    ``weights`` weighs the stage's loss terms, by term name (:attr:`Stage.loss_terms`); a term it leaves out
    weighs 1."""

    weights: dict[str, float] = field(default_factory=dict)

    def check(self, stage: str, model: Any) -> None:
        """Refuse options that cannot build the stage around ``model`` (its :class:`ModelConfig`); subclasses
        add their own rules and call this."""

    def weight(self, term: str) -> float:
        return float(self.weights.get(term, 1.0))


@dataclass
class StageContext(CoreState):
    """What the stages read for one batch: the core model's :class:`CoreState`, its backbone, the maps the
    stages asked for (``feature_parts``, still folded into the stride-32 grid) and the batch entries they named
    (``batch_keys``)."""

    backbone: nn.Module | None = None
    parts: Mapping[str, Tensor] = field(default_factory=dict)
    batch: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def around(cls, state: CoreState, backbone: nn.Module, parts: Mapping[str, Tensor], batch: Mapping[str, Any]):
        """The context of the core model's ``state``."""
        return cls(**{f.name: getattr(state, f.name) for f in fields(CoreState)}, backbone=backbone, parts=parts,
                   batch=batch)

    @cached_property
    def stride16(self) -> Tensor:
        """The backbone's stride-16 map ``(B, C16, 2h, 2w)``, unfolded from the stride-32 cells that carry it."""
        if self.detail is None:
            raise ValueError("this stage reads the stride-16 map: the core model must fold it in (stride16_detail)")
        return F.pixel_shuffle(self.detail, 2)

    @cached_property
    def colours(self) -> Tensor:
        """The image's colour map ``(B, 3, S/4, S/4)`` (:mod:`rsvg.models.stages.colours`)."""
        return unfold_colour_map(self.parts["colours"], BACKBONE_STRIDE)


class Stage(nn.Module):
    """Base class of the stages (see the module docstring)."""

    #: key of the stage's record in ``GroundingOutput.stages`` and of its options in ``model.stages``
    name: ClassVar[str]
    #: its options' class
    options_type: ClassVar[type[StageOptions]] = StageOptions
    #: older configs' flat ``model.<key>`` options, by the option they now are (the switch is ``model.<name>``)
    legacy_options: ClassVar[dict[str, str]] = {}
    #: older configs' ``loss.<key>`` that weighed every term of the stage
    legacy_weight: ClassVar[str] = ""
    #: batch entries the stage reads (absent ones are simply not handed over)
    batch_keys: ClassVar[tuple[str, ...]] = ()
    #: maps the stage reads from the visual feature map (:data:`rsvg.models.stages.FEATURE_PARTS`)
    feature_parts: ClassVar[tuple[str, ...]] = ()
    #: backbone strides it reads besides the core model's (the backbone then returns those maps too)
    backbone_strides: ClassVar[tuple[int, ...]] = ()
    #: the names of the loss terms :meth:`loss` returns
    loss_terms: ClassVar[tuple[str, ...]] = ()
    #: whether a training step may leave some of its parameters without a gradient (DDP must then look for them)
    may_skip_parameters: ClassVar[bool] = False
    #: what it shows in answers and predictions: the key of "did it change the answer" and the step's title
    step_key: ClassVar[str | None] = None
    step_title: ClassVar[str] = ""
    #: a prediction-row field for the IoU the answer had before this stage (None: none)
    before_field: ClassVar[str | None] = None
    #: what it does, in a few words, and how a report says what it did to the answers (``note_changed`` is
    #: followed by "N of the M test boxes"; ``note_none`` is the sentence when it changed none)
    note_what: ClassVar[str] = ""
    note_changed: ClassVar[str] = "changed"
    note_none: ClassVar[str] = "changed none of the test boxes."
    #: False when its training inputs are computed once and would not follow a geometric augmentation (and why)
    supports_augmentation: ClassVar[bool] = True
    augmentation_note: ClassVar[str] = ""

    def __init__(self, options: StageOptions, core: CoreFacts) -> None:
        super().__init__()
        self.options = options

    def reset_parameters(self) -> None:
        """Initialisation after the model-wide Xavier init (which covers every matrix)."""

    def forward(self, out: GroundingOutput, ctx: StageContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(
        self, out: GroundingOutput, target: Tensor, batch: Mapping[str, Any], cfg: LossConfig
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """The stage's loss terms weighted by ``options.weights`` and summed (None when this batch gives it
        none), and the terms themselves (detached): :meth:`terms` weighed."""
        terms = self.terms(out, target, batch, cfg)
        if not terms:
            return None, {}
        weighted = sum(self.options.weight(name) * value for name, value in terms.items())
        return weighted, {name: value.detach() for name, value in terms.items()}  # type: ignore[return-value]

    def terms(
        self, out: GroundingOutput, target: Tensor, batch: Mapping[str, Any], cfg: LossConfig
    ) -> dict[str, Tensor]:
        """The stage's loss terms by name, before weighting (empty when this batch gives it none)."""
        return {}

    def sample_extras(self, training: bool) -> tuple[Any, ...]:
        """What each sample of a training (or evaluation) set must carry for this stage: sample extras
        (:mod:`rsvg.data.extras`)."""
        return ()

    def prepare_training(
        self, model: nn.Module, samples: Sequence[GroundingSample], device: torch.device, seed: int = 0
    ) -> Any:
        """Work done once before training (e.g. encoding crops with the frozen backbone); returns a sample extra
        (:class:`rsvg.data.extras.SampleExtra`) for the training set, or None."""
        return None

    def describe_preparation(self, extra: Any, samples: int) -> str:
        """What :meth:`prepare_training` made, for the training log."""
        return f"{self.name}'s training inputs"

    def changed(self, record: Any) -> Tensor | None:
        """``(B,)`` bool: which answers this stage changed (None when it has no say in the answer)."""
        return None

    def boxes_before(self, record: Any) -> Tensor | None:
        """``(B, 4)`` the answers' boxes before this stage, normalised (None when not kept)."""
        return None

    def example_extras(self, sample: dict[str, Any], index: int, generator: torch.Generator) -> None:
        """Add this stage's training inputs to a synthetic benchmark sample (random values of the right shape)."""

    def feature_timings(self, model: nn.Module, count: int, repeats: int, device: torch.device) -> dict[str, Any]:
        """``rsvg bench features``: timings of what this stage encodes besides the cached maps (none here)."""
        return {}


def check_augmentation(stages: Sequence[Stage], augment: object | None) -> None:
    """Refuse augmentation with a stage whose training inputs are computed once (they would not follow it)."""
    if augment is None:
        return
    for stage in stages:
        if not stage.supports_augmentation:
            raise ValueError(
                f"model.stages.{stage.name} does not work with augmentation ({stage.augmentation_note}): set "
                f"data.augment null or remove model.stages.{stage.name}"
            )
