"""What TransVG and VLTVG share: DETR's visual branch (a CNN's stride-32 map, a 1×1 ``input_proj`` to the model's
width and DETR's encoder with 2-D sine positions), their reference's optimiser groups, and DETR's initialisation.

:class:`DetrBranchModel` is the base of both families' models; :func:`build_detr_branch_model` their builder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.errors import ConfigError
from rsvg.models.backbones.base import BACKBONE_STRIDE
from rsvg.models.detr_init import DetrInitReport, init_from_detr
from rsvg.models.encoders import build_text, build_visual
from rsvg.models.interface import GroundingModel
from rsvg.models.mgvlf_layers import ChannelNorm, visual_padding_mask
from rsvg.models.transformer import Encoder, sine_position_encoding

__all__ = ["DetrBranchModel", "build_detr_branch_model"]


class DetrBranchModel(GroundingModel):
    """A grounding model whose visual tokens come from DETR's visual branch (``cfg`` a
    :class:`~rsvg.models.detr_branch_config.DetrBranchConfig`), with the lite options of its visual and text
    inputs (``stride16_detail``, ``visual_norm``, ``text_norm``)."""

    #: the reference's visual model (CNN, input projection, DETR encoder): its own learning rates
    VISUAL_MODEL = ("backbone.", "input_proj.", "visual_encoder.")

    def __init__(self, cfg: Any, backbone: nn.Module, text_encoder: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.text = text_encoder
        channels = dict(zip(backbone.strides, backbone.out_channels, strict=True))
        # model.stride16_detail: each stride-32 cell also carries its 2x2 stride-16 cells as channels
        self.feature_channels = int(channels[32]) + (4 * int(channels[16]) if cfg.stride16_detail else 0)
        side = -(-cfg.image_size // BACKBONE_STRIDE)
        self.num_visual = side * side
        self.visual_norm = ChannelNorm(self.feature_channels) if cfg.visual_norm else nn.Identity()
        self.word_norm = nn.LayerNorm(text_encoder.hidden_size) if cfg.text_norm else nn.Identity()
        self.sentence_norm = nn.LayerNorm(text_encoder.hidden_size) if cfg.text_norm else nn.Identity()
        self.input_proj = nn.Conv2d(self.feature_channels, cfg.hidden_dim, 1)
        self.visual_encoder = Encoder(cfg.visual_encoder_layers, cfg.hidden_dim, cfg.heads, cfg.ffn_dim, cfg.dropout)
        for p in self.visual_encoder.parameters():  # DETR's _reset_parameters
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.detr_init: DetrInitReport | None = None  # set by the builder from a DETR checkpoint

    def visual_tokens(
        self, image: Tensor | None, image_features: Tensor | None, padding_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, tuple[int, int]]:
        """DETR's encoder output ``(B, h·w, D)``, its positions ``(1, h·w, D)``, the padding cells ``(B, h·w)`` and
        the grid, from the image or its backbone map."""
        visual = self.visual_features(image, image_features)
        h, w = visual.shape[-2:]
        if h * w != self.num_visual:
            raise ValueError(
                f"a {h}x{w} feature map does not match the model ({self.num_visual} tokens at model.image_size "
                f"{self.cfg.image_size})"
            )
        x = self.input_proj(self.visual_norm(visual)).flatten(2).transpose(1, 2)
        pos = sine_position_encoding(h, w, x.shape[-1], x.device).to(x.dtype).unsqueeze(0)
        padding = visual_padding_mask(padding_mask, h, w)
        x, _ = self.visual_encoder(x, pos, padding)
        return x, pos, padding, (h, w)

    def read_text(
        self, input_ids: Tensor, attention_mask: Tensor, text_features: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        """The word features ``(B, Nt, C)`` and the sentence feature ``(B, C)`` of the text encoder (or of
        ``text_features``, a cache of them), each through its LayerNorm with ``model.text_norm``."""
        words, sentence = self.text(input_ids, attention_mask) if text_features is None else text_features
        return self.word_norm(words), self.sentence_norm(sentence)

    def encode_image(self, image: Tensor, backbone: nn.Module | None = None) -> Tensor:
        """The backbone's stride-32 map of the normalised ``image`` (with ``model.stride16_detail``, its stride-16
        map folded in by space-to-depth)."""
        maps = (backbone or self.backbone)(image)
        if not self.cfg.stride16_detail:
            return maps[-1]
        return torch.cat([maps[-1], F.pixel_unshuffle(maps[-2], 2)], 1)

    def pretrained_parameter_names(self) -> set[str]:
        """The backbone's and the text encoder's loaded parameters, and what a DETR checkpoint initialised."""
        pretrained, _ = self.backbone.pretrained_and_new_parameters()
        names = {f"backbone.{n}" for n, _ in pretrained} | {f"text.{n}" for n in self.text.pretrained_names}
        if self.detr_init is not None:
            names |= self.detr_init.loaded
        own = dict(self.named_parameters())
        return {n for n in names if n in own}

    def reference_group(self, name: str) -> str:
        """The references' groups: the visual model (CNN, input projection, DETR encoder) and BERT at
        ``lr_pretrained`` (1e-5 each there), the rest at ``lr``."""
        return "visual" if name.startswith(self.VISUAL_MODEL) else "text" if name.startswith("text.") else "rest"

    def init_report(self) -> str | None:
        return self.detr_init.summary() if self.detr_init is not None else None


def build_detr_branch_model(
    model_class: type[DetrBranchModel],
    cfg: Any,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """``model_class`` on the backbone's stride-32 map (frozen batch norms and a frozen first stage, conv1 and
    layer1 of ResNet, as DETR's backbone) and the text encoder's words (the mean of its last ``cfg.word_layers``
    layers). With ``load_pretrained`` and a DETR checkpoint as ``backbone_weights``, DETR's ``input_proj`` and
    encoder initialise the visual branch, as both references do; nothing else comes from DETR."""
    if tuple(extra_strides):
        raise ConfigError(f"model.stages: model.arch {cfg.arch} carries no stages")
    levels = (16, 32) if cfg.stride16_detail else (32,)
    backbone = build_visual(cfg, return_levels=levels, load_pretrained=load_pretrained)
    text = build_text(
        cfg, sentence="mean", load_pretrained=load_pretrained, text_folder=text_folder, word_layers=cfg.word_layers
    )
    model = model_class(cfg, backbone, text)
    if load_pretrained and cfg.backbone_weights is not None:
        model.detr_init = init_from_detr(model, cfg.backbone_weights, fusion=None)
    return around(model) if around is not None else model
