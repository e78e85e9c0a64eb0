"""``rsvg demo``: every step of the main job, each reused while its inputs are unchanged.

Steps and outputs (under ``OUT``):

=========  =====================  =====================================================================
step       output                 the command that re-runs it alone
=========  =====================  =====================================================================
synth      scenes/                rsvg synth OUT/scenes --images N --seed S
build      rsvg/                  rsvg build OUT/scenes OUT/rsvg --seed S
check      (printed)              rsvg check-data OUT/rsvg
stats      stats/                 rsvg stats OUT/rsvg OUT/stats
train      run/                   rsvg train -c CONFIG --data OUT/rsvg --out OUT/run --set ...
eval       eval/                  rsvg eval --checkpoint OUT/run/best --data OUT/rsvg --split test
gallery    gallery/               rsvg ground --checkpoint OUT/run/best IMAGE "QUERY"
report     report.html
=========  =====================  =====================================================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from rsvg.demo.stamps import Stamps, make_key


def trained_precision(run: Path) -> tuple[str, str]:
    """``(steps, encoders)``: the autocast a training run's steps and frozen encoders used (``off``, ``bf16`` or
    ``fp16``: what ``train.amp`` resolved to), as its last epoch in ``run/history.json`` records them."""
    last = (json.loads((run / "history.json").read_text()) or [{}])[-1]
    return last.get("amp", "off"), last.get("encoders_amp", "off")


@dataclass
class DemoOptions:
    """What the demo builds and trains; each option only invalidates the steps that depend on it."""

    out: Path = Path("demo_out")
    images: int = 2700
    size: int = 800
    seed: int = 0
    config: Path = Path("configs/mgvlf_lite.yaml")
    epochs: int | None = 2  # None: the config's
    overrides: list[str] = field(default_factory=list)
    workers: int = 2
    gallery: int = 12


@dataclass
class DemoResult:
    # step -> {"seconds", "reused", "command"}, and for a reused step "ran_seconds": its time when it ran
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


class Demo:
    """Runs the steps in order; each step decides from its stamp whether to run or reuse."""

    def __init__(self, opts: DemoOptions, console: Console | None = None) -> None:
        self.o = opts
        self.out = Path(opts.out)
        self.console = console or Console()
        self.stamps = Stamps(self.out)
        self.result = DemoResult()
        self.keys: dict[str, str] = {}
        self._image_features: dict[str, Any] | None = None  # the training's backbone maps, when it ran here

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _step(self, name: str, key: str, outputs: list[Path], command: str, run: Callable[[], dict | None]) -> None:
        self.keys[name] = key
        t0 = time.perf_counter()
        if self.stamps.is_fresh(name, key) and all(p.exists() for p in outputs):
            self.console.print(f"[bold]{name}[/bold]: up to date, reused ({command})")
            # ran_seconds: the wall time the step took when it ran, as its stamp keeps it (None for older stamps)
            ran = self.stamps.info(name).get("seconds")
            self.result.steps[name] = {"seconds": 0.0, "reused": True, "command": command, "ran_seconds": ran}
            return
        self.console.rule(f"{name}: {command}")
        if name != "train":  # training resumes from its own checkpoint when the key matches
            self.stamps.invalidate(name, *outputs)
        info = run() or {}
        seconds = time.perf_counter() - t0  # the step's wall time: the one number the report prints for it
        self.stamps.mark(name, key, {**info, "seconds": seconds})
        self.result.steps[name] = {"seconds": seconds, "reused": False, "command": command}

    # -- steps ------------------------------------------------------------------------------------------------
    def synth(self) -> None:
        from rsvg.synth import write_synthetic_dataset

        o, dst = self.o, self.out / "scenes"
        cmd = f"rsvg synth {dst} --images {o.images} --seed {o.seed} --size {o.size} --workers {o.workers}"

        def run() -> dict:
            s = write_synthetic_dataset(dst, o.images, seed=o.seed, size=o.size, workers=o.workers, overwrite=True)
            self.console.print(f"{s.images} scenes, {s.objects} objects in {s.seconds:.1f} s")
            return {"objects": s.objects}

        self._step("synth", make_key(images=o.images, seed=o.seed, size=o.size, v=1), [dst], cmd, run)

    def build(self) -> None:
        from rsvg.construct.build import build_dataset
        from rsvg.reports import print_summary

        src, dst = self.out / "scenes", self.out / "rsvg"
        cmd = f"rsvg build {src} {dst} --seed {self.o.seed} --workers {self.o.workers}"

        def run() -> dict:
            summary = build_dataset(src, dst, seed=self.o.seed, workers=self.o.workers, overwrite=True)
            print_summary(summary, self.console)
            return {"expressions": summary.expressions}

        # v: the builder's wording (v2: DIOR-RSVG's words only); a demo folder built with other words builds again
        self._step("build", make_key(up=self.keys["synth"], seed=self.o.seed, v=2), [dst], cmd, run)

    def check(self) -> None:
        from rsvg.data.check import check_dataset
        from rsvg.reports import print_report

        root = self.out / "rsvg"
        self.console.rule(f"check: rsvg check-data {root}")
        t0 = time.perf_counter()
        report = check_dataset(root)
        print_report(report, self.console, max_problems=20)
        if not report.ok:
            raise RuntimeError(f"{root} failed its check; see the problems above")
        seconds = time.perf_counter() - t0
        self.result.steps["check"] = {"seconds": seconds, "reused": False, "command": f"rsvg check-data {root}"}

    def stats(self) -> None:
        from rsvg.construct.stats import dataset_stats

        root, dst = self.out / "rsvg", self.out / "stats"
        self._step(
            "stats",
            make_key(up=self.keys["build"], v=1),
            [dst],
            f"rsvg stats {root} {dst}",
            lambda: {"written": bool(dataset_stats(root, dst))},
        )

    def _train_overrides(self) -> list[str]:
        extra = [f"data.root={self.out / 'rsvg'}"]
        if self.o.epochs is not None:
            extra.append(f"train.epochs={self.o.epochs}")
        return [*extra, *self.o.overrides]

    def train(self) -> None:
        from rsvg.config import load_config
        from rsvg.engine import distributed as dist
        from rsvg.engine.checkpoint import find_resume
        from rsvg.engine.trainer import Trainer

        cfg_path = self.o.config
        if not cfg_path.is_file():
            raise FileNotFoundError(f"demo config not found: {cfg_path} (run from the repository root)")
        overrides = self._train_overrides()
        run_dir = self.out / "run"
        # the data is identified by the build step's key, not by its path (a moved demo folder is still fresh)
        options = [x for x in overrides if not x.startswith("data.root=")]
        key = make_key(up=self.keys["build"], config=cfg_path.read_text(), overrides=options, v=1)
        sets = " ".join(f"--set {x}" for x in overrides if not x.startswith("data.root="))
        cmd = f"rsvg train -c {cfg_path} --data {self.out / 'rsvg'} --out {run_dir} {sets}".strip()

        def run() -> dict:
            cfg = load_config(cfg_path, overrides)
            key_file = run_dir / ".demo_key"
            resume = find_resume(run_dir) is not None and key_file.is_file() and key_file.read_text() == key
            if not resume and run_dir.exists():
                self.stamps.invalidate("train", run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(key)
            t0 = time.perf_counter()
            try:
                trainer = Trainer(cfg, run_dir, resume=resume)
                try:
                    result = trainer.fit()
                finally:
                    trainer.close()
            finally:
                dist.cleanup()
            # the test images are mostly the train/val images (DIOR-RSVG's split shares images): the test step
            # reuses the frozen backbone's maps instead of computing them again
            self._image_features = trainer.image_features
            return {"best_val_pr50": result["best_val_pr50"], "train_seconds": time.perf_counter() - t0}

        self._step("train", key, [run_dir / "best", run_dir / "history.json"], cmd, run)

    def evaluate(self) -> None:
        from rsvg.data.xmlio import atomic_write_text
        from rsvg.engine.evaluate import eval_loader, metrics_from_rows, predict, write_predictions
        from rsvg.engine.feature_cache import compute_image_features
        from rsvg.inference import Grounder

        ckpt, root, dst = self.out / "run" / "best", self.out / "rsvg", self.out / "eval"
        # the test split as the model was trained (what train.amp resolved to on this machine): the model in its
        # steps' precision, the test images' backbone maps in its frozen encoders'
        steps_amp, encoders_amp = trained_precision(self.out / "run")
        precision = "bf16" if steps_amp == "bf16" else "fp32"
        cmd = f"rsvg eval --checkpoint {ckpt} --data {root} --split test --out {dst} --precision {precision}"

        def run() -> dict:
            g = Grounder.from_checkpoint(ckpt, precision=precision)
            ds = g.dataset(root, "test")
            features, reused = self._image_features, 0
            if features is not None:
                reused = len({s.image_id for s in ds.samples} & features.keys())
                missing = [s for s in ds.samples if s.image_id not in features]
                computed = compute_image_features(g.model, missing, g.device, batch_size=16, amp=encoders_amp)
                features = {**features, **computed}
                ds.load_images, ds.image_features = False, features
            loader = eval_loader(ds, 64, 0, g.device)
            rows = predict(g.model, loader, g.device, image_size=g.image_size, amp=g.precision.amp)
            self._image_features = None  # ~0.2 MB per image; nothing after this step needs them
            report = metrics_from_rows(rows)
            self.console.print(report.table(), markup=False, highlight=False)
            atomic_write_text(dst / "metrics.json", report.to_json())
            write_predictions(dst / "predictions.jsonl", rows)
            return {
                "Pr@0.5": report.overall.values["Pr@0.5"],
                "images_on_training_maps": reused,
                "precision": g.precision.name,
            }

        key = make_key(up=self.keys["train"], precision=precision, encoders=encoders_amp, v=1)
        self._step("eval", key, [dst / "metrics.json"], cmd, run)

    def gallery(self) -> None:
        from rsvg.demo.gallery import make_gallery

        ckpt, dst = self.out / "run" / "best", self.out / "gallery"
        self._step(
            "gallery",
            make_key(up=self.keys["eval"], n=self.o.gallery, v=1),
            [dst / "gallery.json"],
            f'rsvg ground --checkpoint {ckpt} IMAGE "QUERY"',
            lambda: {
                "items": len(
                    make_gallery(ckpt, self.out / "rsvg", self.out / "eval" / "predictions.jsonl", dst, self.o.gallery)
                )
            },
        )

    def report(self) -> Path:
        from rsvg.demo.baselines import blind_pick_baseline, prior_box_baseline
        from rsvg.demo.report import write_report

        root = self.out / "rsvg"
        baselines = {
            "prior box (query-blind)": prior_box_baseline(root),
            "blind pick among the image's objects": blind_pick_baseline(root),
        }
        path = write_report(self.out, self.result.steps, baselines)
        self.result.metrics = json.loads((self.out / "eval" / "metrics.json").read_text())
        self.result.metrics["baselines"] = baselines
        return path

    def run_all(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        for step in (self.synth, self.build, self.check, self.stats, self.train, self.evaluate, self.gallery):
            step()
        return self.report()
