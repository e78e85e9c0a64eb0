"""ZSGNet from its config: ResNet-50 (trained whole) at strides 8, 16 and 32, or VGG16's conv4_3 and conv7, the word
vectors and BiLSTM, the model (its vocabulary is fitted to the training split before,
:func:`rsvg.models.anchor_fit.fit_vocabulary`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from rsvg.errors import ConfigError
from rsvg.models.encoders import build_visual
from rsvg.models.interface import GroundingModel
from rsvg.models.word_vectors import WordVectorLSTM
from rsvg.models.zsgnet import ZSGNet
from rsvg.models.zsgnet_config import ZSGNetConfig

__all__ = ["build_zsgnet"]


def build_zsgnet(
    cfg: ZSGNetConfig,
    *,
    load_pretrained: bool,
    text_folder: Path | None,
    extra_strides: Iterable[int] = (),
    around: Callable[[GroundingModel], GroundingModel] | None = None,
) -> GroundingModel:
    """ZSGNet. As the reference trains its ResNet-50 (or VGG16) whole, the backbone's batch norms and stages all
    train unless ``model.freeze_backbone`` freezes it. With ``load_pretrained`` the word vectors come from
    ``model.word_vectors`` (a file, or ``random``; ``learn`` starts them random and trains them); without it, from
    the checkpoint."""
    if tuple(extra_strides):
        raise ConfigError("model.stages: model.arch zsgnet carries no stages")
    backbone = build_visual(
        cfg, return_levels=cfg.levels, load_pretrained=load_pretrained, frozen_bn=cfg.freeze_backbone, frozen_stages=0
    )
    text = WordVectorLSTM(cfg.vocabulary, cfg.emb_dim, cfg.lstm_dim, trainable=cfg.word_vectors == "learn")
    if load_pretrained:
        if cfg.word_vectors in (None, ""):
            raise ConfigError(
                "model.word_vectors: ZSGNet reads fixed 300-d word vectors: name a GloVe or word2vec text file "
                "(e.g. --set model.word_vectors=weights/glove.840B.300d.txt), or set it to learn to train embeddings "
                "from random instead"
            )
        if cfg.word_vectors == "random":
            text.random_vectors()
        elif cfg.word_vectors != "learn":
            if not Path(cfg.word_vectors).is_file():
                raise ConfigError(
                    f"model.word_vectors: {cfg.word_vectors} is not a file: name a GloVe or word2vec text file "
                    "(e.g. glove.840B.300d.txt), or set learn (embeddings trained from random)"
                )
            text.load_vectors(cfg.word_vectors)
    model = ZSGNet(cfg, backbone, text)
    return around(model) if around is not None else model
