"""The ``data`` phase of ``rsvg bench model``: whether the training input pipeline keeps up with the training step.

It times passes of the training loader (decode, letterbox, normalise, tokenise, collate) over synthetic 800×800
JPEGs, written to a temporary folder first and not timed, with the config's loader worker count, and reports
samples/s. It needs the model's tokenizer and normalisation, which its config gives, so it does not build the model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from rsvg.bench.machine import GIB, median, peak_rss_bytes, timed_runs
from rsvg.bench.model_inputs import QUERIES, SOURCE_IMAGE_SIZE
from rsvg.bench.model_settings import PhaseJob
from rsvg.config import config_from_dict


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
    """Tokenizer and normalisation of the model, from its config (the checkpoint's, with its tokenizer files),
    without building the model: :meth:`rsvg.models.config.ModelConfig.tokenizer` and ``normalisation``."""
    if job.settings.checkpoint is not None:
        from rsvg.engine.checkpoint import TEXT_DIR, read_checkpoint_meta
        from rsvg.models.registry import model_config_from_dict

        folder = Path(job.settings.checkpoint)
        meta = read_checkpoint_meta(folder)
        folder = folder.parent if folder.is_file() else folder
        cfg = model_config_from_dict(meta["model"])
        return cfg.tokenizer(folder / TEXT_DIR), tuple(meta["mean"]), tuple(meta["std"])
    cfg = config_from_dict(job.run).model
    mean, std = cfg.normalisation()
    return cfg.tokenizer(), mean, std
