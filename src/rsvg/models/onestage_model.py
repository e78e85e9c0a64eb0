"""What the one-stage grounding families of the paper's Table II share as models (FAOA, ReSC-base, LBYL-Net):
:class:`OneStageModel`, a :class:`~rsvg.models.interface.GroundingModel` whose head scores every anchor-cell of
one or more grids and regresses a box at each (:mod:`rsvg.models.yolo`).

A family gives :meth:`OneStageModel.head_outputs` (its fusion and head: the raw output per grid) and its anchors;
this class turns them into the answer (the best-scoring anchor-cell's box, its score, an attention map for the
pictures), computes the references' loss, reads the backbone's maps (:meth:`OneStageModel.read_levels`; folded into
one stride-32 map for feature caches) and gives the references' optimiser groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from rsvg.models.interface import GroundingModel
from rsvg.models.loss import LossConfig
from rsvg.models.onestage_layers import answer_map, fold_levels, folded_channels, unfold_levels
from rsvg.models.outputs import GroundingOutput
from rsvg.models.yolo import AnchorSet, YoloLossConfig, build_targets, decode, flatten_outputs, yolo_grounding_loss

__all__ = ["OneStageModel"]


class OneStageModel(GroundingModel):
    """Base class of the one-stage families (see the module docstring)."""

    anchors: AnchorSet
    level_channels: dict[int, int]
    #: the loss's settings (LBYL-Net clamps σ(tx), σ(ty))
    loss_config: ClassVar[YoloLossConfig] = YoloLossConfig()
    #: whether the targets come from the box clamped to ``[0, image_size − 1]``, as FAOA's and ReSC's training
    #: loops clamp it before ``build_target``
    clamp_targets: ClassVar[bool] = False

    # --- the family's part ----------------------------------------------------------------------------------
    def head_outputs(
        self,
        image: Tensor | None,
        input_ids: Tensor,
        attention_mask: Tensor,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
    ) -> list[Tensor]:
        """The head's raw output per grid, in the anchors' level order: ``[B, A·5, G, G]``."""
        raise NotImplementedError

    def grid_outputs(
        self,
        image: Tensor | None,
        input_ids: Tensor,
        attention_mask: Tensor,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """:meth:`head_outputs` and what the family's loss reads besides (none here)."""
        return self.head_outputs(image, input_ids, attention_mask, image_features, text_features), {}

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
        outputs, extra = self.grid_outputs(image, input_ids, attention_mask, image_features, text_features)
        conf, reg = flatten_outputs(outputs, self.anchors)
        decoded = decode(conf, reg, self.anchors, self.image_size)
        out = GroundingOutput(decoded.box / self.image_size, cell_scores=conf.float())
        # (B, N, 4) tx, ty, tw, th of every anchor-cell, for the loss
        out.extra.update({"regressions": reg, **extra})
        if need_attention:
            out.attention = answer_map(conf, self.anchors, self.image_size)
        return out

    def backbone_input(self, image: Tensor) -> Tensor:
        """The normalised batch as the backbone reads it (a family may reorder its channels)."""
        return image

    def read_levels(self, backbone: nn.Module) -> None:
        """Take the levels ``backbone`` returns as the ones the model reads: their channels per stride and the
        channels of the folded map a feature cache stores."""
        self.level_channels = dict(zip(backbone.return_levels, backbone.out_channels, strict=True))
        self.feature_channels = folded_channels(list(self.level_channels.values()), list(self.level_channels))

    def visual_maps(self, image: Tensor | None, image_features: Tensor | None) -> list[Tensor]:
        """The backbone's maps the model reads (highest resolution first), from the image or unfolded from cached
        features."""
        if image_features is None and image is not None:
            return self.backbone(self.backbone_input(image))
        features = self.visual_features(image, image_features)
        return unfold_levels(features, list(self.level_channels.values()), list(self.level_channels))

    def encode_image(self, image: Tensor, backbone: nn.Module | None = None) -> Tensor:
        """The backbone's maps folded into one stride-32 map (:func:`~rsvg.models.onestage_layers.fold_levels`),
        what a feature cache stores."""
        maps = (backbone or self.backbone)(self.backbone_input(image))
        return fold_levels(maps, list(self.level_channels))

    # --- loss and optimiser groups --------------------------------------------------------------------------
    def loss_terms(self, cfg: LossConfig) -> tuple[str, ...]:
        return ("loss", "conf", "coord")

    def loss(self, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig) -> dict[str, Tensor]:
        """The references' loss (:func:`~rsvg.models.yolo.yolo_grounding_loss` with :attr:`loss_config`):
        cross-entropy over all anchor-cells' confidences against the target anchor-cell, plus 5 × the regression's
        MSE there (``coord`` reported unweighted)."""
        assert out.cell_scores is not None
        box = batch["box"].float()
        if self.clamp_targets:
            box = box.clamp(0, self.image_size - 1)
        targets = build_targets(box, self.anchors, self.image_size)
        return yolo_grounding_loss(out.cell_scores, out.extra["regressions"], targets, self.loss_config)

    def pretrained_parameter_names(self) -> set[str]:
        pretrained, _ = self.backbone.pretrained_and_new_parameters()
        names = {f"backbone.{n}" for n, _ in pretrained} | {f"text.{n}" for n in self.text.pretrained_names}
        own = dict(self.named_parameters())
        return {n for n in names if n in own}

    def reference_group(self, name: str) -> str:
        """FAOA's and ReSC's two groups: DarkNet at lr/10 (``visual``), everything else at lr (a frozen text
        encoder gets no gradient)."""
        return "visual" if name.startswith("backbone.") else "text" if name.startswith("text.") else "rest"
