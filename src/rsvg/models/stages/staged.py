"""A core model with stages after it: :class:`StagedModel`.

The stages wrap the core model the way DETR adds segmentation by wrapping the detector: the core runs its own
path to an answer (:meth:`~rsvg.models.interface.GroundingModel.forward_core`), then each stage, in order, reads
what the core computed (:class:`~rsvg.models.stage_inputs.CoreState`) and may change the answer. The wrapper is
itself a :class:`~rsvg.models.interface.GroundingModel`: everything that holds a model sees one interface.

Parameters are named ``core.*`` and ``stages.<name>.*``; checkpoints written when the stages lived inside the
model (``backbone.*``, ``stages.*``, or older names) load through :func:`upgrade_state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rsvg.models.interface import GroundingModel
from rsvg.models.loss import LossConfig
from rsvg.models.outputs import GroundingOutput
from rsvg.models.stages import FEATURE_PARTS, Stage, StageContext, upgrade_legacy_names

__all__ = ["StagedModel", "upgrade_state"]


class StagedModel(GroundingModel):
    """``core`` followed by ``stages`` (a ``ModuleDict`` in the order they run, :func:`build_stages`)."""

    def __init__(self, core: GroundingModel, stages: nn.ModuleDict) -> None:
        super().__init__()
        self.core = core
        self.stages = stages
        parts = sorted({p for stage in stages.values() for p in stage.feature_parts})
        self.feature_parts = {p: FEATURE_PARTS[p].channels for p in parts}
        self.feature_channels = core.feature_channels + sum(self.feature_parts.values())
        self._register_load_state_dict_pre_hook(_upgrade_state_hook)

    # the core's parts and settings, seen through the wrapper
    @property
    def arch(self) -> str:  # type: ignore[override]
        return self.core.arch

    @property
    def cfg(self) -> Any:  # type: ignore[override]
        return self.core.cfg

    @property
    def backbone(self) -> Any:  # type: ignore[override]
        return self.core.backbone

    @property
    def text(self) -> Any:  # type: ignore[override]
        return self.core.text

    @property
    def batch_keys(self) -> tuple[str, ...]:
        keys = (*self.core.batch_keys, *(k for stage in self.stage_list() for k in stage.batch_keys))
        return tuple(dict.fromkeys(keys))

    def stage_list(self) -> list[Stage]:
        return list(self.stages.values())  # type: ignore[arg-type]

    def sample_extras(self, training: bool) -> list[Any]:
        return [*self.core.sample_extras(training), *(e for s in self.stage_list() for e in s.sample_extras(training))]

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
        core_features, parts = self._split(self.visual_features(image, image_features))
        out, state = self.core.forward_core(
            None,
            padding_mask,
            input_ids,
            attention_mask,
            need_attention,
            image_features=core_features,
            text_features=text_features,
        )
        ctx = StageContext.around(state, self.core.backbone, parts, extras or {})
        for stage in self.stages.values():
            stage(out, ctx)
        return out

    def encode_image(self, image: Tensor, backbone: nn.Module | None = None) -> Tensor:
        """The core's visual input, then the maps the stages read (:data:`FEATURE_PARTS`)."""
        return self.with_parts(self.core.encode_image(image, backbone), image)

    def with_parts(self, core_features: Tensor, image: Tensor) -> Tensor:
        """The core's visual input ``core_features`` of the normalised ``image`` with the stages' maps added."""
        if not self.feature_parts:
            return core_features
        parts = [FEATURE_PARTS[name].compute(image).to(core_features.dtype) for name in self.feature_parts]
        return torch.cat([core_features, *parts], 1)

    def _split(self, features: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        start = self.core.feature_channels
        parts = {}
        for name, channels in self.feature_parts.items():
            parts[name] = features[:, start : start + channels]
            start += channels
        core = features if not parts else features[:, : self.core.feature_channels]
        return core, parts

    # --- loss and optimiser groups: the core's, then each stage's ---
    def needs_attention(self, cfg: LossConfig) -> bool:
        return self.core.needs_attention(cfg)

    def loss_terms(self, cfg: LossConfig) -> tuple[str, ...]:
        return self.core.loss_terms(cfg) + tuple(t for stage in self.stage_list() for t in stage.loss_terms)

    def loss(self, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig) -> dict[str, Tensor]:
        losses = self.core.loss(out, batch, cfg)
        target = batch["box"].float() / self.image_size
        for stage in self.stage_list():
            weighted, terms = stage.loss(out, target, batch, cfg)
            if weighted is not None:
                losses["loss"] = losses["loss"] + weighted
            losses.update(terms)
        return losses

    def pretrained_parameter_names(self) -> set[str]:
        return {f"core.{n}" for n in self.core.pretrained_parameter_names()}

    def reference_group(self, name: str) -> str:
        if name.startswith("core."):
            return self.core.reference_group(name.removeprefix("core."))
        return "rest"

    def init_report(self) -> str | None:
        return self.core.init_report()

    def fold_frozen_batchnorm(self) -> int:
        return self.core.fold_frozen_batchnorm()

    def core_facts(self) -> Any:
        return self.core.core_facts()


def upgrade_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A state dict of a staged model under the wrapper's names: the stages' older names
    (:func:`upgrade_legacy_names`) and the core's parameters, once at the top, under ``core.``."""
    out = {}
    for key, value in upgrade_legacy_names(dict(state)).items():
        out[key if key.startswith(("core.", "stages.")) else f"core.{key}"] = value
    return out


def _upgrade_state_hook(state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
    """Load-state-dict pre-hook: rename an older checkpoint's parameters in place."""
    own = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    upgraded = upgrade_state(own)
    if upgraded.keys() == own.keys():
        return
    for key in own:
        del state_dict[prefix + key]
    for key, value in upgraded.items():
        state_dict[prefix + key] = value
