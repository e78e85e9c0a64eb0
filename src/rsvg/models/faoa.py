"""FAOA: a fast and accurate one-stage approach to visual grounding (Yang et al., ICCV 2019), one of the
natural-image methods the paper benchmarks on DIOR-RSVG (Table II).

As its reference implementation builds it (zyang-ur/onestage_grounding @ 2fff0943c3bc, ``model/
grounding_model.py``; the counts below are the reference's own model built at random weights, at the default 512 width):

1. **Visual.** DarkNet-53 with YOLOv3's neck gives three maps (strides 32, 16, 8: 8×8, 16×16, 32×32 at 256 px);
   each goes through a 1×1 conv-BN-ReLU to ``emb_size`` and is L2-normalised over its channels
   (``mapping_visu``, 920,576 parameters).
2. **Text.** The [CLS] token of the text encoder's last four layers, averaged (the encoder is frozen), or with
   ``text: lstm`` a BiLSTM's output at the last word (:mod:`rsvg.models.lstm_text`), through
   Linear-BN-ReLU-Dropout-Linear-BN-ReLU and L2-normalised (``mapping_lang``, 658,432 from BERT's 768, 789,504
   from the BiLSTM's 1024).
3. **Fusion per map.** The visual map, the text vector tiled over it and 8 coordinate channels
   (:func:`~rsvg.models.onestage_layers.coord_map`) go through 1×1, 3×3, 1×1 conv-BN-ReLU blocks (``fcn_emb``,
   9,458,688) and a 1×1 conv-BN-ReLU then a 1×1 conv to 3 anchors × (tx, ty, tw, th, conf) (``fcn_out``, 406,317).
4. **Answer.** The box of the best-scoring of all 4,032 anchor-cells (:mod:`rsvg.models.yolo`); the loss is the
   cross-entropy over their confidences plus 5 × the MSE of the regression at the target anchor-cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.faoa_config import FAOAConfig
from rsvg.models.onestage_layers import BatchNorm1dAnyBatch, ConvBNReLU, answer_map, coord_map
from rsvg.models.onestage_model import OneStageModel
from rsvg.models.text_encoder import TextEncoder
from rsvg.models.yolo import AnchorSet

__all__ = ["FAOA", "BatchNorm1dAnyBatch", "anchor_set", "answer_map"]

#: the backbone levels FAOA reads, by stride, coarsest first (the order of its mapping, fusion and output blocks)
STRIDES = (32, 16, 8)


def anchor_set(cfg: FAOAConfig) -> AnchorSet:
    """The anchors of ``cfg`` on FAOA's three grids: ``anchor_boxes`` (smallest first, as YOLOv3 lists them)
    reversed, the three largest on the coarsest grid, measured at ``anchor_imsize`` px."""
    boxes = tuple((float(w), float(h)) for w, h in reversed(cfg.anchor_boxes))
    return AnchorSet(boxes, ((0, 1, 2), (3, 4, 5), (6, 7, 8)), STRIDES, float(cfg.anchor_imsize))


class FAOA(OneStageModel):
    """The one-stage grounding model; ``cfg`` chooses the reference's variants (:mod:`rsvg.models.faoa_config`)."""

    arch = "faoa"
    clamp_targets = True  # the reference's training loop clamps the box to the input before build_target

    def __init__(self, cfg: FAOAConfig, backbone: nn.Module, text_encoder: TextEncoder | nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.text = text_encoder
        self.read_levels(backbone)
        self.anchors = anchor_set(cfg)
        e = cfg.emb_size
        fused = 2 * e + (8 if cfg.coordmap else 0)
        self.mapping_visu = nn.ModuleList(ConvBNReLU(self.level_channels[s], e) for s in STRIDES)
        self.mapping_lang = nn.Sequential(
            nn.Linear(text_encoder.hidden_size, e),
            BatchNorm1dAnyBatch(e),
            nn.ReLU(),
            nn.Dropout(cfg.text_dropout),
            nn.Linear(e, e),
            BatchNorm1dAnyBatch(e),
            nn.ReLU(),
        )
        self.fcn_emb = nn.ModuleList(
            nn.Sequential(ConvBNReLU(fused, e), ConvBNReLU(e, e, 3), ConvBNReLU(e, e)) for _ in STRIDES
        )
        self.fcn_out = nn.ModuleList(nn.Sequential(ConvBNReLU(e, e // 2), nn.Conv2d(e // 2, 3 * 5, 1)) for _ in STRIDES)

    # ------------------------------------------------------------------------------------------------------------
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
        words, sentence = self.text(input_ids, attention_mask) if text_features is None else text_features
        # BERT: the [CLS] token of the last four layers, averaged (the encoder's word features), never trained;
        # LSTM: its output at the query's last word (its sentence feature), trained with the rest
        text = sentence if self.cfg.text == "lstm" else words[:, 0].detach()
        lang = F.normalize(self.mapping_lang(text), p=2, dim=1)
        outputs = []
        for k, stride in enumerate(STRIDES):
            visual = F.normalize(self.mapping_visu[k](maps[(8, 16, 32).index(stride)]), p=2, dim=1)
            b, _, h, w = visual.shape
            parts = [visual, lang[:, :, None, None].expand(-1, -1, h, w)]
            if self.cfg.coordmap:
                parts.append(coord_map(b, h, w, visual.device).to(visual.dtype))
            outputs.append(self.fcn_out[k](self.fcn_emb[k](torch.cat(parts, 1))))
        return outputs
