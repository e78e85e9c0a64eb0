"""The model and the inputs every model phase of ``rsvg bench model`` measures, and the switches between its paths.

Each phase builds the model itself (seeded, so every phase measures the same weights, which
:func:`weights_digest` lets the summary confirm) and feeds it synthetic samples shaped like DIOR-RSVG's: letterboxed
800×800 and 800×600 images and queries of different lengths, so that trimming the text to the longest query of a
batch has something to trim. :func:`make_batch`, :func:`set_path` and :func:`path_context` put the batch, the
model and each forward in the configuration a phase's optimisations ask for, and nothing else differs between the
plain and the optimised path.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any

import torch

from rsvg.bench.model_settings import PhaseJob
from rsvg.config import config_from_dict

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


@dataclass
class LoadedModel:
    """A model built for one phase, with its input normalisation, its tokenizer and the seconds building took."""

    model: Any  # a rsvg.models.interface.GroundingModel
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
        mean, std = tuple(model.mean), tuple(model.std)
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
    some carry padding), DIOR-RSVG-like queries of different lengths padded to ``max_tokens`` and a box each
    (what a model's stages read besides: :func:`add_stage_inputs`)."""
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
        samples.append(
            {
                "image": image,
                "padding_mask": pad,
                "box": box,
                "input_ids": torch.tensor(ids, dtype=torch.long),
                "attention_mask": torch.tensor(mask, dtype=torch.long),
                "index": i,
            }
        )
    return samples


def add_stage_inputs(samples: list[dict[str, Any]], model: Any, seed: int) -> None:
    """The training inputs the model's stages read beyond what :func:`make_samples` gives (e.g. the image's
    objects, the second look's encoded crops), as each stage makes them
    (:meth:`~rsvg.models.stages.base.Stage.example_extras`)."""
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
    """Put the model in the configuration ``opts`` asks for; returns the text encoder's attention kind (``none``
    for a text model without attention, the LSTM)."""
    fmt = torch.channels_last if "channels_last" in opts else torch.contiguous_format
    model.backbone.to(memory_format=fmt)
    hf = getattr(model.text, "model", None)
    if hf is None:
        return "none"
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
