"""What a one-stage family (FAOA, ReSC, LBYL-Net) takes from the training split: its anchors (:func:`fit_anchors`)
and, with the LSTM text model, its vocabulary (:func:`fit_one_stage`, :func:`fit_vocabulary`).

A family's config has ``anchors`` (``coco`` or ``kmeans``), ``anchor_boxes`` (9 ``(w, h)`` pairs, smallest first)
and ``anchor_imsize`` (the image size they are measured at); its registry entry names :func:`fit_one_stage` as its
``fit``, which the trainer calls before the model is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from rsvg.data.records import GroundingSample
from rsvg.data.transforms import letterbox_geometry
from rsvg.errors import ConfigError
from rsvg.models.lstm_text import build_vocabulary
from rsvg.models.yolo import kmeans_anchors

__all__ = ["fit_anchors", "fit_one_stage"]


def fit_anchors(cfg: Any, samples: Sequence[GroundingSample]) -> tuple[Any, str]:
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


def fit_vocabulary(cfg: Any, samples: Sequence[GroundingSample]) -> tuple[Any, str]:
    """The training split's words, most frequent first (kept when the config has a vocabulary already): what a
    text model on words (the LSTM rows', ZSGNet's) reads."""
    if not cfg.vocabulary:
        cfg = replace(cfg, vocabulary=build_vocabulary(s.description for s in samples))
    return cfg, f"vocabulary: {len(cfg.vocabulary)} words of the training split"


def fit_one_stage(cfg: Any, samples: Sequence[GroundingSample]) -> tuple[Any, str]:
    """The anchors (:func:`fit_anchors`) and, with ``text: lstm``, the vocabulary (:func:`fit_vocabulary`)."""
    cfg, said = fit_anchors(cfg, samples)
    if cfg.needs_vocabulary:
        cfg, words = fit_vocabulary(cfg, samples)
        said += f"; {words}"
    return cfg, said
