"""The rows of the paper's Table II benchmark: every method line of the table, MGVLF and its baseline (a), each with
the config a GPU user trains (``paper``) and the one a CPU runs (``lite``), and the figures the paper reports for it
on DIOR-RSVG's test split.

The figures are the paper's (Zhan et al., "RSVG: Exploring Data and Models for Visual Grounding on Remote Sensing
Data", IEEE TGRS 2023): Table II for the methods and MGVLF ("Ours"), Table III for baseline (a), which reports its
Pr@0.5 alone. They are shown beside a row only when the data is DIOR-RSVG's official split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsvg.metrics import METRIC_NAMES

__all__ = ["ROWS", "WEIGHT_FILES", "Row", "missing_weights", "rows_named", "weight_overrides"]


def _figures(*values: float) -> dict[str, float]:
    return dict(zip(METRIC_NAMES, values, strict=True))


@dataclass(frozen=True)
class Row:
    """One line of the benchmark.

    Attributes:
        name: the row's name on the command line (``--methods``) and its folder.
        method, venue, visual, language: as Table II prints them.
        paper_config: the config file of the paper variant.
        lite_config: the config of the lite variant (frozen CPU encoders), ``None`` where the method has none.
        lite_overrides: options set on top of ``lite_config`` (e.g. the LSTM instead of the frozen text encoder).
        lite_visual, lite_language: the encoders of the lite variant (frozen EfficientNet-Lite0 and MiniLM unless
            the row trains its own text encoder).
        lite_note: why a row has no lite variant, or how its lite variant differs beyond the encoders.
        paper: the paper's figures on DIOR-RSVG's test split (the seven metrics; Table III gives baseline (a) its
            Pr@0.5 alone).
        weights: the pretrained files the paper variant reads: (option, file name in ``--weights DIR``).
    """

    name: str
    method: str
    venue: str
    visual: str
    language: str
    paper_config: str
    lite_config: str | None
    lite_overrides: tuple[str, ...] = ()
    lite_note: str = ""
    paper: dict[str, float] = field(default_factory=dict)
    lite_visual: str = "EfficientNet-Lite0"
    lite_language: str = "MiniLM"
    weights: tuple[tuple[str, str], ...] = ()

    def encoders(self, variant: str) -> tuple[str, str]:
        """The visual and language encoders ``variant`` trains with, as the table prints them (a row without a lite
        variant keeps the paper's: it names the method that was not run)."""
        lite = variant == "lite" and self.lite_config is not None
        return (self.lite_visual, self.lite_language) if lite else (self.visual, self.language)

    def config(self, variant: str) -> tuple[str, tuple[str, ...]] | None:
        """The config file and overrides of ``variant`` (``paper`` or ``lite``); ``None``: no such variant."""
        if variant == "paper":
            return self.paper_config, ()
        if variant == "lite":
            return (self.lite_config, self.lite_overrides) if self.lite_config is not None else None
        raise ValueError(f"unknown variant {variant!r}: paper or lite")


_LSTM = ("model.text=lstm", "model.freeze_text_encoder=false")

#: the pretrained files of the paper variant, under the names their publishers give them (``--weights DIR`` holds
#: them), with what each is
WEIGHT_FILES: dict[str, str] = {
    "yolov3.weights": "Darknet's YOLOv3 weights (pjreddie's binary format)",
    "detr-r50-e632da11.pth": "DETR's detr-r50 checkpoint",
    "detr-r101-2c7b67e5.pth": "DETR's detr-r101 checkpoint",
    "resnet50-0676ba61.pth": "torchvision's ResNet-50 ImageNet weights",
    "vgg16_reducedfc.pth": "SSD's VGG16 with fc6/fc7 as convolutions",
    "bert-base-uncased": "a folder with BERT-base-uncased (config.json, vocab.txt and the weights)",
    "glove.840B.300d.txt": "GloVe's 840B 300-d word vectors (text)",
}
_BERT = ("model.text_encoder", "bert-base-uncased")
_DARKNET = ("model.backbone_weights", "yolov3.weights")
_DETR = ("model.backbone_weights", "detr-r50-e632da11.pth")
_GLOVE = ("model.word_vectors", "glove.840B.300d.txt")

#: Table II's lines in its order, then MGVLF ("Ours") and its baseline (a)
ROWS: tuple[Row, ...] = (
    Row("zsgnet_vgg16", "ZSGNet", "ICCV'19", "VGG16", "BiLSTM", "configs/zsgnet_vgg16.yaml", None,
        lite_note="no lite variant: VGG16 has no weights that ship offline; zsgnet_r50's lite row stands for ZSGNet",
        paper=_figures(48.12, 43.79, 36.82, 25.04, 6.62, 40.23, 46.11),
        weights=(("model.backbone_weights", "vgg16_reducedfc.pth"), _GLOVE)),
    Row("zsgnet_r50", "ZSGNet", "ICCV'19", "ResNet-50", "BiLSTM", "configs/zsgnet_r50.yaml", "configs/zsgnet_lite.yaml",
        paper=_figures(51.67, 48.13, 42.30, 32.41, 10.15, 44.12, 51.65), lite_language="BiLSTM",
        weights=(("model.backbone_weights", "resnet50-0676ba61.pth"), _GLOVE)),
    Row("faoa_nocoord", "FAOA-no Spatial", "ICCV'19", "DarkNet-53", "BERT", "configs/faoa_bert_nocoord.yaml",
        "configs/faoa_lite.yaml", ("model.coordmap=false",),
        paper=_figures(63.63, 61.20, 56.92, 50.15, 38.83, 57.53, 62.66), weights=(_DARKNET, _BERT)),
    Row("faoa_bert", "FAOA", "ICCV'19", "DarkNet-53", "BERT", "configs/faoa_bert.yaml", "configs/faoa_lite.yaml",
        paper=_figures(67.21, 64.18, 59.23, 50.87, 34.44, 59.76, 63.14), weights=(_DARKNET, _BERT)),
    Row("faoa_lstm", "FAOA", "ICCV'19", "DarkNet-53", "LSTM", "configs/faoa_lstm.yaml", "configs/faoa_lite.yaml",
        (*_LSTM, "model.lstm_dropout=0.2"), paper=_figures(70.86, 67.37, 62.04, 53.19, 36.44, 62.86, 67.28),
        lite_language="LSTM", weights=(_DARKNET,)),
    Row("resc_bert", "ReSC", "ECCV'20", "DarkNet-53", "BERT", "configs/resc_bert.yaml", "configs/resc_lite.yaml",
        paper=_figures(72.71, 68.92, 63.01, 53.70, 33.37, 64.24, 68.10), weights=(_DARKNET, _BERT)),
    Row("lbyl_lstm", "LBYL-Net", "CVPR'21", "DarkNet-53", "LSTM", "configs/lbyl_lstm.yaml", "configs/lbyl_lite.yaml",
        _LSTM, paper=_figures(73.29, 69.92, 63.97, 48.07, 16.60, 65.86, 75.45), lite_language="LSTM",
        weights=(_DARKNET,)),
    Row("lbyl_bert", "LBYL-Net", "CVPR'21", "DarkNet-53", "BERT", "configs/lbyl_bert.yaml", "configs/lbyl_lite.yaml",
        paper=_figures(73.78, 69.22, 65.56, 47.89, 15.69, 65.92, 76.37), weights=(_DARKNET, _BERT)),
    Row("transvg", "TransVG", "ICCV'21", "ResNet-50", "BERT", "configs/transvg_r50.yaml", "configs/transvg_lite.yaml",
        paper=_figures(72.41, 67.38, 60.05, 49.10, 27.84, 63.56, 76.27), weights=(_DETR, _BERT)),
    Row("vltvg_r50", "VLTVG", "CVPR'22", "ResNet-50", "BERT", "configs/vltvg_r50.yaml", "configs/vltvg_lite.yaml",
        paper=_figures(69.41, 65.16, 58.44, 46.56, 24.37, 59.96, 71.97), weights=(_DETR, _BERT)),
    Row("vltvg_r101", "VLTVG", "CVPR'22", "ResNet-101", "BERT", "configs/vltvg_r101.yaml", None,
        lite_note="no lite variant: the lite encoders replace the ResNet this row differs by; vltvg_r50's lite row "
        "stands for VLTVG", paper=_figures(75.79, 72.22, 66.33, 55.17, 33.11, 66.32, 77.85),
        weights=(("model.backbone_weights", "detr-r101-2c7b67e5.pth"), _BERT)),
    Row("mgvlf", "MGVLF (Ours)", "TGRS'23", "ResNet-50", "BERT", "configs/mgvlf_dior.yaml",
        "configs/mgvlf_lite_reg.yaml", paper=_figures(76.78, 72.68, 66.74, 56.42, 35.07, 68.04, 78.41),
        weights=(_DETR, _BERT)),
    Row("baseline_a", "baseline (a)", "TGRS'23", "ResNet-50", "BERT", "configs/ablation_a_transvg.yaml",
        "configs/mgvlf_lite_reg_baseline.yaml", paper={"Pr@0.5": 72.41}, weights=(_DETR, _BERT)),
)  # fmt: skip


def rows_named(methods: str) -> list[Row]:
    """The rows ``--methods`` names: ``all``, or names separated by commas (in Table II's order whatever the order
    given); an unknown name is refused with the list of known ones."""
    if methods.strip() == "all":
        return list(ROWS)
    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    known = [row.name for row in ROWS]
    unknown = [m for m in wanted if m not in known]
    if unknown or not wanted:
        raise ValueError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; known: all, {', '.join(known)}")
    return [row for row in ROWS if row.name in wanted]


def weight_overrides(row: Row, folder: Path) -> list[str]:
    """The options that point the paper variant of ``row`` at its pretrained files in ``folder``."""
    return [f"{option}={folder / name}" for option, name in row.weights]


def missing_weights(rows: list[Row], folder: Path) -> str | None:
    """What ``folder`` lacks of the pretrained files ``rows`` read, as one message naming each missing file, what it
    is and the rows that read it; ``None`` when nothing is missing."""
    readers: dict[str, list[str]] = {}
    for row in rows:
        for _, name in row.weights:
            if not (folder / name).exists():
                readers.setdefault(name, []).append(row.name)
    if not readers:
        return None
    lines = [f"  {name}: {WEIGHT_FILES[name]}; read by {', '.join(names)}" for name, names in readers.items()]
    return (f"--weights {folder} lacks {len(readers)} pretrained files (put them there under these names, or leave "
            "out the rows that read them with --methods):\n" + "\n".join(lines))  # fmt: skip
