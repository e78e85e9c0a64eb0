"""The plan of a benchmark: for every row, the config it trains, its folder, the key that says whether a finished row
can be reused, and the two commands (``rsvg train`` and ``rsvg eval``) that run it alone.

A row's key is a hash of its resolved config (file, overrides and the benchmark's ``--set`` options together), the
seed and the data's fingerprint (:func:`data_fingerprint`): a row whose key is unchanged is reused, any change runs it
again.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

from rsvg.benchmark.rows import Row, missing_weights, weight_overrides
from rsvg.config import RunConfig, load_config
from rsvg.data.dior_rsvg import SPLITS, read_split_file
from rsvg.demo.stamps import make_key
from rsvg.errors import DatasetError

__all__ = [
    "FEATURE_CACHE",
    "OFFICIAL_SIZES",
    "RowPlan",
    "data_fingerprint",
    "is_official_split",
    "plan_rows",
    "rsvg_argv",
]


def data_fingerprint(root: Path) -> str:
    """A hash of what a benchmark reads from the dataset ``root``: its split files' contents and, for every
    annotation and image file, its name and size (a changed file of the same size is not seen: cheap enough to run
    on every call for DIOR-RSVG's 17,402 images)."""
    digest = hashlib.sha256()
    for split in SPLITS:
        path = root / f"{split}.txt"
        digest.update(split.encode() + (path.read_bytes() if path.is_file() else b"-"))
    for folder in ("Annotations", "JPEGImages"):
        if (root / folder).is_dir():
            for path in sorted((root / folder).iterdir()):
                digest.update(f"{folder}/{path.name}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:16]


#: the folder in a benchmark's output where the rows keep their frozen backbones' maps
FEATURE_CACHE = "feature_cache"


@dataclass
class RowPlan:
    """What the benchmark does for one row (``config`` ``None``: the row has no such variant and is listed only)."""

    row: Row
    variant: str
    config: str | None
    overrides: list[str]
    folder: Path
    key: str

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    @property
    def eval_dir(self) -> Path:
        return self.folder / "eval"

    def train_args(self, data: Path) -> list[str]:
        """``rsvg train``'s arguments (after the program name) for this row."""
        assert self.config is not None
        sets = [a for o in self.overrides for a in ("--set", o)]
        return ["train", "-c", self.config, "--data", str(data), "--out", str(self.run_dir), *sets]

    def eval_args(self, data: Path) -> list[str]:
        """``rsvg eval``'s arguments on the test split, with the best checkpoint."""
        return ["eval", "--checkpoint", str(self.run_dir / "best"), "--data", str(data), "--split", "test",
                "--out", str(self.eval_dir)]  # fmt: skip

    def commands(self, data: Path, nproc_per_node: int = 1) -> list[str]:
        """The shell commands that run this row alone: its training (under ``torchrun`` with ``nproc_per_node`` >
        1) and its evaluation."""
        return [
            shlex.join(rsvg_argv(self.train_args(data), nproc_per_node)),
            shlex.join(rsvg_argv(self.eval_args(data))),
        ]


def rsvg_argv(args: list[str], nproc_per_node: int = 1, python: str | None = None) -> list[str]:
    """The command line that runs ``rsvg ARGS``: the ``rsvg`` program, or ``python -m rsvg.cli`` with ``python``
    given (the benchmark runs its rows with its own interpreter); under ``torchrun`` for ``nproc_per_node`` > 1."""
    if nproc_per_node > 1:
        launcher = [python, "-m", "torch.distributed.run"] if python else ["torchrun"]
        return [*launcher, "--nproc_per_node", str(nproc_per_node), "-m", "rsvg.cli", *args]
    return [python, "-m", "rsvg.cli", *args] if python else ["rsvg", *args]


def _precision(cfg: RunConfig) -> dict:
    """What ``train.amp`` resolves to on this machine, for a row's key when it is not fp32 throughout: ``auto``
    trains in bf16 on one machine and fp32 on another, and a row is reused only where it would compute the same."""
    import torch

    from rsvg.engine.amp import choose_amp_for

    choice = choose_amp_for(cfg, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return {} if (choice.step, choice.encoders) == ("off", "off") else {"amp": [choice.step, choice.encoders]}


def plan_rows(
    rows: list[Row],
    variant: str,
    data: Path,
    out: Path,
    overrides: list[str],
    seed: int = 0,
    weights: Path | None = None,
) -> list[RowPlan]:
    """The plan of ``rows`` in ``variant`` on ``data``, each in ``out/rows/NAME``: the row's config with its own
    overrides, its pretrained files in ``weights`` (paper variant; :func:`~rsvg.benchmark.rows.weight_overrides`),
    the shared feature folder ``out/feature_cache`` (rows with the same frozen backbone compute its maps once,
    :mod:`rsvg.engine.feature_store`), then the benchmark's ``overrides`` (e.g. a shorter ``train.epochs`` for every
    row), then the seed. Every config is loaded and every pretrained file looked for, so a bad option or a missing
    file fails here (all missing files named at once), before anything trains."""
    if weights is not None and variant != "paper":
        raise ValueError("--weights names the paper variant's pretrained files; the lite rows read theirs from "
                         "installed packages")  # fmt: skip
    if weights is not None:
        missing = missing_weights([r for r in rows if r.config(variant) is not None], weights)
        if missing:
            raise ValueError(missing)
    fingerprint = data_fingerprint(data)
    plans = []
    for row in rows:
        chosen = row.config(variant)
        folder = out / "rows" / row.name
        if chosen is None:
            plans.append(RowPlan(row, variant, None, [], folder, ""))
            continue
        config, own = chosen
        files = weight_overrides(row, weights) if weights is not None else []
        options = [*own, *files, f"train.feature_cache_dir={out / FEATURE_CACHE}", *overrides, f"train.seed={seed}"]
        try:
            cfg = load_config(config, options)
        except Exception as exc:  # a config error names the option; say which row it is
            raise ValueError(f"row {row.name} ({config}): {exc}") from exc
        resolved = cfg.to_dict()
        resolved["train"].pop("feature_cache_dir")  # where maps are kept, not what the row computes
        key = make_key(config=resolved, data=fingerprint, variant=variant, v=1, **_precision(cfg))
        plans.append(RowPlan(row, variant, config, options, folder, key))
    return plans


#: DIOR-RSVG's official split sizes (train, val, test) in its published split files: 38,320 expressions, their
#: global object indices 0..38319
OFFICIAL_SIZES = {"train": 26_991, "val": 3_829, "test": 7_500}


def is_official_split(root: Path) -> bool:
    """Whether ``root`` holds DIOR-RSVG's official split: its three split files have the official sizes, are
    disjoint and together cover the indices 0..38319."""
    seen: set[int] = set()
    for split, size in OFFICIAL_SIZES.items():
        try:
            indices = set(read_split_file(root / f"{split}.txt"))
        except DatasetError:  # missing, or not a list of indices
            return False
        if len(indices) != size or seen & indices:
            return False
        seen |= indices
    return seen == set(range(sum(OFFICIAL_SIZES.values())))
