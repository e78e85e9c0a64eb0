"""The grounding-model interface: what every model family implements and all of rsvg relies on.

Trainer, evaluation, :class:`rsvg.inference.Grounder`, scene grounding, the web API and the benchmarks hold a
:class:`GroundingModel` and use only what this class declares:

* **input**: :attr:`image_size` (the square network input), :attr:`mean` / :attr:`std` (the image normalisation),
  :attr:`max_tokens` and :meth:`tokenizer` (the text handling), :meth:`sample_extras` and :attr:`batch_keys`
  (what a dataset sample must carry beyond image, box and query, and which batch entries the forward reads);
* **forward** on a collated batch → :class:`~rsvg.models.outputs.GroundingOutput`: boxes normalised to the
  network input, a score per answer and, where the family has one, an attention map for the pictures. The
  visual part may come precomputed (:meth:`encode_image`, :attr:`feature_channels`): feature caches of frozen
  backbones store it;
* **loss**: :meth:`loss` (named terms, their weighted sum under ``"loss"``), :meth:`loss_terms`,
  :meth:`needs_attention`;
* **optimiser groups**: :meth:`pretrained_parameter_names` (``train.lr_groups: loaded``) and
  :meth:`reference_group` (``train.lr_groups: reference``, the family's reference implementation's groups);
* **parts**: :attr:`backbone` (a :class:`~rsvg.models.backbones.base.Backbone`) and :attr:`text` (the text
  encoder; ``cache_enabled`` serves repeated queries from memory when it is frozen).

A family subclasses it and registers in :mod:`rsvg.models.registry`; ``docs/models.md`` ("Adding a model family")
lists the tests a family must pass. The stages (:mod:`rsvg.models.stages`) wrap a core model that also implements
:meth:`forward_core` and :meth:`core_facts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from rsvg.models.loss import LossConfig
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stage_inputs import CoreFacts, CoreState

__all__ = ["GroundingModel"]


class GroundingModel(nn.Module):
    """Base class of the grounding models (see the module docstring)."""

    #: the family's name in ``model.arch`` (:mod:`rsvg.models.registry`)
    arch: ClassVar[str]
    cfg: Any  # the family's config (a rsvg.models.config.ModelConfig subclass)
    backbone: Any  # rsvg.models.backbones.base.Backbone
    text: Any  # rsvg.models.text_encoder.TextEncoder
    #: channels of :meth:`encode_image`'s map (what a feature cache stores per image)
    feature_channels: int

    # --- input ----------------------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        """Side of the square network input (pixels)."""
        return int(self.cfg.image_size)

    @property
    def max_tokens(self) -> int:
        """Text tokens per query, special tokens included."""
        return int(self.cfg.max_tokens)

    @property
    def mean(self) -> tuple[float, float, float]:
        """The image normalisation's mean (RGB, 0..1 scale): the config's (by default the backbone's; a family may
        declare its own, :meth:`rsvg.models.config.ModelConfig.normalisation`)."""
        return tuple(self.cfg.normalisation()[0])  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, float, float]:
        """The image normalisation's standard deviation (the config's)."""
        return tuple(self.cfg.normalisation()[1])  # type: ignore[return-value]

    def tokenizer(self) -> Any:
        """The tokenizer the text encoder reads (ids, attention mask)."""
        return self.text.tokenizer()

    @property
    def batch_keys(self) -> tuple[str, ...]:
        """Batch entries besides image, padding mask and tokens that the forward reads (through ``extras``)."""
        return ()

    def sample_extras(self, training: bool) -> list[Any]:
        """New sample extras (:mod:`rsvg.data.extras`) for a training or an evaluation set: what each sample must
        carry for this model. Fresh ones every call (an extra is bound to one set's samples)."""
        return []

    def stage_list(self) -> list[Any]:
        """The stages after the core model, in the order they run (:mod:`rsvg.models.stages`); none here."""
        return []

    # --- forward --------------------------------------------------------------------------------------------
    def forward(
        self,
        image: Tensor | None,
        padding_mask: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        need_attention: bool = False,
        *,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> GroundingOutput:
        """``image`` (B, 3, S, S) normalised, ``padding_mask`` (B, S, S) True on padding, token ids and mask
        (B, Nt) → the answers. ``image_features`` (:meth:`encode_image`) replaces ``image`` when given,
        ``text_features`` (words, sentence) the text encoder's output; ``extras`` holds :attr:`batch_keys`."""
        raise NotImplementedError

    def encode_image(self, image: Tensor, backbone: nn.Module | None = None) -> Tensor:
        """The visual input ``(B, feature_channels, h, w)`` of a normalised image batch, read by ``backbone`` (a
        copy of :attr:`backbone`, e.g. with its batch norms folded) instead of the model's own when given."""
        raise NotImplementedError

    def visual_features(self, image: Tensor | None, image_features: Tensor | None) -> Tensor:
        """``image_features`` when given (checked against :attr:`feature_channels`), else :meth:`encode_image` of
        ``image``: the forward's visual input either way."""
        if image_features is None:
            if image is None:
                raise ValueError("give the image or its features (image_features)")
            return self.encode_image(image)
        if image_features.shape[1] != self.feature_channels:
            raise ValueError(
                f"a feature map of {image_features.shape[1]} channels does not match the model "
                f"({self.feature_channels})"
            )
        return image_features

    # --- loss -----------------------------------------------------------------------------------------------
    def needs_attention(self, cfg: LossConfig) -> bool:
        """Whether :meth:`loss` reads the attention map (the forward must then run with ``need_attention``)."""
        return False

    def loss_terms(self, cfg: LossConfig) -> tuple[str, ...]:
        """The names :meth:`loss` returns, ``"loss"`` first (a term may be absent from a batch that has none)."""
        raise NotImplementedError

    def loss(self, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig) -> dict[str, Tensor]:
        """The loss of ``out`` on ``batch`` (its ``box`` in network pixels is the target): ``"loss"`` to
        back-propagate and each named term, detached."""
        raise NotImplementedError

    # --- optimiser groups -----------------------------------------------------------------------------------
    def pretrained_parameter_names(self) -> set[str]:
        """Names of the parameters initialised from pretrained weights (``train.lr_groups: loaded``)."""
        raise NotImplementedError

    def reference_group(self, name: str) -> str:
        """The reference implementation's optimiser group of parameter ``name``: ``"visual"`` or ``"text"``
        (trained at ``lr_pretrained``) or ``"rest"`` (at ``lr``)."""
        return "text" if name.startswith("text.") else "rest"

    def init_report(self) -> str | None:
        """What the family initialised from pretrained weights besides the backbone and the text encoder (the
        trainer prints it), or None."""
        return None

    # --- inference ------------------------------------------------------------------------------------------
    def fold_frozen_batchnorm(self) -> int:
        """Fold the frozen backbone's batch norms into its convolutions (inference only); how many it folded."""
        return int(self.backbone.fold_frozen_batchnorm())

    # --- for the stages (families that can carry them) ------------------------------------------------------
    def core_facts(self) -> CoreFacts:
        """The sizes the stages build their layers from."""
        raise NotImplementedError(f"model.arch {self.arch} cannot carry stages")

    def forward_core(
        self,
        image: Tensor | None,
        padding_mask: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor,
        need_attention: bool = False,
        *,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[GroundingOutput, CoreState]:
        """:meth:`forward` that also returns what the stages read."""
        raise NotImplementedError(f"model.arch {self.arch} cannot carry stages")
