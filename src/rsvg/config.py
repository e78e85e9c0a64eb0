"""Run configuration: a YAML file with ``model``, ``data``, ``train`` and ``loss`` sections.

Every option has a default here, so a config file only names what it changes; unknown keys are errors that
name the section and the key. ``rsvg train --set train.epochs=3`` overrides single values.

Every number must be finite: NaN or infinity in any option of any section (also inside a list or mapping option,
and in the run config a checkpoint carries) is a :class:`~rsvg.errors.ConfigError` that names ``section.key``.
Such a value is never a meaningful setting, and a NaN learning rate, say, would otherwise train until a kernel
meets NaN boxes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from rsvg.errors import ConfigError
from rsvg.models.config import ModelConfig
from rsvg.models.loss import LossConfig
from rsvg.models.mgvlf_config import MGVLFConfig
from rsvg.models.registry import DEFAULT_ARCH, config_class, with_stages
from rsvg.models.stages import STAGES, options_fields, upgrade_legacy_config

#: the learning-rate schedules and optimisers rsvg.engine.optim builds
SCHEDULES = ("step", "cosine", "constant", "poly")
OPTIMIZERS = ("adamw", "adam", "rmsprop")

#: the split files a DIOR-RSVG folder has (rsvg.data.dior_rsvg.SPLITS)
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class DataConfig:
    """Where the data is and how it is fed."""

    root: str | None = None  # DIOR-RSVG-layout folder; `--data` overrides
    train_split: str = "train"
    val_split: str = "val"
    workers: int = 2
    augment: dict[str, Any] | None = None  # see rsvg.data.transforms.build_train_transforms; None = off

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError(f"data.workers must be at least 0 (0: load in the training process), got {self.workers}")
        for name in ("train_split", "val_split"):
            if getattr(self, name) not in SPLIT_NAMES:
                raise ConfigError(f"data.{name} must be one of {', '.join(SPLIT_NAMES)}, got {getattr(self, name)!r}")
        if self.augment is not None and not isinstance(self.augment, dict):
            raise ConfigError(f"data.augment must be a mapping of augmentations or null, got {self.augment!r}")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping."""

    epochs: int = 150
    batch_size: int = 8
    eval_batch_size: int = 16
    lr: float = 1e-4  # new parameters
    lr_pretrained: float = 1e-5  # parameters loaded from pretrained weights
    # loaded: lr_pretrained for what was loaded, lr for the rest; reference: the reference code's groups (its
    # visual model and the text encoder at lr_pretrained, fusion and head at lr; rsvg.engine.optim)
    lr_groups: str = "loaded"
    weight_decay: float = 1e-4
    # adamw (the paper's) | adam | rmsprop (the one-stage references': FAOA, ReSC); weight_decay applies to each
    optimizer: str = "adamw"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw and adam (ZSGNet's reference: 0.9, 0.99)
    warmup_steps: int = 0
    schedule: str = "step"  # step | cosine | constant | poly
    step_epochs: list[int] = field(default_factory=lambda: [60])  # step: lr × gamma at each of these epochs
    gamma: float = 0.1
    poly_power: float = 0.9  # poly: lr × (1 - epoch / epochs) ^ poly_power, per whole epoch (FAOA's schedule)
    grad_clip: float = 0.1  # max gradient norm; 0 = off
    # the groups at lr_pretrained (lr_groups reference: the visual model and the text encoder; loaded: what was
    # loaded) get no gradient and no update in the first N epochs (VLTVG's reference: 10)
    freeze_epochs: int = 0
    amp: str = "auto"  # auto | off | bf16 | fp16  (auto: bf16 where the GPU or CPU has it, rsvg.engine.amp)
    seed: int = 0
    checkpoint_every_steps: int = 0  # also save OUT/last every N steps within an epoch (0 = off)
    save_every_epochs: int = 1  # save OUT/last every N epochs (always after the last one)
    eval_every: int = 1  # epochs
    log_every: int = 10  # steps
    cache_backbone_features: bool = True  # frozen backbone and no augmentation: compute each image's map once
    feature_cache_max_gb: float = 8.0  # above this estimate the cache is skipped
    # a folder where the cached maps are also kept, for later runs with the same frozen backbone and images
    # (rsvg.engine.feature_store); empty: kept in memory for this run only. Where, not what: not part of a run's
    # identity (a run resumes with another folder)
    feature_cache_dir: str = ""
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = True  # exact repeats and resumes (rsvg.engine.determinism)

    def __post_init__(self) -> None:
        at_least = {
            "epochs": 1,
            "batch_size": 1,
            "eval_batch_size": 1,
            "save_every_epochs": 1,
            "eval_every": 1,
            "log_every": 1,
            "checkpoint_every_steps": 0,
            "warmup_steps": 0,
            "freeze_epochs": 0,
        }
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ConfigError(f"train.{name} must be at least {low}, got {getattr(self, name)}")
        for name in ("lr", "lr_pretrained", "weight_decay", "grad_clip", "gamma", "poly_power", "feature_cache_max_gb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must not be negative, got {getattr(self, name)}")
        if self.lr_groups not in ("loaded", "reference"):
            raise ConfigError(f"train.lr_groups must be loaded or reference, got {self.lr_groups!r}")
        if not isinstance(self.step_epochs, list) or not all(
            isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in self.step_epochs
        ):
            raise ConfigError(f"train.step_epochs must be a list of epochs (1 or more), got {self.step_epochs!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ConfigError(f"train.betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=MGVLFConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "loss": LossConfig}

#: options older versions had, with the value that meant "off": a saved run config holding that value still loads
#: (a checkpoint's config.json), any other value is an error that says the option is gone
RETIRED = {("loss", "attention_weight"): 0.0}


#: the model section's keys of older configs (the stages' flat options), still read (rsvg.models.stages)
LEGACY_MODEL_KEYS = frozenset(
    key for name, stage in STAGES.items() for key in (name, *stage.legacy_options)
)
LEGACY_LOSS_KEYS = frozenset(stage.legacy_weight for stage in STAGES.values() if stage.legacy_weight)


def _model_class(values: dict[str, Any], source: str) -> type:
    try:
        return config_class(values.get("arch", DEFAULT_ARCH))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _build_model(values: Any, loss: Any, source: str) -> ModelConfig:
    """The model section: its family's config (``model.arch``), older flat stage options moved into
    ``model.stages`` (and their ``loss.*_weight`` out of ``loss``), the stages' options read and checked."""
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section 'model' must be a mapping")
    try:
        values = upgrade_legacy_config(values, loss if isinstance(loss, dict) else None)
        cfg = _build("model", _model_class(values, source), values, source)
        return with_stages(cfg)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(source) else f"{source}: {message}") from None


def _build(section: str, cls: type, values: dict[str, Any] | None, source: str) -> Any:
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section {section!r} must be a mapping")
    known = {f.name for f in fields(cls)}
    for (sec, key), off in RETIRED.items():
        if sec == section and key in values:
            if values[key] != off:
                raise ConfigError(f"{source}: {section}.{key} no longer exists (remove it; {off} meant off)")
            values = {k: v for k, v in values.items() if k != key}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown {section} option(s) {unknown}; known: {sorted(known)}")
    if section == "train" and "amp" in values:
        values = {**values, "amp": _amp_word(values["amp"])}
    hints = get_type_hints(cls)
    values = {k: _coerce(v, hints[k], f"{source}: {section}.{k}") for k, v in values.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _amp_word(value: Any) -> Any:
    """``train.amp``'s ``off`` as written: YAML reads a bare ``off`` as false."""
    return "off" if value is False else value


def non_finite_place(value: Any) -> str | None:
    """Where a NaN or infinite number sits in an option's value: ``""`` for the value itself, ``[2]`` or ``.scale``
    inside a list or mapping; None when every number is finite."""
    if isinstance(value, float):
        return None if math.isfinite(value) else ""
    items: Any = ()
    if isinstance(value, dict):
        items = ((f".{k}", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    for label, item in items:
        inner = non_finite_place(item)
        if inner is not None:
            return label + inner
    return None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check an option against its annotated type; numbers written as text ("2e-3") become numbers. Any NaN or
    infinite number, of a float option or inside a list or mapping option, is refused (see the module docstring)."""
    result = _coerce_type(value, hint, where)
    place = non_finite_place(result)
    if place is not None:
        raise ConfigError(f"{where}{place} must be a finite number, got {value!r}")
    return result


def _coerce_type(value: Any, hint: Any, where: str) -> Any:
    """The type check of :func:`_coerce`, for scalar options (lists and mappings are checked by their dataclass)."""
    if value is None:
        if type(None) in get_args(hint) or hint is Any:
            return None
        raise ConfigError(f"{where} must not be empty")
    if hint in (int, float, bool, str):
        kinds = [hint]
    elif get_origin(hint) in (Union, UnionType):
        kinds = [a for a in get_args(hint) if a in (int, float, bool, str)]
    else:  # lists and mappings are checked by the dataclass that uses them
        return value
    if not kinds or type(value) in kinds:
        return value
    if float in kinds and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    if int in kinds and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if str in kinds and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> RunConfig:
    """Build a :class:`RunConfig` from nested dicts, checking every key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a run config is a mapping of sections, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; known: {sorted(_SECTIONS)}")
    loss = dict(data["loss"]) if isinstance(data.get("loss"), dict) else data.get("loss")
    model = _build_model(data.get("model"), loss, source)
    return RunConfig(
        model=model,
        data=_build("data", DataConfig, data.get("data"), source),
        train=_build("train", TrainConfig, data.get("train"), source),
        loss=_build("loss", LossConfig, loss, source),
    )


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, value = item.split("=", 1)
    path = key.strip().split(".")
    if len(path) != 2 and path[:2] != ["model", "stages"]:
        raise ConfigError(f"override {item!r}: the key must be section.key, e.g. train.epochs")
    try:
        return path, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from None


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as nested dicts, with its ``base:`` file (relative to it) merged underneath."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: circular base: chain {[str(p) for p in seen]}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); a config file is YAML text") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        # refused rather than read as "all defaults": an empty file is far more often a mistake than a choice
        raise ConfigError(
            f"{path}: the config file is empty; start from one in configs/ (e.g. configs/mgvlf_lite.yaml)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = path.parent / str(base)
    if not base_path.is_file():
        raise ConfigError(f"{path}: its base: file {base_path} was not found (a path relative to {path.parent})")
    merged = _read_yaml(base_path, (*seen, path.resolve()))
    for section, values in data.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}
        else:
            merged[section] = values
    return merged


def _set_stage_option(model: dict[str, Any], path: list[str], value: Any, where: str) -> None:
    """``--set model.stages.NAME=...`` (a mapping of options, ``{}`` or null turn the stage on, ``false`` turns it
    off, as in a config file) or ``--set model.stages.NAME.OPTION=...`` / ``model.stages.NAME.weights.TERM=...``
    on a stage that is on."""
    name = path[0]
    if name not in STAGES:
        raise ConfigError(f"{where}: unknown stage {name!r}; known: {list(STAGES)}")
    model["stages"] = stages = dict(model.get("stages") or {})
    if len(path) == 1:
        if value is False:
            stages.pop(name, None)
        else:
            stages[name] = {} if value is None else value
        return
    if stages.get(name, False) is False:
        raise ConfigError(
            f"{where}: model.stages.{name} is not on in this config; turn it on first with "
            f"--set model.stages.{name}={{}} (its defaults)"
        )
    option, rest = path[1], path[2:]
    if option not in options_fields(name):
        known = sorted(options_fields(name))
        raise ConfigError(f"{where}: unknown option {option!r} of model.stages.{name}; known: {known}")
    entry = dict(stages[name] or {})
    if option == "weights" and len(rest) == 1:
        entry["weights"] = {**(entry.get("weights") or {}), rest[0]: value}
    elif rest:
        raise ConfigError(f"{where}: model.stages.{name}.{option} has no parts to set")
    else:
        entry[option] = value
    stages[name] = entry


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or defaults when ``path`` is None) and apply ``section.key=value`` overrides.

    A config may start with ``base: other.yaml`` (a path relative to it): its sections are merged over the
    base file's, key by key.
    """
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path))
        config_from_dict(data, source)  # the file's own errors are named by the file
    for item in overrides or []:
        path, value = _parse_override(item)
        section, key = path[0], path[1]
        # an override's errors are named by the override, not by the file it overrides
        where = f"--set {item}"
        if section not in _SECTIONS:
            raise ConfigError(f"{where}: unknown section {section!r}; known: {sorted(_SECTIONS)}")
        if data.get(section) is None:
            data[section] = {}
        if len(path) > 2:
            _set_stage_option(data["model"], path[2:], value, where)
            continue
        cls = _model_class(data["model"], where) if section == "model" else _SECTIONS[section]
        known = {f.name for f in fields(cls)}
        legacy = LEGACY_MODEL_KEYS if section == "model" else LEGACY_LOSS_KEYS if section == "loss" else frozenset()
        if key not in known and key not in legacy:
            raise ConfigError(f"{where}: unknown {section} option {key!r}; known: {sorted(known)}")
        if (section, key) == ("train", "amp"):
            value = _amp_word(value)
        if key in known:
            value = _coerce(value, get_type_hints(cls)[key], f"{where}: {section}.{key}")
        data[section][key] = value
    if overrides and path is not None:
        source = f"{source} with --set {' '.join(overrides)}"
    elif overrides:
        source = f"--set {' '.join(overrides)}"
    return config_from_dict(data, source)
