"""FAOA from its config: the backbone at strides 8, 16 and 32, the text encoder and the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from rsvg.data.records import GroundingSample
from rsvg.data.transforms import letterbox_geometry
from rsvg.errors import ConfigError
from rsvg.models.encoders import build_encoders
from rsvg.models.faoa import FAOA
from rsvg.models.faoa_config import FAOAConfig
from rsvg.models.interface import GroundingModel
from rsvg.models.yolo import kmeans_anchors

__all__ = ["build_faoa", "fit_anchors"]


def build_faoa(
    cfg: FAOAConfig,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """FAOA with its backbone (three levels; the whole backbone and its batch norms train unless it is frozen, as
    the reference trains DarkNet) and text encoder. It carries no stages."""
    if tuple(extra_strides):
        raise ConfigError("model.stages: FAOA carries no stages")
    backbone, text = build_encoders(
        cfg,
        return_levels=(8, 16, 32),
        sentence=cfg.sentence_feature,
        load_pretrained=load_pretrained,
        text_folder=text_folder,
        frozen_bn=cfg.freeze_backbone,
        frozen_stages=0,
    )
    model = FAOA(cfg, backbone, text)
    return around(model) if around is not None else model


def fit_anchors(cfg: FAOAConfig, samples: Sequence[GroundingSample]) -> tuple[FAOAConfig, str]:
    """The config with the anchors ``model.anchors`` asks for, and a line saying which they are: the COCO set as
    given, or (``kmeans``) 9 anchors from the training boxes' sizes at the network input (YOLOv2's k-means with the
    1 − IoU distance, seed 0: the same anchors for the same split), measured at ``image_size`` px and stored in
    ``anchor_boxes`` so that the checkpoint carries them."""
    if cfg.anchors == "kmeans":
        if len(samples) < 9:
            raise ConfigError(
                f"model.anchors: kmeans finds 9 anchors among the training split's boxes, and it has {len(samples)}"
            )
        wh = []
        for s in samples:
            box = letterbox_geometry(s.width, s.height, cfg.image_size).box_to_network(
                torch.tensor(s.box, dtype=torch.float64)
            )
            wh.append((float(box[2] - box[0]), float(box[3] - box[1])))
        anchors = kmeans_anchors(torch.tensor(wh, dtype=torch.float64).clamp(min=1.0), 9, seed=0)
        boxes = [[round(float(w), 2), round(float(h), 2)] for w, h in anchors]
        cfg = replace(cfg, anchor_boxes=boxes, anchor_imsize=float(cfg.image_size))
        where = f"k-means on the {len(samples)} training boxes, at {cfg.image_size} px"
    else:
        where = f"YOLOv3's COCO set, measured at {cfg.anchor_imsize:g} px"
    listed = ", ".join(f"{w:g}x{h:g}" for w, h in cfg.anchor_boxes)
    return cfg, f"anchors ({where}): {listed}"
