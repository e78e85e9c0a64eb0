"""ZSGNet: zero-shot grounding with a single-stage detector's anchors (Sadhu et al., ICCV 2019), one of the paper's
Table II methods, as its reference implementation builds it (TheShadow29/zsgnet-pytorch @ b9881d4372a6, its
default ResNet-50 + FPN model).

Read top to bottom, the forward pass is:

1. **Visual**: ResNet-50 (trained whole, batch norms included) gives its stride-8, 16 and 32 maps; the FPN makes six
   256-channel maps from them (P3–P5 top-down, P6 a stride-2 conv on C5, P7 one on ReLU(P6), and P8 the average of
   P7: 38, 19, 10, 5, 3 and 1 cells at 300 px). The VGG16 model (``backbone: vgg16``) has SSD's instead: conv4_3
   scaled to unit length at every cell (no learned scale), conv7, and four maps from SSD's extra layers (pairs of a
   1×1 and a 3×3 convolution, each with a ReLU), the first three projected to 256 channels by 1×1 convolutions
   (the same six sizes at 300 px).
2. **Language**: the query's fixed word vectors through a BiLSTM (:mod:`rsvg.models.word_vectors`); the sentence is
   both directions' outputs at the last word (256-d), not normalised.
3. **Head**, shared by the six maps: every cell reads ``[visual ‖ sentence ‖ the cell's centre (y, x) in [−1, 1]]``
   (514 channels) through five 3×3 convolutions with ReLUs and one more giving, for each of its 9 anchors, a
   regression ``(Δy/h, Δx/w, log h, log w)`` and an attention logit (its bias starts at −4).
4. **Answer**: the anchor with the highest attention, its regression applied (17,460 anchors at 300 px).

The loss (the reference's ``ZSGLoss``): an anchor is positive when its IoU with the target is over 0.6, and the
anchor of highest IoU always is; a focal-weighted binary cross-entropy over every anchor's attention (α 0.25, γ 2,
the weights not back-propagated) summed and divided by the positives, plus SmoothL1 on the positives' regressions
(summed over the four, averaged over an image's positives, then over the batch). Boxes are ``(y, x)`` in ``[−1, 1]``
inside the model, as the reference keeps them.

Not built: ResNet's fc and SSD's box and class heads (the reference builds them and never uses them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsvg.models.interface import GroundingModel
from rsvg.models.loss import LossConfig
from rsvg.models.onestage_layers import fold_levels, folded_channels, unfold_levels
from rsvg.models.outputs import GroundingOutput
from rsvg.models.zsgnet_config import ZSGNetConfig

__all__ = ["FPN", "SSDExtras", "ZSGNet", "box_iou_yx", "cell_centres", "decode", "encode", "zsg_anchors"]


class FPN(nn.Module):
    """The reference's feature pyramid on C3, C4, C5: six maps of ``dim`` channels, finest first."""

    def __init__(self, channels: Sequence[int], dim: int) -> None:
        super().__init__()
        c3, c4, c5 = channels
        self.P5_1, self.P5_2 = nn.Conv2d(c5, dim, 1), nn.Conv2d(dim, dim, 3, padding=1)
        self.P4_1, self.P4_2 = nn.Conv2d(c4, dim, 1), nn.Conv2d(dim, dim, 3, padding=1)
        self.P3_1, self.P3_2 = nn.Conv2d(c3, dim, 1), nn.Conv2d(dim, dim, 3, padding=1)
        self.P6 = nn.Conv2d(c5, dim, 3, stride=2, padding=1)
        self.P7_2 = nn.Conv2d(dim, dim, 3, stride=2, padding=1)

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        c3, c4, c5 = maps
        p5 = self.P5_1(c5)
        p4 = self.P4_1(c4) + F.interpolate(p5, size=c4.shape[-2:])
        p3 = self.P3_1(c3) + F.interpolate(p4, size=c3.shape[-2:])
        p6 = self.P6(c5)
        p7 = self.P7_2(F.relu(p6))
        return [self.P3_2(p3), self.P4_2(p4), self.P5_2(p5), p6, p7, F.adaptive_avg_pool2d(p7, 1)]


class SSDExtras(nn.Module):
    """SSD's six maps from VGG16's conv4_3 and conv7, as ZSGNet's reference builds them, ``dim`` channels each.

    conv4_3 is divided by its length over the channels at every cell (the reference drops SSD's learned scale)
    and projected by ``fproj1``; conv7 by ``fproj2``; four pairs of a 1×1 and a 3×3 convolution (stride 2, padding
    1 for the first two, no padding for the last two; a ReLU after each) make the other maps, the first projected by
    ``fproj3``. At ``dim`` 256 the pairs' widths are SSD300's: 256 → 512, then 128 → 256 three times.
    """

    def __init__(self, channels: Sequence[int], dim: int) -> None:
        super().__init__()
        c4, c7 = channels
        self.fproj1, self.fproj2, self.fproj3 = nn.Conv2d(c4, dim, 1), nn.Conv2d(c7, dim, 1), nn.Conv2d(2 * dim, dim, 1)
        hidden, width = [dim, dim // 2, dim // 2, dim // 2], [2 * dim, dim, dim, dim]
        layers: list[nn.Module] = []
        for k, (h, w) in enumerate(zip(hidden, width, strict=True)):
            stride, padding = (2, 1) if k < 2 else (1, 0)
            layers += [nn.Conv2d(c7 if k == 0 else width[k - 1], h, 1), nn.Conv2d(h, w, 3, stride, padding)]
        self.extras = nn.ModuleList(layers)

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        conv4_3, x = maps
        # a cell whose channels are all zero after the ReLU stays zero (the reference's division gives NaN there)
        sources = [conv4_3 / conv4_3.norm(dim=1, keepdim=True).clamp(min=1e-12), x]
        for k, layer in enumerate(self.extras):
            x = F.relu(layer(x))
            if k % 2:
                sources.append(x)
        return [self.fproj1(sources[0]), self.fproj2(sources[1]), self.fproj3(sources[2]), *sources[3:]]


def cell_centres(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """``(2, H, W)``: each cell's centre ``(y, x)`` in ``[−1, 1]`` (0 on an axis of one cell)."""
    ys = torch.linspace(-1 + 1 / height, 1 - 1 / height, height, device=device) if height > 1 else torch.zeros(1)
    xs = torch.linspace(-1 + 1 / width, 1 - 1 / width, width, device=device) if width > 1 else torch.zeros(1)
    return torch.stack(torch.meshgrid(ys.to(device), xs.to(device), indexing="ij"))


def zsg_anchors(sizes: Sequence[tuple[int, int]], cfg: ZSGNetConfig, device: torch.device | None = None) -> Tensor:
    """``(N, 4)`` anchors ``(y1, x1, y2, x2)`` in ``[−1, 1]`` for maps of ``sizes``: per map, cell by cell (rows
    first), the ratios' and scales' shapes (ratio-major), ``anchor_cells · scale`` cells high × ``√ratio`` and wide ×
    ``1/√ratio``."""
    shapes = torch.tensor(
        [[s * cfg.anchor_cells * math.sqrt(r), s * cfg.anchor_cells * math.sqrt(1 / r)]
         for r in cfg.anchor_ratios for s in cfg.anchor_scales],
        device=device,
    )  # fmt: skip
    out = []
    for h, w in sizes:
        centres = cell_centres(h, w, device).flatten(1).t()  # (h*w, 2)
        hw = shapes * torch.tensor([2 / h, 2 / w], device=device)
        n, a = len(centres), len(shapes)
        c = centres[:, None].expand(n, a, 2)
        half = hw[None].expand(n, a, 2) / 2
        out.append(torch.cat([c - half, c + half], -1).reshape(-1, 4))
    return torch.cat(out)


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor]:
    return (boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]


def encode(anchors: Tensor, boxes: Tensor) -> Tensor:
    """``(B, N, 4)``: the regression that takes each anchor to each image's box (both ``(y1, x1, y2, x2)``)."""
    ac, asz = _centre_size(anchors)
    bc, bsz = _centre_size(boxes[:, None])
    return torch.cat([(bc - ac) / (asz + 1e-8), torch.log(bsz / (asz + 1e-8))], -1)


def decode(anchors: Tensor, regression: Tensor) -> Tensor:
    """The boxes ``(y1, x1, y2, x2)`` the regressions ``(..., N, 4)`` give from the anchors ``(N, 4)``."""
    ac, asz = _centre_size(anchors)
    centre = asz * regression[..., :2] + ac
    size = torch.exp(regression[..., 2:]) * asz
    return torch.cat([centre - size / 2, centre + size / 2], -1)


def box_iou_yx(boxes: Tensor, anchors: Tensor) -> Tensor:
    """``(B, N)``: IoU of each image's box ``(B, 4)`` with every anchor ``(N, 4)``, as the reference computes it."""
    top_left = torch.max(boxes[:, None, :2], anchors[None, :, :2])
    bottom_right = torch.min(boxes[:, None, 2:], anchors[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(boxes)[:, None] + area(anchors)[None] - inter + 1e-8)


class ZSGNet(GroundingModel):
    """ZSGNet; ``cfg`` (:class:`~rsvg.models.zsgnet_config.ZSGNetConfig`) sets its widths, anchors and loss."""

    arch = "zsgnet"

    def __init__(self, cfg: ZSGNetConfig, backbone: nn.Module, text: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.text = text
        self.levels = cfg.levels
        self.level_channels = list(backbone.out_channels)
        self.feature_channels = folded_channels(self.level_channels, self.levels)
        self.neck = (SSDExtras if cfg.ssd_trunk else FPN)(self.level_channels, cfg.fpn_dim)
        d, a = cfg.fpn_dim, cfg.anchors_per_cell
        layers: list[nn.Module] = []
        for k in range(cfg.head_convs):
            layers += [nn.Conv2d(d + text.hidden_size + 2 if k == 0 else d, d, 3, padding=1), nn.ReLU()]
        out = nn.Conv2d(d, 5 * a, 3, padding=1)
        with torch.no_grad():
            out.bias.zero_()
            out.bias[4::5] = cfg.final_bias  # each anchor's attention logit
        self.att_reg_box = nn.Sequential(*layers, out)
        self._anchors: dict[tuple[tuple[int, int], ...], Tensor] = {}

    def anchors(self, sizes: Sequence[tuple[int, int]], device: torch.device) -> Tensor:
        """The anchors of maps of ``sizes`` (computed once per set of sizes and device)."""
        key = tuple(sizes)
        if key not in self._anchors or self._anchors[key].device != device:
            self._anchors[key] = zsg_anchors(sizes, self.cfg, device)
        return self._anchors[key]

    # ------------------------------------------------------------------------------------------------------------
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
        # 1. visual: the backbone's maps (from the image, or unfolded from a cache) and the six of the pyramid
        if image_features is not None:
            maps = unfold_levels(self.visual_features(None, image_features), self.level_channels, self.levels)
        elif image is not None:
            maps = self.backbone(image)
        else:
            raise ValueError("give the image or its features (image_features)")
        pyramid = self.neck(maps)
        # 2. language
        _, sentence = self.text(input_ids, attention_mask) if text_features is None else text_features
        # 3. the shared head on [visual ‖ sentence ‖ cell centre] of every map
        outputs = []
        for f in pyramid:
            b, _, h, w = f.shape
            lang = sentence[:, :, None, None].to(f.dtype).expand(-1, -1, h, w)
            grid = cell_centres(h, w, f.device).to(f.dtype)[None].expand(b, -1, -1, -1)
            outputs.append(self.att_reg_box(torch.cat([f, lang, grid], 1)).permute(0, 2, 3, 1).reshape(b, -1, 5))
        head = torch.cat(outputs, 1).float()
        regression, attention = head[..., :4], head[..., 4]
        # 4. the answer: the best anchor's box, (y, x) in [-1, 1] to rsvg's (x, y) in [0, 1]
        anchors = self.anchors([tuple(f.shape[-2:]) for f in pyramid], head.device)
        best = attention.argmax(1)
        chosen = decode(anchors[best], regression[torch.arange(len(best), device=best.device), best])
        boxes = (chosen[:, [1, 0, 3, 2]] + 1) / 2
        result = GroundingOutput(boxes, cell_scores=attention, extra={"regression": regression, "anchors": anchors})
        if need_attention:  # where it looks: the finest map's best anchor attention per cell
            h, w = pyramid[0].shape[-2:]
            first = attention[:, : h * w * self.cfg.anchors_per_cell].reshape(-1, h, w, self.cfg.anchors_per_cell)
            result.attention = first.sigmoid().amax(-1)
        return result

    def encode_image(self, image: Tensor, backbone: nn.Module | None = None) -> Tensor:
        """The backbone's maps as one stride-32 map (for the feature cache of a frozen backbone: the input size must
        then be a multiple of 32)."""
        if self.image_size % 32:
            raise ValueError(f"a feature cache needs model.image_size a multiple of 32, got {self.image_size}")
        return fold_levels((backbone or self.backbone)(image), self.levels)

    # --- loss ------------------------------------------------------------------------------------------------
    def loss_terms(self, cfg: LossConfig) -> tuple[str, ...]:
        return ("loss", "cls", "box")

    def loss(self, out: GroundingOutput, batch: Mapping[str, Any], cfg: LossConfig) -> dict[str, Tensor]:
        """The reference's ``ZSGLoss`` (see the module docstring); ``box`` reported unweighted."""
        assert out.cell_scores is not None
        c = self.cfg
        attention, regression, anchors = out.cell_scores.float(), out.extra["regression"], out.extra["anchors"]
        target = batch["box"].float() / self.image_size * 2 - 1  # (x1, y1, x2, y2) in [-1, 1]
        target = target[:, [1, 0, 3, 2]]  # (y1, x1, y2, x2), as the anchors
        iou = box_iou_yx(target, anchors)
        positive = (iou > c.match_threshold) | F.one_hot(iou.argmax(1), len(anchors)).bool()
        mask = positive.float()
        box = F.smooth_l1_loss(regression, encode(anchors, target), reduction="none").sum(-1)
        box = ((box * mask).sum(1) / mask.sum(1)).mean()
        p = attention.sigmoid()
        alphas = (1 - mask) * c.focal_alpha + mask * (1 - c.focal_alpha)
        weights = ((mask * (1 - p) + (1 - mask) * p) ** c.focal_gamma * alphas).detach()
        cls = F.binary_cross_entropy_with_logits(attention, mask, weight=weights, reduction="sum") / mask.sum()
        return {"loss": c.box_weight * box + cls, "cls": cls.detach(), "box": box.detach()}

    # --- optimiser groups -------------------------------------------------------------------------------------
    def pretrained_parameter_names(self) -> set[str]:
        pretrained, _ = self.backbone.pretrained_and_new_parameters()
        own = dict(self.named_parameters())
        return {f"backbone.{n}" for n, _ in pretrained if f"backbone.{n}" in own}

    def reference_group(self, name: str) -> str:
        """The reference trains every parameter at one rate: one group."""
        return "rest"

    def init_report(self) -> str | None:
        return getattr(self.text, "loaded", None)
