"""Initialising MGVLF from a DETR checkpoint the way the reference implementation does.

The reference loads DETR's ``detr-r50-e632da11.pth`` by name twice: into its visual model (ResNet-50 backbone,
the 1x1 ``input_proj`` 2048 → 256 and the 6-layer transformer encoder) and into its fusion model, whose 6-layer
encoder carries DETR's encoder names too (``transformer.encoder.layers.*``). Everything else — the extra conv
levels, the MLCM decoder, the projections, positions, [REG] token and head — starts from Xavier. With D = 256,
FFN 2048 and 6 layers (the paper config) every DETR tensor fits; a part whose shapes do not fit (another D, more
layers) keeps its initialisation and the report says why.

The backbone is loaded by the backbone itself (:mod:`rsvg.models.backbones.resnet`); this module loads the
other three groups and reports all four.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from rsvg.models.backbones.resnet import detr_encoder_state_dict, load_detr_encoder, unwrap_checkpoint
from rsvg.models.backbones.weights import WeightsFormatError, load_into, read_state_dict

#: DETR's input projection (a 1x1 conv 2048 → 256) in its state dict
DETR_INPUT_PROJ = ("input_proj.weight", "input_proj.bias")


@dataclass
class DetrInitReport:
    """What a DETR checkpoint initialised.

    Attributes:
        groups: group name → (tensors loaded, tensors of the group in the model), in load order.
        skipped: group name → why it kept its initialisation.
        loaded: the model's parameter and buffer names set from DETR outside the backbone.
    """

    groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    loaded: set[str] = field(default_factory=set)

    def summary(self) -> str:
        parts = [f"{name} {n}/{total}" for name, (n, total) in self.groups.items()]
        parts += [f"{name} not loaded ({why})" for name, why in self.skipped.items()]
        return "DETR initialisation: " + ", ".join(parts)

    def __str__(self) -> str:
        return self.summary()


def _read(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    return read_state_dict(source, hint="DETR's detr-r50-e632da11.pth is expected")


def init_from_detr(
    model: nn.Module, source: str | Path | Mapping[str, Any], *, fusion: bool | None = True
) -> DetrInitReport | None:
    """Load DETR's ``input_proj``, encoder (into ``model.visual_encoder``) and, with ``fusion``, its encoder again
    into ``model.fusion`` (``None``: the model has no fusion encoder for DETR, as TransVG's reference loads DETR
    into its visual model alone); ``None`` when ``source`` holds no DETR transformer (a torchvision ResNet-50: only the
    backbone takes weights from it). The backbone must already have loaded ``source`` (its count is reported)."""
    state = _read(source)
    try:
        detr_encoder_state_dict(state)
    except WeightsFormatError:
        return None
    flat = unwrap_checkpoint(state)
    report = DetrInitReport()
    backbone_report = getattr(model.backbone, "load_report", None)
    if backbone_report is not None:
        report.groups["backbone"] = (len(backbone_report.loaded), len(model.backbone.state_dict()))

    proj = model.input_proj
    proj_state = proj.state_dict()
    if all(k in flat for k in DETR_INPUT_PROJ):
        values = {"weight": flat["input_proj.weight"], "bias": flat["input_proj.bias"]}
        if all(tuple(values[k].shape) == tuple(proj_state[k].shape) for k in values):
            load_into(proj, values, source="DETR input_proj")
            report.groups["input_proj"] = (2, len(proj_state))
            report.loaded |= {f"input_proj.{k}" for k in values}
        else:
            shapes = f"{tuple(values['weight'].shape)} against the model's {tuple(proj_state['weight'].shape)}"
            report.skipped["input_proj"] = f"shape {shapes}"
    else:
        report.skipped["input_proj"] = "not in the checkpoint"

    targets = [("visual encoder", "visual_encoder")]
    if fusion:
        targets.append(("fusion encoder", "fusion"))
    for group, attr in targets:
        module = getattr(model, attr)
        try:
            loaded = load_detr_encoder(module, flat)
        except WeightsFormatError as exc:
            if attr == "visual_encoder":
                raise  # the paper's own initialisation: a mismatch here is an error, as before
            report.skipped[group] = str(exc)
            continue
        names = {f"{attr}.{n}" for n in module.state_dict() if loaded.is_loaded(n)}
        report.groups[group] = (len(names), len(module.state_dict()))
        report.loaded |= names
    if fusion is False:
        report.skipped["fusion encoder"] = "model.detr_fusion is false"
    return report
