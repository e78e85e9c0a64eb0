"""LBYL-Net: "Look Before You Leap: Learning Landmark Features for One-Stage Visual Grounding" (Huang et al.,
CVPR 2021), one of the natural-image methods the paper benchmarks on DIOR-RSVG (Table II).

As its reference implementation builds it (svip-lab/LBYLNet @ 47a0e83b6db6, ``core/models/net/lbylnet.py:
LBYLNet``; the counts below are the reference's own model built at random weights, BERT variant, default widths):

1. **Visual.** DarkNet-53 with YOLOv3's neck gives three maps (strides 32, 16, 8: 8×8, 16×16, 32×32 at 256 px);
   each goes through a 1×1 conv (with bias)-BN-ReLU to ``emb_size`` (``mapping_visu``, 461,056). The reference
   feeds DarkNet BGR images normalised with its own statistics; this model declares them as its
   :attr:`mean`/:attr:`std` in RGB order and flips the channels to BGR before the backbone (``bgr_input``).
2. **Text.** The text encoder's word features (the mean of its last four layers per token) divided by 4 once more,
   then averaged over the query's tokens, [CLS] and [SEP] included (``BertEncoder`` in ``core/models/
   lang_encoder/RNNencoder.py`` stacks the last four layers, takes their mean, divides that by 4 and takes the
   masked mean over tokens); through Linear-BN-ReLU-Dropout-Linear-BN-ReLU (``mapping_lang``, 263,680 from 768).
   The encoder trains with everything else; each batch is cut to its longest query, as the reference does.
3. **FiLM fusion per map.** The mapped visual map and 8 coordinate channels
   (:func:`~rsvg.models.onestage_layers.coord_map`), instance-normalised (no affine terms), modulated as
   ``ReLU(γ·x + β)`` with ``γ, β = tanh(Linear(text))`` per map (``gamma``, ``beta``: 203,544 each), then a 1×1
   conv-BN-ReLU to ``out_dim`` (``joint_fusion``, 205,056).
4. **Landmarks.** The three maps merged at the middle grid (16×16 at 256 px): the coarse one upsampled (nearest),
   the fine one max-pooled, the three averaged, through a 1×1 conv-BN-ReLU (``refine``, 66,304) and the landmark
   feature convolution (``context_block``, :class:`~rsvg.models.landmark_pool.LandmarkP4`, 3,017,216), then added
   back to each map (max-pooled to the coarse grid, upsampled to the fine one).
5. **Answer.** Per map a 3×3 conv (with bias)-ReLU and a 1×1 conv to 3 anchors × (tx, ty, tw, th, conf)
   (``out_funcs``, 1,781,805); the box of the best-scoring of all 4,032 anchor-cells (:mod:`rsvg.models.yolo`,
   anchors used as input pixels). The loss (``core/models/utils/losses.py: Loss``) is the cross-entropy over the
   anchor-cells' confidences plus 5 × the regression's MSE at the target anchor-cell, σ(tx), σ(ty) clamped to
   [1e-4, 1 − 1e-4] (:data:`~rsvg.models.yolo.LBYL_LOSS`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.landmark_pool import LandmarkP4
from rsvg.models.lbyl_config import LBYLConfig
from rsvg.models.onestage_layers import BatchNorm1dAnyBatch, coord_map
from rsvg.models.onestage_model import OneStageModel
from rsvg.models.text_encoder import TextEncoder
from rsvg.models.yolo import LBYL_ANCHORS, LBYL_LOSS, AnchorSet

__all__ = ["LBYLNet", "anchor_set"]

#: the maps LBYL-Net reads, by stride, coarsest first (the order of its mapping, fusion and output blocks)
STRIDES = (32, 16, 8)
#: ``BertEncoder`` divides the mean of the last four layers by their number once more before the token average
LAYER_MEAN_DIVISOR = 4.0
COORD_CHANNELS = 8


def anchor_set(cfg: LBYLConfig) -> AnchorSet:
    """The anchors of ``cfg`` on LBYL-Net's three grids: ``anchor_boxes`` (smallest first) reversed, the three
    largest on the coarsest grid, measured at ``anchor_imsize`` px (at the defaults, :data:`~rsvg.models.yolo.
    LBYL_ANCHORS` at a 256-px input)."""
    boxes = tuple((float(w), float(h)) for w, h in reversed(cfg.anchor_boxes))
    return AnchorSet(boxes, LBYL_ANCHORS.levels, LBYL_ANCHORS.strides, float(cfg.anchor_imsize))


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """The reference's ``_make_conv(.., 1)``: a 1×1 ``Conv2d`` with its bias, ``BatchNorm2d``, ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU())


def upsample(x: Tensor) -> Tensor:
    """2× nearest upsampling (the reference's ``nn.Upsample(scale_factor=2)``)."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class LBYLNet(OneStageModel):
    """The one-stage grounding model with landmark features; ``cfg``: :mod:`rsvg.models.lbyl_config`."""

    arch = "lbyl"
    loss_config = LBYL_LOSS  # σ(tx), σ(ty) clamped to [1e-4, 1 − 1e-4] in the loss, as the reference's _sigmoid

    def __init__(self, cfg: LBYLConfig, backbone: nn.Module, text_encoder: TextEncoder) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.text = text_encoder
        self.read_levels(backbone)
        self.anchors = anchor_set(cfg)
        e, d = cfg.emb_size, cfg.out_dim
        joint = e + COORD_CHANNELS
        self.mapping_visu = nn.ModuleList(conv_bn_relu(self.level_channels[s], e) for s in STRIDES)
        self.mapping_lang = nn.Sequential(
            nn.Linear(text_encoder.hidden_size, e),
            BatchNorm1dAnyBatch(e),
            nn.ReLU(),
            nn.Dropout(cfg.text_dropout),
            nn.Linear(e, e),
            BatchNorm1dAnyBatch(e),
            nn.ReLU(),
        )
        self.gamma = nn.ModuleList(nn.Linear(e, joint) for _ in STRIDES)
        self.beta = nn.ModuleList(nn.Linear(e, joint) for _ in STRIDES)
        self.joint_fusion = nn.ModuleList(conv_bn_relu(joint, d) for _ in STRIDES)
        self.refine = conv_bn_relu(d, d)
        self.context_block = LandmarkP4(d, cfg.ctx_dim)
        self.out_funcs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, d, 3, padding=1), nn.ReLU(), nn.Conv2d(d, 3 * 5, 1)) for _ in STRIDES
        )

    # --- input ----------------------------------------------------------------------------------------------
    def backbone_input(self, image: Tensor) -> Tensor:
        """The normalised RGB batch as the backbone reads it: channels flipped to BGR with ``bgr_input``."""
        return image.flip(1) if self.cfg.bgr_input else image

    # --- forward --------------------------------------------------------------------------------------------
    def head_outputs(
        self,
        image: Tensor | None,
        input_ids: Tensor,
        attention_mask: Tensor,
        image_features: Tensor | None = None,
        text_features: tuple[Tensor, Tensor] | None = None,
    ) -> list[Tensor]:
        """The head's raw output per grid, coarsest first: ``[B, 15, G, G]`` (3 anchors × tx, ty, tw, th, conf)."""
        maps = self.visual_maps(image, image_features)  # strides 8, 16, 32
        lang = self.mapping_lang(self.sentence(input_ids, attention_mask, text_features))
        fused = []
        for k, stride in enumerate(STRIDES):
            visual = self.mapping_visu[k](maps[(8, 16, 32).index(stride)])
            b, _, h, w = visual.shape
            x = torch.cat([visual, coord_map(b, h, w, visual.device).to(visual.dtype)], 1)
            x = F.instance_norm(x)
            gamma = torch.tanh(self.gamma[k](lang))[:, :, None, None]
            beta = torch.tanh(self.beta[k](lang))[:, :, None, None]
            fused.append(self.joint_fusion[k](F.relu(gamma * x + beta)))
        coarse, middle, fine = fused
        merged = self.refine((middle + upsample(coarse) + F.max_pool2d(fine, 2)) / 3.0)
        merged = self.context_block(merged)
        fused = [coarse + F.max_pool2d(merged, 2), middle + merged, fine + upsample(merged)]
        return [head(x) for head, x in zip(self.out_funcs, fused, strict=True)]

    def sentence(
        self, input_ids: Tensor, attention_mask: Tensor, text_features: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """``(B, hidden)``: the reference's query vector, the masked token mean of the word features / 4 (with
        ``text: lstm`` the BiLSTM's final hidden states). The batch is cut to its longest query first (padding is at
        the end), which changes no value."""
        n = max(int(attention_mask.sum(1).max()), 1)
        ids, mask = input_ids[:, :n], attention_mask[:, :n]
        words, sentence = self.text(ids, mask) if text_features is None else text_features
        if self.cfg.text == "lstm":
            return sentence
        m = mask.to(words.dtype).unsqueeze(-1)
        return (words[:, :n] / LAYER_MEAN_DIVISOR * m).sum(1) / m.sum(1).clamp(min=1.0)

    def reference_group(self, name: str) -> str:
        """The reference's one group: every parameter, DarkNet and BERT included, at lr (``core/nnet/
        nnet_factory.py`` gives Adam ``self.model.parameters()`` whole)."""
        return "rest"
