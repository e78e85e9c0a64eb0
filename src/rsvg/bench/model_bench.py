"""``rsvg bench model``: the grounding model's speed, memory and FLOPs, plain and optimised, in one run.

What one run measures (every time is the median of ``repeats`` runs after ``warmup`` untimed ones):

- **floor** — a 2048² fp32 matrix product (GFLOP/s) and the backbone alone at the config's input size
  (batch 1, default layout and channels-last); FLOPs per image (``FlopCounterMode`` on one batch-1 forward,
  text padded to ``Nt``, and the backbone and text encoder alone); parameter counts.
- **inference** — seconds at batch 1 and seconds per image at batch ``batch`` (8 on the CPU), for two paths
  over the same weights:

  * *plain*: text padded to ``Nt``, default memory layout, explicit-softmax attention (our transformer under
    :func:`rsvg.models.transformer.plain_attention`, the text encoder's ``eager`` attention), ``torch.no_grad``;
  * *optimised*: channels-last backbone and input, fused ``scaled_dot_product_attention``, text trimmed to the
    longest query of the batch (:func:`rsvg.engine.batching.collate`), ``torch.inference_mode``, optionally
    ``torch.compile`` and autocast (bf16 on CUDA).

  Both give their boxes in fp32; the speed ratio is reported only when they agree (relative difference below
  1e-4).
- **training** — one step at batch ``train_batch`` (2 on the CPU): forward, loss, backward, gradient clipping,
  AdamW step, as :class:`rsvg.engine.trainer.Trainer` does it, for both paths.
- **data** — samples/s of the training input pipeline (decode, letterbox, normalise, tokenise, collate) over
  synthetic 800×800 JPEGs, with the config's loader worker count.
- **memory** — each of these phases runs in its own spawned process, so each peak resident set size (and
  peak GPU memory on CUDA) belongs to that phase alone: the Python interpreter, torch, the model and the
  phase's work.

All phases call the model's own forward (:func:`rsvg.engine.batching.forward_batch`), the code training and
inference run.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from rsvg.bench.machine import GIB, load_average, machine_info, median, peak_rss_bytes, rss_bytes, timed_runs
from rsvg.config import RunConfig, config_from_dict, load_config
from rsvg.data.categories import DIOR_CLASSES
from rsvg.errors import BenchError

DIOR_RSVG_TRAIN_EXPRESSIONS = 26_991
RELATIVE_TOLERANCE = 1e-4
SOURCE_IMAGE_SIZE = 800  # DIOR images are 800×800

# Queries of DIOR-RSVG's kind and of different lengths (so trimming to the longest query matters).
QUERIES = (
    "the vehicle on the left",
    "a large storage tank at the upper right of the image",
    "the ship",
    "the white airplane parked next to the terminal on the lower left of the airport",
    "the baseball field in the middle",
    "a small bridge over the river at the bottom of the image",
    "the chimney",
    "the gray tennis court next to the ground track field on the right side of the image",
)

PHASES = ("floor", "infer_plain", "infer_optimised", "train_plain", "train_optimised", "data")
#: the optimised inference path under bf16 autocast, beside fp32 (``--bf16``); its boxes are checked against the
#: fp32 optimised path's within :data:`BF16_TOLERANCE`
BF16_PHASE = "infer_bf16"
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
}
INFERENCE_OPTIMISATIONS = ("channels_last", "fused_attention", "trim_text", "inference_mode", "fold_bn")
TRAINING_OPTIMISATIONS = ("channels_last", "fused_attention", "trim_text", "fused_adamw")
ALL = frozenset(OPTIMISATIONS)
NONE: frozenset[str] = frozenset()


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
    amp: str | None = None  # None: the config's train.amp (auto = bf16 on CUDA, off on CPU)
    compile: bool = False
    ablate: bool = False  # also measure the optimised path without each optimisation in turn
    skip_train: bool = False
    bf16: bool | None = None  # also time inference in bf16 beside fp32 (None: where the hardware has native bf16)
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


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
def _text_encoder_available(spec: str) -> bool:
    if spec in ("minilm", "bert-base-random"):
        return True
    return (Path(spec).expanduser() / "config.json").is_file()


def resolve_run_config(settings: BenchSettings) -> tuple[RunConfig, list[str]]:
    """The run config the benchmark uses, and notes on what was changed for a random-init run.

    At random init the backbone loads no weights (``pretrained_backbone=false``, ``backbone_weights`` unset);
    a text encoder named as a local folder that is not there becomes ``bert-base-random`` (bert-base's shape,
    random weights) with ``random_text``, and is an error otherwise. With a checkpoint the model section comes
    from the checkpoint and the config only supplies batch sizes, loader workers and the optimiser.
    """
    cfg = load_config(settings.config, settings.overrides)
    notes: list[str] = []
    if settings.checkpoint is not None:
        from rsvg.engine.checkpoint import read_checkpoint_meta
        from rsvg.models.config import ModelConfig

        meta = read_checkpoint_meta(Path(settings.checkpoint))
        cfg = replace(cfg, model=ModelConfig.from_dict(meta["model"]))
        notes.append(f"model from checkpoint {settings.checkpoint}")
        return cfg, notes
    model = replace(cfg.model, pretrained_backbone=False, backbone_weights=None)
    notes.append("random init: backbone without pretrained weights")
    if not _text_encoder_available(model.text_encoder):
        if not settings.random_text:
            raise BenchError(
                f"text encoder {model.text_encoder!r} is not a local model folder (no config.json there): pass "
                "--random-text to measure the same shape with random weights (bert-base-random), or set "
                "model.text_encoder to a local folder"
            )
        notes.append(f"text encoder {model.text_encoder!r} not found: bert-base-random (same shape, random weights)")
        model = replace(model, text_encoder="bert-base-random")
    return replace(cfg, model=model), notes


def resolve_settings(settings: BenchSettings, cfg: RunConfig) -> tuple[int, int, str, int]:
    """``(batch, train_batch, amp, workers)`` with the device-dependent defaults filled in."""
    from rsvg.engine.trainer import resolve_amp

    cuda = settings.device.startswith("cuda")
    batch = settings.batch or (cfg.train.eval_batch_size if cuda else 8)
    train_batch = settings.train_batch or (cfg.train.batch_size if cuda else 2)
    amp = resolve_amp(settings.amp or cfg.train.amp, torch.device(settings.device))
    workers = cfg.data.workers if settings.workers is None else settings.workers
    return batch, train_batch, amp, workers


def wants_bf16(settings: BenchSettings, amp: str) -> bool:
    """Whether the run times bf16 beside fp32: as ``settings.bf16`` says, by default where
    :func:`~rsvg.engine.precision.resolve_precision` ``auto`` picks bf16; never when the whole run is already
    under an autocast (``--amp``)."""
    from rsvg.engine.precision import resolve_precision

    if amp != "off":
        return False
    if settings.bf16 is not None:
        return settings.bf16
    return resolve_precision("auto", settings.device).name == "bf16"


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, with a message that says what to do."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise BenchError(f"--device must be cpu or cuda, got {device!r}")
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        raise BenchError(
            f"--device {device}: CUDA is not available here (torch {torch.__version__}, CUDA build {build}, "
            f"{torch.cuda.device_count()} GPUs visible). Run on a machine with an NVIDIA GPU and a CUDA build of "
            "torch, or use --device cpu."
        )


# ----------------------------------------------------------------------------------------------------------------
# Model and inputs (inside a phase)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    model: Any  # MGVLF
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tokenizer: Any
    seconds: float


def load_model(job: PhaseJob) -> LoadedModel:
    """The model at random init (seeded: every phase builds the same weights) or from the checkpoint."""
    t0 = time.perf_counter()
    if job.settings.checkpoint is not None:
        from rsvg.inference import Grounder

        g = Grounder.from_checkpoint(job.settings.checkpoint, device="cpu", fold_batchnorm=False)
        model, mean, std = g.model, g.mean, g.std
    else:
        from rsvg.models.build import build_model

        torch.manual_seed(job.settings.seed)
        model = build_model(config_from_dict(job.run).model)
        mean, std = tuple(model.backbone.mean), tuple(model.backbone.std)
    model = model.to(job.settings.device)
    return LoadedModel(model, mean, std, model.text.tokenizer(), time.perf_counter() - t0)


def weights_digest(model: torch.nn.Module) -> str:
    """A short hash of every parameter and buffer: two phases measured the same weights iff the digests match."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def make_samples(n: int, image_size: int, max_tokens: int, tokenizer: Any, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` dataset-style samples: normalised random images letterboxed from 800×800 and 800×600 sources (so
    some carry padding), DIOR-RSVG-like queries of different lengths padded to ``max_tokens``, a box each, and
    what ``model.object_head``'s loss reads: the image's objects (the box and one more) and the box's category."""
    from rsvg.data.transforms import letterbox_geometry, padding_mask

    gen = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        height = SOURCE_IMAGE_SIZE if i % 2 == 0 else SOURCE_IMAGE_SIZE * 3 // 4
        pad = padding_mask(letterbox_geometry(SOURCE_IMAGE_SIZE, height, image_size))
        image = torch.randn(3, image_size, image_size, generator=gen).masked_fill(pad, 0.0)
        ids, mask = tokenizer.encode(QUERIES[i % len(QUERIES)], max_tokens, truncate=True)
        lo = 0.2 + 0.05 * (i % 4)
        box = torch.tensor([lo, lo + 0.05, lo + 0.3, lo + 0.25]) * image_size
        other = torch.tensor([0.7, 0.6, 0.8, 0.75]) * image_size
        category = i % len(DIOR_CLASSES)
        samples.append(
            {
                "image": image,
                "padding_mask": pad,
                "box": box,
                "input_ids": torch.tensor(ids, dtype=torch.long),
                "attention_mask": torch.tensor(mask, dtype=torch.long),
                "index": i,
                "objects": torch.stack(
                    [torch.cat([torch.tensor([float(category)]), box]), torch.cat([torch.tensor([0.0]), other])]
                ),
                "category_index": torch.tensor(category),
            }
        )
    return samples


def add_stage_inputs(samples: list[dict[str, Any]], model: Any, seed: int) -> None:
    """The training inputs the model's stages read beyond what :func:`make_samples` gives (e.g. the second look's
    encoded crops), random values of the right shapes."""
    gen = torch.Generator().manual_seed(seed)
    for stage in model.stage_list():
        for i, sample in enumerate(samples):
            stage.example_extras(sample, i, gen)


def make_batch(samples: list[dict[str, Any]], opts: frozenset[str], device: str) -> dict[str, Any]:
    """Plain: stacked as they are (text padded to ``Nt``, default layout). With ``trim_text``: the training
    collate (text trimmed to the longest query); with ``channels_last``: channels-last images."""
    from rsvg.engine.batching import LIST_KEYS, collate, to_device

    if "trim_text" in opts:
        batch = collate(samples)
    else:
        batch = {
            k: torch.stack([s[k] for s in samples])
            if torch.is_tensor(samples[0][k]) and k not in LIST_KEYS
            else [s[k] for s in samples]
            for k in samples[0]
        }
    return to_device(batch, torch.device(device), channels_last="channels_last" in opts)


def set_path(model: Any, opts: frozenset[str]) -> str:
    """Put the model in the configuration ``opts`` asks for; returns the text encoder's attention kind."""
    fmt = torch.channels_last if "channels_last" in opts else torch.contiguous_format
    model.backbone.to(memory_format=fmt)
    hf = model.text.model
    if hasattr(hf, "set_attn_implementation"):
        with suppress(ValueError, ImportError):
            hf.set_attn_implementation("sdpa" if "fused_attention" in opts else "eager")
    return str(getattr(hf.config, "_attn_implementation", "unknown"))


@contextmanager
def path_context(opts: frozenset[str], amp: str, device: str, grad: bool) -> Iterator[None]:
    """Grad mode, attention path and autocast of one forward."""
    from rsvg.engine.evaluate import autocast_context
    from rsvg.models.transformer import plain_attention

    if grad:
        mode: Any = nullcontext()
    else:
        mode = torch.inference_mode() if "inference_mode" in opts else torch.no_grad()
    with mode, plain_attention("fused_attention" not in opts), autocast_context(torch.device(device), amp):
        yield


@contextmanager
def exact_fp32(device: str) -> Iterator[None]:
    """No TF32 on CUDA (the equality check is in true fp32)."""
    if not device.startswith("cuda"):
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    """``AdamW fused``, ``AdamW foreach`` or ``AdamW for-loop``: which implementation its step runs."""
    group = optimizer.param_groups[0]
    if group.get("fused"):
        kind = "fused"
    elif group.get("foreach") is not None:
        kind = "foreach" if group["foreach"] else "for-loop"
    else:  # torch's default: foreach when every tensor is on a GPU, else the per-parameter loop
        kind = "foreach" if all(p.is_cuda for g in optimizer.param_groups for p in g["params"]) else "for-loop"
    return f"{type(optimizer).__name__} {kind}"


def spread(times: list[float]) -> float:
    """Slowest over fastest run: near 1 on a quiet machine; well above it when other jobs share the cores."""
    return max(times) / max(min(times), 1e-12)


def _sync(device: str) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.startswith("cuda") else None


def _maybe_compile(model: Any, job: PhaseJob, opts: frozenset[str]) -> Any:
    return torch.compile(model) if opts == ALL and job.settings.compile else model


# ----------------------------------------------------------------------------------------------------------------
# Phases (each runs in its own process when isolated)
# ----------------------------------------------------------------------------------------------------------------
def phase_floor(job: PhaseJob) -> dict[str, Any]:
    """Matmul rate, backbone alone in both layouts, FLOPs and parameter counts."""
    from torch.utils.flop_counter import FlopCounterMode

    from rsvg.bench.floor import backbone_seconds, matmul_gflops
    from rsvg.models.transformer import plain_attention

    s = job.settings
    lm = load_model(job)
    model = lm.model.eval()
    cfg = model.cfg
    out: dict[str, Any] = {"matmul": matmul_gflops(s.matmul_n, repeats=max(s.repeats, 3), device=s.device)}
    for name, cl in (("default", False), ("channels_last", True)):
        out[f"backbone_{name}"] = backbone_seconds(
            model.backbone, cfg.image_size, channels_last=cl, repeats=s.repeats, warmup=s.warmup, device=s.device
        )
    model.backbone.to(memory_format=torch.contiguous_format)

    # FLOPs with every attention as explicit matrix products (the counter sees each one).
    set_path(model, NONE)
    sample = make_samples(1, cfg.image_size, cfg.max_tokens, lm.tokenizer, s.seed)
    padded = make_batch(sample, NONE, s.device)
    trimmed = make_batch(sample, frozenset({"trim_text"}), s.device)

    def count(fn: Callable[[], Any]) -> int:
        with torch.no_grad(), plain_attention(), FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())

    from rsvg.engine.batching import forward_batch

    flops = {
        "model": count(lambda: forward_batch(model, padded)),
        "model_trimmed_text": count(lambda: forward_batch(model, trimmed)),
        "backbone": count(lambda: model.encode_image(padded["image"])),
        "text_encoder": count(lambda: model.text(padded["input_ids"], padded["attention_mask"])),
        "text_tokens_padded": int(padded["input_ids"].shape[1]),
        "text_tokens_trimmed": int(trimmed["input_ids"].shape[1]),
    }
    out["flops"] = flops

    def params(m: torch.nn.Module | None) -> int:
        return 0 if m is None else sum(p.numel() for p in m.parameters())

    out["params"] = {
        "total": params(model),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "backbone": params(model.backbone),
        "text_encoder": params(model.text),
    }
    out["model_load_s"] = lm.seconds
    return out


def phase_infer(job: PhaseJob, opts: frozenset[str], amp: str | None = None) -> dict[str, Any]:
    """Batch-1 latency and per-image time at ``job.batch``, and the boxes of both batches for the check: in exact
    fp32, or, for a phase timed under ``amp`` (the ``infer_bf16`` phase), in that precision."""
    amp = job.amp if amp is None else amp
    s = job.settings
    lm = load_model(job)
    model = lm.model.eval()
    cfg = model.cfg
    out: dict[str, Any] = {"model_load_s": lm.seconds, "weights": weights_digest(model)}
    if "fold_bn" in opts:
        out["folded_norms"] = model.backbone.fold_frozen_batchnorm()
    out["text_attention"] = set_path(model, opts)
    out["model_rss_gib"] = rss_bytes() / GIB
    from rsvg.engine.batching import forward_batch

    net = _maybe_compile(model, job, opts)
    samples = make_samples(max(job.batch, 1), cfg.image_size, cfg.max_tokens, lm.tokenizer, s.seed)
    sync = _sync(s.device)
    for key, n in (("batch1", 1), (f"batch{job.batch}", job.batch)):
        batch = make_batch(samples[:n], opts, s.device)

        def run(batch: dict[str, Any] = batch) -> Any:
            with path_context(opts, amp, s.device, grad=False):
                return forward_batch(net, batch)

        first = time.perf_counter()
        run()
        if sync is not None:
            sync()
        first_s = time.perf_counter() - first
        times = timed_runs(run, s.repeats, max(s.warmup - 1, 0), sync)
        with exact_fp32(s.device), path_context(opts, "off" if amp == job.amp else amp, s.device, grad=False):
            boxes = forward_batch(net, batch).boxes.float().cpu()
        out[key] = {
            "batch": n,
            "seconds": median(times),
            "seconds_per_image": median(times) / n,
            "runs": times,
            "spread": spread(times),
            "first_call_s": first_s,
            "text_tokens": int(batch["input_ids"].shape[1]),
            "boxes": boxes.tolist(),
        }
    out["peak_rss_gib"] = peak_rss_bytes() / GIB
    if s.device.startswith("cuda"):
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / GIB
    return out


def phase_train(job: PhaseJob, opts: frozenset[str]) -> dict[str, Any]:
    """One training step at ``job.train_batch`` as the trainer runs it (:func:`rsvg.engine.step.train_step`),
    split into forward+backward (with gradient clipping) and the optimiser step."""
    from rsvg.engine.optim import build_optimizer
    from rsvg.engine.step import train_step

    s = job.settings
    run_cfg = config_from_dict(job.run)
    lm = load_model(job)
    model = lm.model.train()
    cfg = model.cfg
    text_attention = set_path(model, opts)
    out: dict[str, Any] = {
        "text_attention": text_attention,
        "model_load_s": lm.seconds,
        "model_rss_gib": rss_bytes() / GIB,
    }
    fused = None if "fused_adamw" in opts else False  # None: fused wherever torch supports it
    optimizer = build_optimizer(model, run_cfg.train, model.pretrained_parameter_names(), fused=fused)
    out["optimizer"] = optimizer_kind(optimizer)
    scaler = torch.amp.GradScaler(torch.device(s.device).type, enabled=job.amp == "fp16")
    net = _maybe_compile(model, job, opts)
    samples = make_samples(job.train_batch, cfg.image_size, cfg.max_tokens, lm.tokenizer, s.seed + 1)
    add_stage_inputs(samples, model, s.seed + 2)
    batch = make_batch(samples, opts, s.device)
    sync = _sync(s.device)
    parts: list[tuple[float, float]] = []

    def step() -> None:
        with path_context(opts, "off", s.device, grad=True):  # train_step applies the autocast itself
            result = train_step(
                net,
                model,
                batch,
                optimizer,
                scaler,
                run_cfg.loss,
                amp=job.amp,
                grad_clip=run_cfg.train.grad_clip,
                sync=sync,
            )
        parts.append((result.forward_backward_s, result.optimizer_s))

    first = time.perf_counter()
    step()
    first_s = time.perf_counter() - first
    times = timed_runs(step, s.repeats, max(s.warmup - 1, 0), sync)
    timed = parts[-s.repeats :]
    out.update(
        {
            "batch": job.train_batch,
            "seconds": median(times),
            "seconds_per_image": median(times) / job.train_batch,
            "forward_backward_s": median([a for a, _ in timed]),
            "optimizer_s": median([b for _, b in timed]),
            "runs": times,
            "spread": spread(times),
            "first_call_s": first_s,
            "text_tokens": int(batch["input_ids"].shape[1]),
            "peak_rss_gib": peak_rss_bytes() / GIB,
        }
    )
    if s.device.startswith("cuda"):
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / GIB
    return out


def phase_data(job: PhaseJob) -> dict[str, Any]:
    """Samples/s of the training input pipeline over synthetic 800×800 JPEGs (written first, not timed)."""
    from torch.utils.data import DataLoader

    from rsvg.data.dataset import RSVGDataset
    from rsvg.data.records import GroundingSample
    from rsvg.engine.batching import collate
    from rsvg.synth import write_synthetic_dataset

    s = job.settings
    cfg = config_from_dict(job.run).model
    tokenizer, mean, std = _data_assets(job)
    tmp = Path(tempfile.mkdtemp(prefix="rsvg-bench-data-"))
    try:
        root = tmp / "synth"
        write_synthetic_dataset(root, images=s.data_images, size=SOURCE_IMAGE_SIZE, seed=s.seed)
        jpegs = sorted((root / "JPEGImages").glob("*.jpg"))
        samples = [
            GroundingSample(
                index=i,
                image_id=jpegs[i % len(jpegs)].stem,
                image_path=jpegs[i % len(jpegs)],
                annotation_path=root / "Annotations" / (jpegs[i % len(jpegs)].stem + ".xml"),
                object_in_file=0,
                width=SOURCE_IMAGE_SIZE,
                height=SOURCE_IMAGE_SIZE,
                category="vehicle",
                box=(100.0, 120.0, 260.0, 300.0),
                description=QUERIES[i % len(QUERIES)],
            )
            for i in range(s.data_samples)
        ]
        dataset = RSVGDataset(
            root,
            "train",
            image_size=cfg.image_size,
            tokenizer=tokenizer,
            max_tokens=cfg.max_tokens,
            mean=mean,
            std=std,
            samples=samples,
        )
        counted: list[int] = []
        with warnings.catch_warnings():  # more workers than cores is the config's choice; reported below
            warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
            loader = DataLoader(
                dataset,
                batch_size=job.train_batch,
                shuffle=False,
                num_workers=job.workers,
                collate_fn=collate,
                pin_memory=s.device.startswith("cuda"),
                persistent_workers=job.workers > 0,
            )

            def one_pass() -> None:
                counted.append(sum(len(b["index"]) for b in loader))

            # the warm-up pass starts the workers and fills the page cache
            times = timed_runs(one_pass, s.repeats, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t = median(times)
    return {
        "workers": job.workers,
        "workers_exceed_cores": job.workers > (os.cpu_count() or 1),
        "batch": job.train_batch,
        "images": s.data_images,
        "samples": counted[-1],
        "source_size": SOURCE_IMAGE_SIZE,
        "image_size": cfg.image_size,
        "seconds_per_pass": t,
        "samples_per_s": counted[-1] / t,
        "runs": times,
        "pin_memory": s.device.startswith("cuda"),
        "peak_rss_gib": peak_rss_bytes() / GIB,
    }


def _data_assets(job: PhaseJob) -> tuple[Any, tuple[float, ...], tuple[float, ...]]:
    """Tokenizer and normalisation of the model, without building the model."""
    from rsvg.data.tokenizer import HFTokenizer

    if job.settings.checkpoint is not None:
        from rsvg.engine.checkpoint import TEXT_DIR, read_checkpoint_meta

        folder = Path(job.settings.checkpoint)
        meta = read_checkpoint_meta(folder)
        folder = folder.parent if folder.is_file() else folder
        return HFTokenizer.from_pretrained(folder / TEXT_DIR), tuple(meta["mean"]), tuple(meta["std"])
    from rsvg.models.backbones import build_backbone
    from rsvg.models.text_encoder import load_tokenizer

    cfg = config_from_dict(job.run).model
    backbone = build_backbone(cfg.backbone, pretrained=False, return_levels=(32,))
    return load_tokenizer(cfg.text_encoder), tuple(backbone.mean), tuple(backbone.std)


def run_phase_here(name: str, job: PhaseJob) -> dict[str, Any]:
    """Run one phase in this process (threads set first)."""
    if job.settings.threads:
        torch.set_num_threads(job.settings.threads)
    t0 = time.perf_counter()
    if name == "floor":
        out = phase_floor(job)
    elif name == BF16_PHASE:
        out = phase_infer(job, ALL, amp="bf16")
    elif name.startswith("infer_"):
        out = phase_infer(job, phase_optimisations(name))
    elif name.startswith("train_"):
        out = phase_train(job, phase_optimisations(name))
    elif name == "data":
        out = phase_data(job)
    else:
        raise ValueError(f"unknown phase {name!r}; phases: {PHASES}")
    out["threads"] = torch.get_num_threads()
    out["pid"] = os.getpid()
    out["phase_s"] = time.perf_counter() - t0
    return out


def run_phase(name: str, job: PhaseJob) -> dict[str, Any]:
    """Run one phase, in a fresh spawned process when ``job.settings.isolate`` (its peak memory is its own)."""
    if not job.settings.isolate:
        return run_phase_here(name, job)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(run_phase_here, name, job).result()


# ----------------------------------------------------------------------------------------------------------------
# The whole benchmark
# ----------------------------------------------------------------------------------------------------------------
def compare_boxes(plain: list, optimised: list) -> dict[str, float]:
    """Largest absolute difference of two box sets and that difference relative to the largest coordinate."""
    a = torch.tensor(plain, dtype=torch.float64)
    b = torch.tensor(optimised, dtype=torch.float64)
    diff = float((a - b).abs().max())
    scale = float(a.abs().max().clamp(min=1e-12))
    return {"max_abs_diff": diff, "max_rel_diff": diff / scale}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def box_difference(plain: dict[str, Any], other: dict[str, Any], bkey: str) -> float:
    """The larger of the batch-1 and batch-``B`` relative box differences of two inference phases."""
    return max(compare_boxes(plain[k]["boxes"], other[k]["boxes"])["max_rel_diff"] for k in ("batch1", bkey))


def bf16_summary(raw: dict[str, dict[str, Any]], bkey: str) -> dict[str, Any]:
    """bf16 beside fp32 on the optimised path: each batch's time, ``fp32 / bf16`` (above 1: bf16 is faster),
    and how far bf16's boxes are from fp32's; the ratios are withheld when that exceeds :data:`BF16_TOLERANCE`."""
    fp32, bf16 = raw["infer_optimised"], raw[BF16_PHASE]
    diff = box_difference(fp32, bf16, bkey)
    passed = diff <= BF16_TOLERANCE
    out: dict[str, Any] = {
        "check": {"max_rel_diff_vs_fp32": diff, "tolerance": BF16_TOLERANCE, "passed": passed},
        "peak_rss_gib": bf16.get("peak_rss_gib"),
    }
    for key in ("batch1", bkey):
        field = "seconds" if key == "batch1" else "seconds_per_image"
        out[key] = {
            "fp32": fp32[key][field],
            "bf16": bf16[key][field],
            "spread": bf16[key]["spread"],
            "speedup": _ratio(fp32[key][field], bf16[key][field]) if passed else None,
        }
    return out


def ablation_summary(raw: dict[str, dict[str, Any]], bkey: str, ok: bool) -> dict[str, Any]:
    """Per optimisation: the optimised path's times without it, and ``without / optimised`` (above 1: it pays).

    Each ablated inference path is checked against the plain path's boxes, like the optimised one; the costs are
    withheld (``None``) unless the run's check passed (``ok``, which covers the ablated paths).
    """
    out: dict[str, Any] = {}
    opt_i, plain_i = raw["infer_optimised"], raw["infer_plain"]

    def cost(without: float, optimised: float) -> float | None:
        return _ratio(without, optimised) if ok else None

    for name in OPTIMISATIONS:
        row: dict[str, Any] = {"what": OPTIMISATIONS[name]}
        infer = raw.get(f"infer_without_{name}")
        if infer is not None:
            row["inference"] = {
                "batch1_s": infer["batch1"]["seconds"],
                f"{bkey}_s_per_image": infer[bkey]["seconds_per_image"],
                "batch1_cost_of_leaving_out": cost(infer["batch1"]["seconds"], opt_i["batch1"]["seconds"]),
                f"{bkey}_cost_of_leaving_out": cost(infer[bkey]["seconds_per_image"], opt_i[bkey]["seconds_per_image"]),
                "max_rel_diff_vs_plain": box_difference(plain_i, infer, bkey),
                "peak_rss_gib": infer["peak_rss_gib"],
            }
        train = raw.get(f"train_without_{name}")
        if train is not None and "train_optimised" in raw:
            row["training"] = {
                "step_s": train["seconds"],
                "optimizer_s": train["optimizer_s"],
                "cost_of_leaving_out": cost(train["seconds"], raw["train_optimised"]["seconds"]),
                "peak_rss_gib": train["peak_rss_gib"],
            }
        if len(row) > 1:
            out[name] = row
    return out


def benchmark_model(settings: BenchSettings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every phase and return the results as a JSON-ready dict (see the module docstring)."""
    say = progress or (lambda _msg: None)
    check_device(settings.device)
    if settings.repeats < 1 or settings.warmup < 0:
        raise BenchError("repeats must be at least 1 and warmup at least 0")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    cfg, notes = resolve_run_config(settings)
    batch, train_batch, amp, workers = resolve_settings(settings, cfg)
    job = PhaseJob(settings, cfg.to_dict(), batch, train_batch, amp, workers)
    phases = list(PHASES)
    if settings.ablate:
        phases += [f"infer_without_{o}" for o in INFERENCE_OPTIMISATIONS]
        phases += [f"train_without_{o}" for o in TRAINING_OPTIMISATIONS]
    phases = [p for p in phases if not (settings.skip_train and p.startswith("train"))]
    if wants_bf16(settings, amp):
        phases.insert(phases.index("infer_optimised") + 1, BF16_PHASE)
    raw: dict[str, dict[str, Any]] = {}
    load_at_start = load_average()
    t_start = time.perf_counter()
    for i, name in enumerate(phases, 1):
        say(f"[{i}/{len(phases)}] {name} ...")
        raw[name] = run_phase(name, job)
        say(f"[{i}/{len(phases)}] {name} done in {raw[name]['phase_s']:.1f} s")
    result = summarise(raw, settings, cfg, job, notes)
    result["total_s"] = time.perf_counter() - t_start
    result["phase_seconds"] = {name: out["phase_s"] for name, out in raw.items()}
    result["machine"]["load_average_1min_at_start"] = load_at_start
    return result


def summarise(
    raw: dict[str, dict[str, Any]], settings: BenchSettings, cfg: RunConfig, job: PhaseJob, notes: list[str]
) -> dict[str, Any]:
    """Turn the phases' raw results into the report: check, ratios, floor, memory, projections."""
    from rsvg.bench.floor import floor_estimates
    from rsvg.bench.projection import project_training

    floor_raw = raw["floor"]
    plain, opt = raw["infer_plain"], raw["infer_optimised"]
    bkey = f"batch{job.batch}"
    check = {"tolerance": RELATIVE_TOLERANCE, "same_weights": plain["weights"] == opt["weights"]}
    for key in ("batch1", bkey):
        check[key] = compare_boxes(plain[key]["boxes"], opt[key]["boxes"])
    check["max_rel_diff"] = max(check[k]["max_rel_diff"] for k in ("batch1", bkey))
    # every ablated inference path (--ablate) must give the plain path's boxes too, or no ratio is reported
    ablated = {n: p for n, p in raw.items() if n.startswith("infer_without_")}
    if ablated:
        check["ablated_max_rel_diff"] = max(box_difference(plain, p, bkey) for p in ablated.values())
    worst = max(check["max_rel_diff"], check.get("ablated_max_rel_diff", 0.0))
    same_weights = all(p["weights"] == plain["weights"] for p in (opt, *ablated.values()))
    check["same_weights"] = same_weights
    check["passed"] = bool(same_weights and worst < RELATIVE_TOLERANCE)
    ok = check["passed"]

    def timing(phase: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        src = phase if key is None else phase[key]
        return {k: v for k, v in src.items() if k != "boxes"}

    inference = {}
    for key in ("batch1", bkey):
        p, o = timing(plain, key), timing(opt, key)
        inference[key] = {
            "batch": p["batch"],
            "plain": p,
            "optimised": o,
            "speedup": _ratio(p["seconds"], o["seconds"]) if ok else None,
        }
    training: dict[str, Any] | None = None
    if "train_optimised" in raw:
        tp, to = raw["train_plain"], raw["train_optimised"]
        training = {
            "batch": job.train_batch,
            "plain": tp,
            "optimised": to,
            "speedup": _ratio(tp["seconds"], to["seconds"]) if ok else None,
            "optimised_images_per_s": job.train_batch / to["seconds"],
            "projected_dior_rsvg_epoch_s": DIOR_RSVG_TRAIN_EXPRESSIONS * to["seconds"] / job.train_batch,
        }

    flops = floor_raw["flops"]
    best_backbone = min(floor_raw["backbone_default"]["seconds"], floor_raw["backbone_channels_last"]["seconds"])
    est = floor_estimates(flops["model"], flops["backbone"], floor_raw["matmul"]["gflops"], best_backbone)
    b1 = inference["batch1"]["optimised"]["seconds"]
    bn = inference[bkey]["optimised"]["seconds_per_image"]
    floor = {
        "matmul_n": floor_raw["matmul"]["n"],
        "matmul_gflops": floor_raw["matmul"]["gflops"],
        "backbone_default_s": floor_raw["backbone_default"]["seconds"],
        "backbone_channels_last_s": floor_raw["backbone_channels_last"]["seconds"],
        **est,
        "batch1_vs_floor": _ratio(est["floor_s"], b1),
        f"{bkey}_vs_floor": _ratio(est["floor_s"], bn),
        "batch1_vs_matmul_floor": _ratio(est["matmul_floor_s"], b1),
        "achieved_gflops_batch1": flops["model_trimmed_text"] / b1 / 1e9,
        f"achieved_gflops_{bkey}": flops["model_trimmed_text"] / bn / 1e9,
    }
    ablation = ablation_summary(raw, bkey, ok) if settings.ablate else None
    bf16 = bf16_summary(raw, bkey) if BF16_PHASE in raw else None
    data = raw["data"]
    projection = project_training(
        flops["model_trimmed_text"] / 1e9,
        expressions=DIOR_RSVG_TRAIN_EXPRESSIONS,
        loader_samples_per_s_per_worker=data["samples_per_s"] / max(job.workers, 1),
    )
    if training is not None:
        # the same FLOP model on this machine: what share of its matmul rate the measured training step reaches
        achieved = job.train_batch * projection["training_gflops_per_image"] / training["optimised"]["seconds"]
        projection["this_machine"] = {
            "training_gflops_per_s": achieved,
            "of_matmul_rate": achieved / floor_raw["matmul"]["gflops"],
        }
    memory = {name: raw[name]["peak_rss_gib"] for name in raw if "peak_rss_gib" in raw[name]}
    gpu_memory = {name: raw[name]["peak_gpu_gib"] for name in raw if "peak_gpu_gib" in raw[name]}
    rates = {"inference": job.batch / inference[bkey]["optimised"]["seconds"]}
    if training is not None:
        rates["training"] = training["optimised_images_per_s"]
    m = cfg.model
    return {
        "benchmark": "rsvg bench model",
        "machine": machine_info(),
        "settings": {
            **{k: v for k, v in asdict(settings).items() if k != "isolate"},
            "isolated_phases": settings.isolate,
            "batch": job.batch,
            "train_batch": job.train_batch,
            "amp": job.amp,
            "workers": job.workers,
            "notes": notes,
        },
        "model": {
            "backbone": m.backbone,
            "text_encoder": m.text_encoder,
            "image_size": m.image_size,
            "max_tokens": m.max_tokens,
            "hidden_dim": m.hidden_dim,
            "params": floor_raw["params"],
        },
        "flops": {
            "per_image_gflops": flops["model"] / 1e9,
            "per_image_trimmed_text_gflops": flops["model_trimmed_text"] / 1e9,
            "backbone_gflops": flops["backbone"] / 1e9,
            "text_encoder_gflops": flops["text_encoder"] / 1e9,
            "text_tokens_padded": flops["text_tokens_padded"],
            "text_tokens_trimmed": flops["text_tokens_trimmed"],
        },
        "paths": {
            "plain": {
                "text": "padded to max_tokens",
                "layout": "default (NCHW)",
                "attention": "explicit softmax",
                "text_encoder_attention": plain["text_attention"],
                "grad_mode": "no_grad (inference)",
                "compiled": False,
            },
            "optimised": {
                "text": "trimmed to the longest query of the batch",
                "layout": "channels-last backbone and input",
                "attention": "scaled_dot_product_attention",
                "text_encoder_attention": opt["text_attention"],
                "grad_mode": "inference_mode (inference)",
                "compiled": settings.compile,
            },
        },
        "check": check,
        "inference": inference,
        "training": training,
        "ablation": ablation,
        "bf16": bf16,
        "images_per_s": rates,
        "data": {
            **data,
            "keeps_up_with_training": training is None or data["samples_per_s"] >= rates["training"],
        },
        "floor": floor,
        "projection": projection,
        "peak_rss_gib": memory,
        "peak_gpu_gib": gpu_memory or None,
    }
