"""What ``rsvg bench model`` measures and how: its settings, the phases it can run and the job each phase gets.

The phases are ``floor`` (machine and FLOPs), ``infer_*`` and ``train_*`` (one path of the model each) and
``data`` (the input pipeline). A model phase's name says which of :data:`OPTIMISATIONS` it runs, so that the
plain path, the optimised path and every path with one optimisation left out (``--ablate``) are measured by the
same code. The settings are resolved here once, in the parent process, so that every phase (possibly in a
spawned process) measures the same model at the same batch sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from rsvg.config import RunConfig, load_config
from rsvg.errors import BenchError

PHASES = ("floor", "infer_plain", "infer_optimised", "train_plain", "train_optimised", "data")
#: the optimised inference path under bf16 autocast, beside fp32 (``--bf16``); its boxes are checked against the
#: fp32 optimised path's within :data:`BF16_TOLERANCE`
BF16_PHASE = "infer_bf16"
#: the optimised training step under bf16 autocast (fp32 weights and optimiser state), beside the fp32 one
TRAIN_BF16_PHASE = "train_bf16"
#: a config that trains over cached maps (frozen backbone, no augmentation): the step as the trainer runs it then,
#: over the frozen encoders' stored maps and queries at ``train.batch_size``, in fp32 and in bf16
CACHED_PHASES = ("train_cached", "train_cached_bf16")
#: bf16 keeps 8 bits of mantissa (about 2-3 significant digits), and the error grows through the layers: its boxes
#: may differ from fp32's by up to this fraction of the largest coordinate (the network frame, 0..1)
BF16_TOLERANCE = 0.02

#: The optimisations of the optimised path, each of which ``--ablate`` leaves out in turn (phases
#: ``infer_without_<name>`` / ``train_without_<name>``). The plain path has none of them.
OPTIMISATIONS: dict[str, str] = {
    "channels_last": "channels-last backbone and input",
    "fused_attention": "scaled_dot_product_attention (ours; the text encoder's sdpa)",
    "trim_text": "text trimmed to the longest query of the batch",
    "inference_mode": "torch.inference_mode instead of torch.no_grad (inference)",
    "fold_bn": "frozen BatchNorm folded into the convolutions (inference)",
    "fused_adamw": "AdamW's fused single-kernel step (training)",
    "keep_freed_memory": "the C allocator keeps freed memory: no page faults on each run's fresh tensors (glibc)",
}
INFERENCE_OPTIMISATIONS = (
    "channels_last",
    "fused_attention",
    "trim_text",
    "inference_mode",
    "fold_bn",
    "keep_freed_memory",
)
TRAINING_OPTIMISATIONS = ("channels_last", "fused_attention", "trim_text", "fused_adamw", "keep_freed_memory")
ALL = frozenset(OPTIMISATIONS)
NONE: frozenset[str] = frozenset()


def keeps_freed_memory(name: str) -> bool:
    """Whether a phase runs with :func:`~rsvg.engine.allocator.keep_freed_memory`: every phase but the plain path
    and the one that leaves it out (the floor, the data phase and the bf16 and cached steps run as the optimised
    path does)."""
    try:
        return "keep_freed_memory" in phase_optimisations(name)
    except ValueError:
        return True


def phase_optimisations(name: str) -> frozenset[str]:
    """The optimisations a phase named ``infer_plain``, ``train_optimised``, ``infer_without_fold_bn`` ... runs."""
    kind, _, rest = name.partition("_")
    if kind not in ("infer", "train"):
        raise ValueError(f"not a model phase: {name!r}")
    if rest == "plain":
        return NONE
    if rest == "optimised":
        return ALL
    left_out = rest.removeprefix("without_")
    if not rest.startswith("without_") or left_out not in OPTIMISATIONS:
        raise ValueError(f"unknown phase {name!r}")
    return ALL - {left_out}


@dataclass
class BenchSettings:
    """What to measure and how; ``None`` fields take device-dependent defaults (see :func:`resolve_settings`)."""

    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    random_text: bool = False
    device: str = "cpu"
    threads: int | None = None  # torch intra-op threads (None: torch's default, the core count)
    repeats: int = 3
    warmup: int = 1
    batch: int | None = None  # throughput batch: 8 on CPU, train.eval_batch_size on CUDA
    train_batch: int | None = None  # 2 on CPU, train.batch_size on CUDA
    amp: str | None = None  # None: on CUDA the config's train.amp; on the CPU off (bf16 is timed beside it)
    compile: bool = False
    ablate: bool = False  # also measure the optimised path without each optimisation in turn
    skip_train: bool = False
    bf16: bool | None = None  # also time bf16 beside fp32 (None: where the hardware has native bf16)
    workers: int | None = None  # data loader workers (None: data.workers)
    data_images: int = 16  # distinct synthetic JPEGs
    data_samples: int = 128  # samples per timed pass of the loader
    matmul_n: int = 2048
    seed: int = 0
    isolate: bool = True  # each phase in its own spawned process (separate peak memory)


@dataclass
class PhaseJob:
    """Everything a phase needs, picklable for a spawned process."""

    settings: BenchSettings
    run: dict[str, Any]  # the resolved RunConfig as a dict
    batch: int
    train_batch: int
    amp: str
    workers: int


def _text_encoder_available(spec: str) -> bool:
    if spec in ("minilm", "bert-base-random"):
        return True
    return (Path(spec).expanduser() / "config.json").is_file()


def resolve_run_config(settings: BenchSettings) -> tuple[RunConfig, list[str]]:
    """The run config the benchmark uses, and notes on what was changed for a random-init run.

    At random init the backbone loads no weights (``pretrained_backbone=false``, ``backbone_weights`` unset);
    a text encoder named as a local folder that is not there becomes ``bert-base-random`` (bert-base's shape,
    random weights) with ``random_text``, and is an error otherwise; an LSTM text model without a vocabulary gets
    the benchmark queries' words. With a checkpoint the model section comes
    from the checkpoint and the config only supplies batch sizes, loader workers and the optimiser.
    """
    cfg = load_config(settings.config, settings.overrides)
    notes: list[str] = []
    if settings.checkpoint is not None:
        from rsvg.engine.checkpoint import read_checkpoint_meta
        from rsvg.models.registry import model_config_from_dict

        meta = read_checkpoint_meta(Path(settings.checkpoint))
        cfg = replace(cfg, model=model_config_from_dict(meta["model"]))
        notes.append(f"model from checkpoint {settings.checkpoint}")
        return cfg, notes
    model = replace(cfg.model, pretrained_backbone=False, backbone_weights=None)
    notes.append("random init: backbone without pretrained weights")
    words = model.needs_vocabulary  # the LSTM rows and ZSGNet read no text encoder folder
    if not words and not _text_encoder_available(model.text_encoder):
        if not settings.random_text:
            raise BenchError(
                f"text encoder {model.text_encoder!r} is not a local model folder (no config.json there): pass "
                "--random-text to measure the same shape with random weights (bert-base-random), or set "
                "model.text_encoder to a local folder"
            )
        notes.append(f"text encoder {model.text_encoder!r} not found: bert-base-random (same shape, random weights)")
        model = replace(model, text_encoder="bert-base-random")
    if words and not getattr(model, "vocabulary", None):
        from rsvg.bench.model_inputs import QUERIES
        from rsvg.models.lstm_text import build_vocabulary

        # rsvg train takes the vocabulary from the training split; the benchmark has only its own queries
        model = replace(model, vocabulary=build_vocabulary(QUERIES))
        notes.append(f"LSTM vocabulary: the {len(model.vocabulary)} words of the benchmark's queries")
    if getattr(model, "word_vectors", "") is None:
        model = replace(model, word_vectors="random")
        notes.append("word vectors: none named, fixed random ones (model.word_vectors: random)")
    return replace(cfg, model=model), notes


def resolve_settings(settings: BenchSettings, cfg: RunConfig) -> tuple[int, int, str, int]:
    """``(batch, train_batch, amp, workers)`` with the device-dependent defaults filled in. The whole run's
    autocast is ``--amp``; by default the config's ``train.amp`` on CUDA, and none on the CPU, where bf16 is
    timed beside fp32 instead (:func:`wants_bf16`)."""
    from rsvg.engine.trainer import resolve_amp

    cuda = settings.device.startswith("cuda")
    batch = settings.batch or (cfg.train.eval_batch_size if cuda else 8)
    train_batch = settings.train_batch or (cfg.train.batch_size if cuda else 2)
    default = cfg.train.amp if cuda else "off"
    amp = resolve_amp(settings.amp or default, torch.device(settings.device))
    workers = cfg.data.workers if settings.workers is None else settings.workers
    return batch, train_batch, amp, workers


def wants_bf16(settings: BenchSettings, amp: str) -> bool:
    """Whether the run times bf16 inference and training beside fp32: as ``settings.bf16`` says, by default where
    :func:`~rsvg.engine.precision.resolve_precision` ``auto`` picks bf16; never when the whole run is already
    under an autocast (``--amp``)."""
    from rsvg.engine.precision import resolve_precision

    if amp != "off":
        return False
    if settings.bf16 is not None:
        return settings.bf16
    return resolve_precision("auto", settings.device).name == "bf16"
