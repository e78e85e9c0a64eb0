"""The training loop: ``train(cfg, out)`` trains, validates each epoch, keeps the best checkpoint, resumes.

Layout of ``out``::

    config.yaml        the resolved run config
    last/              training checkpoint (model + optimiser, scheduler, RNG, epoch, step): --resume reads it
    best/              model checkpoint with the best validation Pr@0.5 (what eval / ground / serve load)
    history.json       per-epoch training loss, learning rate, autocast (train.amp resolved), validation
                       metrics, time
    val_predictions.jsonl  the best epoch's validation predictions

The process that writes (rank 0 under torchrun) holds the run folder's lock (``.OUT.lock`` beside it,
:func:`rsvg.output_paths.output_lock`) for the whole run: a second run into the same ``out`` is refused at once
instead of deleting the first one's temporary checkpoint as a stale leftover.

Divergence: a NaN or infinite loss, gradient norm or box stops the run before that step's update
(:func:`rsvg.engine.step.train_step`), and weights that the update made NaN or infinite are found before anything
is saved or validated; every rank agrees before it stops (:func:`rsvg.engine.distributed.any_rank`), so none
waits for the others forever. The :class:`~rsvg.errors.TrainingDivergedError` names the epoch and the step, and
no checkpoint is written after it: ``last/`` and ``best/`` stay as they were.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from rsvg.config import RunConfig, config_from_dict
from rsvg.data.records import DatasetError
from rsvg.data.xmlio import atomic_write_text
from rsvg.engine import distributed as dist
from rsvg.engine.allocator import keep_freed_memory
from rsvg.engine.amp import autocast_context, choose_amp_for, resolve_amp
from rsvg.engine.batching import collate, to_device
from rsvg.engine.checkpoint import (
    MODEL_FILE,
    STATE_FILE,
    checkpoint_meta,
    find_resume,
    load_training_state,
    load_weights,
    model_text_files,
    read_checkpoint_meta,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rsvg.engine.determinism import apply_determinism
from rsvg.engine.evaluate import eval_loader, metrics_from_rows, predict_all, write_predictions
from rsvg.engine.feature_cache import cache_bytes, caches_backbone_maps, compute_image_features
from rsvg.engine.feature_store import feature_key, load_features, matches, save_features
from rsvg.engine.optim import PRETRAINED_GROUPS, build_optimizer, build_scheduler, describe_groups
from rsvg.engine.run_data import fit_to_training_split, training_sets
from rsvg.engine.sampler import ResumableShardedSampler
from rsvg.engine.step import train_step
from rsvg.errors import CheckpointError, NonFiniteError, TrainingDivergedError
from rsvg.models.build import build_model
from rsvg.output_paths import output_lock

__all__ = ["Trainer", "resolve_amp", "train"]

#: what a message about an unusable training checkpoint tells the user to do
_RECOVER = "start again without --resume into a new --out, or put back a good copy of the file"


class Trainer:
    """Holds the model, data, optimiser and bookkeeping of one run (one per process under torchrun)."""

    def __init__(self, cfg: RunConfig, out: Path, *, resume: bool = False, device: str = "auto") -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.device = dist.init_distributed(device)
        self.console = Console(quiet=not dist.is_main())
        self.amp_choice = choose_amp_for(cfg, self.device)
        self.amp = self.amp_choice.step
        # every step allocates the same large tensors: freed memory stays mapped for the next (rsvg.engine.allocator)
        self.allocator = keep_freed_memory()
        if cfg.data.root is None:
            raise DatasetError("no dataset: give --data ROOT or set data.root in the config")
        # train.deterministic stays in force until close()
        self.determinism, self._restore_modes = apply_determinism(cfg.train.deterministic)
        try:
            self._setup(resume)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Restore the process-wide switches ``train.deterministic`` set."""
        self._restore_modes()

    def _setup(self, resume: bool) -> None:
        # what the model family takes from the training split (k-means anchors) is part of the run's config
        cfg = self.cfg = fit_to_training_split(self.cfg, self.console)
        # the run folder is checked before minutes of set-up: a damaged checkpoint or a run already there
        saved = self._read_resume() if resume else None
        # rank 0 looks; every rank stops (the others would otherwise wait for it forever)
        if dist.any_rank(not resume and dist.is_main() and find_resume(self.out) is not None):
            raise FileExistsError(
                f"{self.out} already holds a run: pass --resume to continue it or choose another --out"
            )
        torch.manual_seed(cfg.train.seed)

        self.model = build_model(cfg.model)
        # a frozen text encoder gives each query the same features every epoch: compute them once
        self.model.text.cache_enabled = cfg.model.cache_text_features and cfg.model.freeze_text_encoder
        self.pretrained_names = self.model.pretrained_parameter_names()
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.backbone.to(memory_format=torch.channels_last)
        self.train_set, self.val_set = training_sets(cfg, self.model, self.console)
        # image_id -> the frozen backbone's map, when cached (see _maybe_cache_backbone_features)
        self.image_features: dict[str, torch.Tensor] | None = None
        self._maybe_cache_backbone_features()
        if self.model.text.cache_enabled:
            self._encode_queries()
        self._prepare_stages()

        self.sampler = ResumableShardedSampler(
            len(self.train_set),
            shuffle=True,
            seed=cfg.train.seed,
            rank=dist.rank(),
            world_size=dist.world_size(),
            with_epoch=True,
        )
        per_rank = math.ceil(len(self.train_set) / dist.world_size())
        self.steps_per_epoch = math.ceil(per_rank / cfg.train.batch_size)
        self.optimizer = build_optimizer(self.model, cfg.train, self.pretrained_names)
        self.scheduler = build_scheduler(self.optimizer, cfg.train, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        # train.freeze_epochs: what the lower-rate groups train, held without gradients in the first epochs
        self.warmup_frozen = [
            p for g in self.optimizer.param_groups if g["name"] in PRETRAINED_GROUPS for p in g["params"]
        ] if cfg.train.freeze_epochs else []  # fmt: skip
        self.net: torch.nn.Module = self.model
        if dist.is_distributed():
            self.net = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                # a stage that trains only on some samples may get no gradient from a batch; the groups held
                # by train.freeze_epochs get none in the first epochs
                find_unused_parameters=bool(self.warmup_frozen)
                or any(stage.may_skip_parameters for stage in self.model.stage_list()),
            )
        if cfg.train.compile:
            self.net = torch.compile(self.net)

        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best: tuple[float, float] = (-1.0, -1.0)  # (Pr@0.5, meanIoU) of the best validation
        self.history: list[dict[str, Any]] = []
        # the current epoch's loss sums, step count and samples so far (kept in mid-epoch checkpoints)
        self.running: dict[str, Any] = {"sums": {}, "count": 0, "seen": 0}
        if saved is not None:
            self._resume(*saved)

    def _maybe_cache_backbone_features(self) -> None:
        """With a frozen backbone and no augmentation, compute every image's backbone map once (under the frozen
        encoders' autocast: what ``train.amp`` resolved to)."""
        cfg = self.cfg
        if not caches_backbone_maps(cfg):
            return
        samples = [*self.train_set.samples, *self.val_set.samples]
        n_images = len({s.image_id for s in samples})
        size = cache_bytes(n_images, self.model.feature_channels, cfg.model.image_size)
        if size > cfg.train.feature_cache_max_gb * 2**30:
            self.console.print(
                f"backbone feature cache skipped: {size / 2**30:.1f} GiB > train.feature_cache_max_gb", highlight=False
            )
            return
        t0 = time.perf_counter()
        compute = functools.partial(
            compute_image_features,
            self.model,
            device=self.device,
            batch_size=cfg.train.eval_batch_size,
            channels_last=cfg.train.channels_last,
            amp=self.amp_choice.encoders,
        )
        folder = Path(cfg.train.feature_cache_dir) if cfg.train.feature_cache_dir else None
        key = feature_key(self.model, samples, self.amp_choice.encoders) if folder is not None else ""
        features = load_features(folder, key) if folder is not None else None
        if features is not None:
            # the key does not see how the family reads the backbone: one image computed afresh must agree
            probe = samples[0].image_id
            if probe in features and matches(features[probe], compute([samples[0]])[probe]):
                what = f"loaded the frozen backbone's features of {n_images} images from {folder}"
            else:
                self.console.print(f"{folder}: the stored features of this key differ from this model's: recomputed",
                                   highlight=False)  # fmt: skip
                features = None
        if features is None:
            features = compute(samples)
            what = f"cached the frozen backbone's features of {n_images} images ({size / 2**20:.0f} MiB)"
            if folder is not None and dist.is_main():
                save_features(folder, key, features)
                what += f", kept in {folder}"
        for ds in (self.train_set, self.val_set):
            ds.load_images, ds.image_features = False, features
        self.image_features = features
        self.console.print(f"{what} in {time.perf_counter() - t0:.1f} s", highlight=False)

    def _encode_queries(self) -> None:
        """A frozen text encoder: encode every training and validation query once, up front and in a fixed order,
        so the features a step sees never depend on which batch first brought its query (exact resume)."""
        t0 = time.perf_counter()
        queries = [*self.train_set.query_tokens(), *self.val_set.query_tokens()]
        with autocast_context(self.device, self.amp_choice.encoders):
            n = self.model.text.precompute(queries, batch_size=self.cfg.train.eval_batch_size)
        self.console.print(
            f"encoded the {n} distinct queries with the frozen text encoder in {time.perf_counter() - t0:.1f} s",
            highlight=False,
        )

    def _prepare_stages(self) -> None:
        """Work a stage does once before training (e.g. encoding crops with the frozen backbone)."""
        for stage in self.model.stage_list():
            t0 = time.perf_counter()
            with autocast_context(self.device, self.amp_choice.encoders):
                extra = stage.prepare_training(
                    self.model, self.train_set.samples, self.device, seed=self.cfg.train.seed
                )
            if extra is None:
                continue
            self.train_set.add_extra(extra)
            what = stage.describe_preparation(extra, len(self.train_set))
            self.console.print(f"encoded {what} in {time.perf_counter() - t0:.1f} s", highlight=False)

    # ----------------------------------------------------------------------------------------------------------
    def _read_resume(self) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
        """The checkpoint ``--resume`` continues: its folder, weights and training state, each read and checked
        (a :class:`~rsvg.errors.CheckpointError` naming the file that cannot be used, and how to go on)."""
        path = find_resume(self.out)
        if path is None:
            raise FileNotFoundError(f"--resume: no training checkpoint in {self.out} (expected {self.out}/last)")
        meta = read_checkpoint_meta(path)
        if not isinstance(meta.get("run"), dict):
            raise CheckpointError(f"{path / 'config.json'} has no run config ('run'): {_RECOVER}")
        saved = config_from_dict(meta["run"], str(path / "config.json"))
        # train.epochs may grow; train.feature_cache_dir says where maps are kept, not what the run is
        same = replace(saved.train, epochs=self.cfg.train.epochs, feature_cache_dir=self.cfg.train.feature_cache_dir)
        if replace(saved, train=same) != self.cfg:
            raise ValueError(
                f"--resume: the config differs from the one {path} was trained with (only train.epochs and "
                "train.feature_cache_dir may change)"
            )
        return path, load_weights(path), load_training_state(path)

    def _resume(self, path: Path, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Put what :meth:`_read_resume` read in place: weights, optimiser, scheduler, RNG, counters."""
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path / MODEL_FILE}: the weights do not fit the model ({str(exc)[:200]}): {_RECOVER}"
            ) from None
        try:
            self._apply_state(state)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path / STATE_FILE} does not fit this run ({type(exc).__name__}: {str(exc)[:200]}): {_RECOVER}"
            ) from None
        self.console.print(f"resumed from {path}: epoch {self.epoch + 1}, step {self.step_in_epoch}")

    def _apply_state(self, state: dict[str, Any]) -> None:
        """Put a loaded training state (:func:`~rsvg.engine.checkpoint.load_training_state`) in place."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.history = state["global_step"], state["history"]
        self.best = tuple(float(v) for v in state["best"])
        set_rng_state(state["rng"][min(dist.rank(), len(state["rng"]) - 1)])
        # the interrupted epoch's running loss sums, so its history row averages every step, not only the resumed ones
        running = state.get("running")
        if running and self.step_in_epoch > 0:
            self.running = running[min(dist.rank(), len(running) - 1)]

    # ----------------------------------------------------------------------------------------------------------
    def _diverged(self, what: str, step: int) -> TrainingDivergedError:
        """The error that stops a run whose numbers stopped being finite at ``step`` of the current epoch: where,
        what, and which checkpoints were left as they were."""
        kept = [str(self.out / name) for name in ("last", "best") if (self.out / name / MODEL_FILE).is_file()]
        if kept:
            saved = f"nothing was saved after it, so {' and '.join(kept)} {'are' if len(kept) > 1 else 'is'} intact"
        else:
            saved = "no checkpoint had been saved yet"
        return TrainingDivergedError(
            f"training diverged at epoch {self.epoch + 1}, step {step}: {what}; {saved}. Lower train.lr (now "
            f"{self.cfg.train.lr:g}) and start again into a new --out"
        )

    def _check_weights(self, step: int) -> None:
        """Refuse to go on (save, validate) with weights that an update made NaN or infinite; all ranks agree."""
        flags = [torch.isfinite(p.detach()).all() for p in self.model.parameters()]
        bad = bool(flags) and not bool(torch.stack(flags).all())
        if dist.any_rank(bad):
            raise self._diverged("the weights became NaN or infinite in the optimiser's update", step)

    def _save_last(self) -> None:
        """Write ``OUT/last`` (rank 0; every rank gives its RNG state and running sums)."""
        rngs = dist.all_gather_objects(rng_state())
        running = dist.all_gather_objects(self.running)
        self._on_main(lambda: self._write_last(rngs, running), self.out / "last")

    def _write_last(self, rngs: list[Any], running: list[Any]) -> None:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "best": self.best,
            "history": self.history,
            "rng": rngs,
            "running": running,
        }
        meta = checkpoint_meta(self.model, self.cfg, {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch})
        save_checkpoint(self.out / "last", self.model, meta, model_text_files(self.model), training_state=state)

    # ----------------------------------------------------------------------------------------------------------
    def _train_loader(self) -> DataLoader:
        self.sampler.set_epoch(self.epoch, start=self.step_in_epoch * self.cfg.train.batch_size)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.train.batch_size,
            sampler=self.sampler,
            num_workers=self.cfg.data.workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            # worker seeds come from this generator, not from the global RNG that dropout uses
            generator=torch.Generator().manual_seed(self.cfg.train.seed * 7919 + self.epoch),
        )

    def train_one_epoch(self) -> dict[str, float]:
        cfg = self.cfg
        held = self.epoch < cfg.train.freeze_epochs  # their gradients stay None: the optimiser leaves them alone
        for p in self.warmup_frozen:
            p.requires_grad_(not held)
        self.net.train()
        loader = self._train_loader()
        # every term the model's loss can return, logged each step (a term a batch lacks adds 0)
        sums = {name: 0.0 for name in self.model.loss_terms(cfg.loss)}
        count, t0, seen = 0, time.perf_counter(), 0
        if self.step_in_epoch > 0:  # resumed mid-epoch: continue the interrupted epoch's sums
            sums.update({k: v for k, v in self.running["sums"].items() if k in sums})
            count, seen = self.running["count"], self.running["seen"]
        self.running = {"sums": sums, "count": count, "seen": seen}
        seen_before = seen  # the rate counts only this process's samples
        interactive = self.console.is_terminal
        self.optimizer.zero_grad(set_to_none=True)
        for batch in loader:
            batch = to_device(batch, self.device, cfg.train.channels_last)
            try:
                losses = train_step(
                    self.net,
                    self.model,
                    batch,
                    self.optimizer,
                    self.scaler,
                    cfg.loss,
                    amp=self.amp,
                    grad_clip=cfg.train.grad_clip,
                ).losses
            except TrainingDivergedError as exc:
                raise self._diverged(str(exc), self.step_in_epoch + 1) from None
            self.scheduler.step()
            self.step_in_epoch += 1
            self.global_step += 1
            n = len(batch["index"])
            seen += n
            count += 1
            for k in sums:
                sums[k] += float(losses[k].detach()) if k in losses else 0.0
            self.running.update(count=count, seen=seen)
            if self.step_in_epoch % cfg.train.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                rate = (seen - seen_before) * dist.world_size() / max(time.perf_counter() - t0, 1e-9)
                self.console.print(
                    f"epoch {self.epoch + 1}/{cfg.train.epochs} step {self.step_in_epoch}/{self.steps_per_epoch} "
                    f"loss {sums['loss'] / count:.4f} ("
                    + " ".join(f"{k} {v / count:.4f}" for k, v in sums.items() if k != "loss")
                    + ") "
                    f"lr {self.optimizer.param_groups[0]['lr']:.2e} {rate:.1f} samples/s",
                    highlight=False,
                    end="\r" if interactive and self.step_in_epoch != self.steps_per_epoch else "\n",
                )
            every = cfg.train.checkpoint_every_steps
            if every and self.step_in_epoch % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                self._check_weights(self.step_in_epoch)
                self._save_last()
        self._check_weights(self.step_in_epoch)
        means = torch.tensor([v / max(count, 1) for v in sums.values()], dtype=torch.float64)
        means = dist.all_reduce_mean(means.to(self.device)).cpu()
        return {
            **{k: float(m) for k, m in zip(sums, means, strict=True)},
            "samples_per_s": (seen - seen_before) * dist.world_size() / max(time.perf_counter() - t0, 1e-9),
        }

    def validate(self) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Validation Pr@k and IoU of the current weights, and the prediction rows (all ranks')."""
        loader = eval_loader(self.val_set, self.cfg.train.eval_batch_size, self.cfg.data.workers, self.device)
        try:
            rows = predict_all(
                self.model,
                loader,
                self.device,
                image_size=self.cfg.model.image_size,
                amp=self.amp,
                channels_last=self.cfg.train.channels_last,
            )
        except NonFiniteError as exc:
            raise self._diverged(f"validation: {exc}", self.step_in_epoch) from None
        return metrics_from_rows(rows).overall.values, rows

    def _write_best(self, values: dict[str, float], rows: list[dict[str, Any]]) -> None:
        meta = checkpoint_meta(self.model, self.cfg, {"epoch": self.epoch + 1, "val": values})
        save_checkpoint(self.out / "best", self.model, meta, model_text_files(self.model))
        write_predictions(self.out / "val_predictions.jsonl", rows)

    def _on_main(self, write: Callable[[], None], what: Path | None = None) -> None:
        """Run ``write`` on rank 0, the process that writes the run folder; every rank learns whether it failed
        (a full disk), so all stop together instead of the others waiting for rank 0 forever."""
        error: Exception | None = None
        if dist.is_main():
            try:
                write()
            except Exception as exc:  # re-raised below, after the other ranks were told
                error = exc
        if dist.any_rank(error is not None):
            if error is not None:
                raise error
            raise CheckpointError(f"the process that writes {what or self.out} (rank 0) failed: see its error")

    def fit(self) -> dict[str, Any]:
        """Train to ``train.epochs``; returns the history and the best validation Pr@0.5."""
        cfg = self.cfg
        config_text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        self._on_main(lambda: atomic_write_text(self.out / "config.yaml", config_text))
        if dist.is_main():
            self.console.print(f"backbone {self.model.backbone.load_report.summary(max_names=4)}", highlight=False)
            extra_init = self.model.init_report()
            if extra_init:
                self.console.print(extra_init, highlight=False)
            self.console.print(
                f"training on {self.device} x{dist.world_size()} (amp {self.amp}, frozen encoders "
                f"{self.amp_choice.encoders}: {self.amp_choice.reason}): "
                f"{len(self.train_set)} train / "
                f"{len(self.val_set)} val samples, {self.steps_per_epoch} steps per epoch; optimiser groups "
                f"({cfg.train.lr_groups}): {describe_groups(self.optimizer)}",
                highlight=False,
            )
            self.console.print(
                f"deterministic: {self.determinism.summary()}; {self.allocator.summary()}", highlight=False
            )
            if self.warmup_frozen:
                self.console.print(
                    f"epochs 1-{cfg.train.freeze_epochs}: the groups at lr_pretrained ({len(self.warmup_frozen)} "
                    "tensors) do not train (train.freeze_epochs)",
                    highlight=False,
                )
        while self.epoch < cfg.train.epochs:
            t0 = time.perf_counter()
            train_stats = self.train_one_epoch()
            record: dict[str, Any] = {
                "epoch": self.epoch + 1,
                **train_stats,
                "lr": self.optimizer.param_groups[0]["lr"],
                # what train.amp resolved to on this machine: the steps' autocast and the frozen encoders'
                "amp": self.amp,
                "encoders_amp": self.amp_choice.encoders,
            }
            if (self.epoch + 1) % cfg.train.eval_every == 0 or self.epoch + 1 == cfg.train.epochs:
                values, rows = self.validate()
                record["val"] = values
                if dist.is_main():
                    self.console.print("  val " + "  ".join(f"{k} {v:.2f}" for k, v in values.items()), highlight=False)
                # best on validation Pr@0.5; ties go to the higher meanIoU
                score = (values["Pr@0.5"], values["meanIoU"])
                if score > self.best:
                    self.best = score
                    self._on_main(functools.partial(self._write_best, values, rows), self.out / "best")
            record["seconds"] = time.perf_counter() - t0
            self.history.append(record)
            self.epoch += 1
            self.step_in_epoch = 0
            if self.epoch % max(cfg.train.save_every_epochs, 1) == 0 or self.epoch == cfg.train.epochs:
                self._save_last()
            self._on_main(lambda: atomic_write_text(self.out / "history.json", json.dumps(self.history, indent=2)))
        dist.barrier()
        return {"best_val_pr50": self.best[0], "history": self.history, "out": str(self.out)}


def train(cfg: RunConfig, out: Path, *, resume: bool = False, device: str = "auto") -> dict[str, Any]:
    """Train a model as ``cfg`` says into ``out`` (see the module docstring for what is written). The writing
    process holds ``out``'s lock throughout (:class:`~rsvg.errors.OutputLockedError` when another run has it)."""
    lock = output_lock(out, "run folder") if dist.launched_as_main() else contextlib.nullcontext()
    with lock:
        try:
            trainer = Trainer(cfg, out, resume=resume, device=device)
            try:
                return trainer.fit()
            finally:
                trainer.close()
        finally:
            dist.cleanup()
