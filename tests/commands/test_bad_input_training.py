"""Bad input to ``rsvg train`` and ``rsvg eval``, one table per command with one case per kind: non-finite options,
a run that diverges, an unknown or missing device, damaged run-folder and checkpoint files, empty or unreadable
splits, a full disk, a run folder another run holds, and an --out that cannot be written. Every case ends with
exit 2 and one message naming the option or file, never a traceback, and what was there before is left byte for
byte as it was. A new case is one line in a table."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from helpers.cli import set_args
from helpers.datasets import make_official_dataset
from helpers.models import TINY_MODEL
from rsvg.cli import app
from rsvg.engine import checkpoint as checkpoint_module
from rsvg.engine import evaluate as evaluate_module
from rsvg.engine import trainer as trainer_module
from rsvg.engine.checkpoint import STATE_FILE, find_resume, load_training_state, load_weights
from rsvg.errors import NonFiniteError
from rsvg.models.stages.rank import candidate_colours
from rsvg.output_paths import output_lock

runner = CliRunner()
LITE = "configs/mgvlf_lite.yaml"
TINY = [*TINY_MODEL, "train.epochs=1", "train.batch_size=3"]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def _names(res, part: str) -> bool:
    """Whether the command's output holds ``part``, whatever rich's line wrapping did to its spaces."""
    return "".join(part.split()) in "".join(res.output.split())


def _clean(res) -> None:
    """One message, no traceback, and no exception other than the exit."""
    assert "Traceback" not in res.output and "error: error:" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too), by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train(root: Path, out: Path, *args: str, items: tuple[str, ...] = ()):
    command = ["train", "-c", LITE, "--data", str(root), "--out", str(out), *set_args([*TINY, *items]), *args]
    return runner.invoke(app, command, terminal_width=2000)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run of the tiny lite model: ``data/`` and ``run/`` (``last/``, ``best/``)."""
    base = tmp_path_factory.mktemp("trained")
    root = make_official_dataset(base / "data")
    res = _train(root, base / "run")
    assert res.exit_code == 0, res.output
    return base


@dataclass
class Ctx:
    """What a case prepares: a fresh dataset, the run folder (a copy of the trained run for --resume cases), a
    copy of its ``best/`` checkpoint for eval, the monkeypatch and a stack for locks held during the command."""

    tmp: Path
    data: Path
    run: Path
    checkpoint: Path
    monkeypatch: pytest.MonkeyPatch
    stack: ExitStack
    out: Path = field(default=Path())


Prepare = Callable[[Ctx], list[str]]


@dataclass
class Case:
    name: str
    prepare: Prepare  # changes the inputs, returns extra arguments
    named: tuple[str, ...]  # what the message must name
    resume: bool = False  # starts from a copy of the trained run (train)
    intact: tuple[str, ...] = (".",)  # parts of the run folder (train) left byte for byte as they were
    after: Callable[[Ctx], None] | None = None  # further checks


# --- how each case breaks the input --------------------------------------------------------------------------


def _items(*items: str) -> Prepare:
    return lambda ctx: set_args(items)


def _args(*args: str) -> Prepare:
    return lambda ctx: list(args)


def _config_file(text: str) -> Prepare:
    def prepare(ctx: Ctx) -> list[str]:
        path = ctx.tmp / "config.yaml"
        path.write_text(f"base: {Path(LITE).resolve()}\n{text}")
        return ["-c", str(path)]

    return prepare


def _state_bytes(data: bytes | Callable[[bytes], bytes]) -> Prepare:
    def prepare(ctx: Ctx) -> list[str]:
        path = ctx.run / "last" / STATE_FILE
        path.write_bytes(data(path.read_bytes()) if callable(data) else data)
        return ["--resume"]

    return prepare


class _RunsCode:
    """A pickle that would create a file when loaded without ``weights_only``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _code_state(ctx: Ctx) -> list[str]:
    state = {"optimizer": {}, "payload": _RunsCode(ctx.tmp / "ran")}
    torch.save(state, ctx.run / "last" / STATE_FILE)
    return ["--resume"]


def _list_state(ctx: Ctx) -> list[str]:
    torch.save([1, 2, 3], ctx.run / "last" / STATE_FILE)
    return ["--resume"]


def _run_file(name: str, data: bytes) -> Prepare:
    def prepare(ctx: Ctx) -> list[str]:
        (ctx.run / "last" / name).write_bytes(data)
        return ["--resume"]

    return prepare


def _saved_nan_lr(ctx: Ctx) -> list[str]:
    path = ctx.run / "last" / "config.json"
    meta = json.loads(path.read_text())
    meta["run"]["train"]["lr"] = float("nan")
    path.write_text(json.dumps(meta))
    return ["--resume"]


def _diverging_epoch(ctx: Ctx) -> list[str]:
    """Epoch 2 of the trained run sees NaN image features: NaN boxes reach the ranking stage."""
    real = trainer_module.to_device

    def poisoned(batch, device, channels_last=False):
        batch = real(batch, device, channels_last)
        key = "image_features" if "image_features" in batch else "image"
        batch[key] = torch.full_like(batch[key].float(), float("nan"))
        return batch

    ctx.monkeypatch.setattr(trainer_module, "to_device", poisoned)
    return ["--resume", *set_args(["train.epochs=2"])]


def _full_disk(ctx: Ctx) -> list[str]:
    """Epoch 2's save of ``last/`` meets a full disk while writing the training state."""
    real = checkpoint_module.write_file

    def full(path: Path, data: bytes) -> None:
        if path.name == STATE_FILE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    ctx.monkeypatch.setattr(checkpoint_module, "write_file", full)
    return ["--resume", *set_args(["train.epochs=2"])]


def _full_disk_after(ctx: Ctx) -> None:
    """No temporary folder is left, and ``last/`` is what --resume reads, whole (resuming itself is tested below)."""
    assert not [p.name for p in ctx.run.iterdir() if p.name.endswith(".partial")]
    assert find_resume(ctx.run) == ctx.run / "last"
    assert load_training_state(ctx.run / "last")["epoch"] == 1
    load_weights(ctx.run / "last")


def _locked(ctx: Ctx) -> list[str]:
    ctx.stack.enter_context(output_lock(ctx.run, "run folder"))
    return []


def _out_file(ctx: Ctx) -> list[str]:
    ctx.out.parent.mkdir(parents=True, exist_ok=True)
    ctx.out.write_text("notes")
    return ["--out", str(ctx.out)]


def _split_bytes(split: str, data: bytes) -> Prepare:
    def prepare(ctx: Ctx) -> list[str]:
        (ctx.data / f"{split}.txt").write_bytes(data)
        return []

    return prepare


def _finite_last(ctx: Ctx) -> None:
    if (ctx.run / "last").exists():
        load_weights(ctx.run / "last")  # refuses NaN or infinite weights


TRAIN_CASES: list[Case] = [
    # non-finite numbers in the config
    Case("NaN learning rate", _items("train.lr=nan"), ("--set train.lr=nan", "finite")),
    Case("infinite loss weight", _items("loss.giou_weight=-inf"), ("loss.giou_weight", "finite")),
    Case("NaN in the config file", _config_file("train:\n  lr: .nan\n"), ("config.yaml", "train.lr", "finite")),
    Case("negative data.workers", _items("data.workers=-1"), ("data.workers",)),
    Case("unknown split name", _items("data.val_split=valid"), ("data.val_split", "valid")),
    Case("NaN in the saved run config", _saved_nan_lr, ("last/config.json", "train.lr", "finite"), True),
    # a finite learning rate that diverges: stopped before roi_align meets NaN boxes, nothing saved after it
    Case(
        "diverging learning rate",
        _items("train.lr=1e30", "train.batch_size=1", "train.checkpoint_every_steps=1"),
        ("training diverged at epoch 1, step", "train.lr"),
        after=_finite_last,
    ),
    Case(
        "NaN boxes in a resumed epoch",
        _diverging_epoch,
        ("training diverged at epoch 2, step 1", "NaN", "last", "intact"),
        resume=True,
        intact=("last", "best"),
    ),
    # devices
    Case("unknown device", _args("--device", "tpu"), ("--device", "tpu")),
    pytest.param(Case("CUDA without a GPU", _args("--device", "cuda"), ("--device cuda", "no CUDA GPU")), marks=NO_GPU),
    # damaged run folder on --resume
    Case("random bytes as training state", _state_bytes(os.urandom(4096)), (STATE_FILE, "without --resume"), True),
    Case("empty training state", _state_bytes(b""), (STATE_FILE, "without --resume"), True),
    Case("truncated training state", _state_bytes(lambda b: b[: len(b) // 2]), (STATE_FILE, "--resume"), True),
    Case("a list as training state", _list_state, (STATE_FILE, "not an rsvg training state"), True),
    Case("code in the training state", _code_state, (STATE_FILE, "could run code"), True),
    Case("garbage config.json", _run_file("config.json", b"{oops"), ("last/config.json", "JSON"), True),
    Case("garbage weights", _run_file("model.safetensors", b"\0" * 64), ("last/model.safetensors",), True),
    # splits
    Case("empty train split", _split_bytes("train", b""), ("train.txt", "lists no samples", "data")),
    Case("empty validation split", _split_bytes("val", b"\n"), ("val.txt", "lists no samples", "data")),
    Case("split file not UTF-8", _split_bytes("train", b"\xff\xfe1\n"), ("train.txt", "UTF-8")),
    # the run folder
    Case("full disk while saving last/", _full_disk, ("No space left", "last"), True, ("last",), _full_disk_after),
    Case("run folder locked by another run", _locked, ("another rsvg process", "run folder")),
    Case("--out is a file", _out_file, ("--out", "is a file")),
    Case("--out is the dataset", lambda ctx: ["--out", str(ctx.data)], ("--out", "is the input --data")),
]


def _ids(cases: list) -> list[str]:
    return [(c.values[0] if hasattr(c, "values") else c).name for c in cases]


def _ctx(tmp_path: Path, trained: Path, monkeypatch: pytest.MonkeyPatch, stack: ExitStack, resume: bool) -> Ctx:
    # a --resume case continues the trained run, whose config names its dataset; the others get their own copy
    data = trained / "data" if resume else tmp_path / "data"
    run = tmp_path / "run"
    if resume:
        shutil.copytree(trained / "run", run)
    else:
        shutil.copytree(trained / "data", data)
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(trained / "run" / "best", checkpoint)
    return Ctx(tmp_path, data, run, checkpoint, monkeypatch, stack, tmp_path / "outputs" / "out")


@pytest.mark.parametrize("case", TRAIN_CASES, ids=_ids(TRAIN_CASES))
def test_train(tmp_path, trained, monkeypatch, case):
    with ExitStack() as stack:
        ctx = _ctx(tmp_path, trained, monkeypatch, stack, case.resume)
        extra = case.prepare(ctx)
        before = {part: _snapshot(ctx.run / part) for part in case.intact} if case.resume else {}
        res = _train(ctx.data, ctx.run, *extra)
    _clean(res)
    assert res.exit_code == 2, res.output
    for part in case.named:
        assert _names(res, part), part
    for part, files in before.items():
        assert _snapshot(ctx.run / part) == files, f"{part} changed"
    if not case.resume:
        assert not (ctx.run / "best").exists()
    assert not (tmp_path / "ran").exists()  # nothing in a state file was run
    if case.after is not None:
        case.after(ctx)


# --- eval --------------------------------------------------------------------------------------------------------


def _checkpoint_file(name: str, data: bytes) -> Prepare:
    def prepare(ctx: Ctx) -> list[str]:
        (ctx.checkpoint / name).write_bytes(data)
        return []

    return prepare


def _nan_weights(ctx: Ctx) -> list[str]:
    path = ctx.checkpoint / "model.safetensors"
    weights = load_file(str(path))
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(path))
    return []


def _nan_in_meta(ctx: Ctx) -> list[str]:
    """A checkpoint whose config.json gives a NaN input normalisation."""
    path = ctx.checkpoint / "config.json"
    meta = json.loads(path.read_text())
    meta["std"][1] = float("nan")
    path.write_text(json.dumps(meta))
    return []


def _nan_boxes(ctx: Ctx) -> list[str]:
    """A model that answers NaN boxes (finite weights, overflowing arithmetic)."""
    real = evaluate_module.forward_batch

    def forward(model, batch, **kwargs):
        out = real(model, batch, **kwargs)
        out.boxes = torch.full_like(out.boxes, float("nan"))
        return out

    ctx.monkeypatch.setattr(evaluate_module, "forward_batch", forward)
    return []


EVAL_CASES: list[Case] = [
    Case("unknown device", _args("--device", "tpu"), ("--device", "tpu")),
    pytest.param(Case("CUDA without a GPU", _args("--device", "cuda"), ("--device cuda", "no CUDA GPU")), marks=NO_GPU),
    Case("unknown split", _args("--split", "testing"), ("--split", "testing", "train, val, test")),
    Case("empty test split", _split_bytes("test", b""), ("test.txt", "lists no samples", "data")),
    Case("split file not UTF-8", _split_bytes("test", b"\x80\x81\n"), ("test.txt", "UTF-8")),
    Case("garbage config.json", _checkpoint_file("config.json", b"\xff\xfe"), ("config.json", "UTF-8")),
    Case("config.json not a mapping", _checkpoint_file("config.json", b"5"), ("config.json", "not an rsvg")),
    Case("garbage weights", _checkpoint_file("model.safetensors", b"x" * 100), ("model.safetensors", "cannot be read")),
    Case("NaN weights", _nan_weights, ("model.safetensors", "NaN or infinite")),
    Case("NaN normalisation in config.json", _nan_in_meta, ("config.json", "NaN or infinity")),
    Case("damaged tokenizer", _checkpoint_file("text/tokenizer.json", b"{"), ("text/tokenizer.json", "JSON")),
    Case("vocabulary not text", _checkpoint_file("text/vocab.txt", b"\xff\xfe\x00" * 10), ("text/vocab.txt", "UTF-8")),
    Case("NaN boxes", _nan_boxes, ("NaN or infinite box", "checkpoint")),
    Case("--out is a file", _out_file, ("--out", "is a file")),
    Case("--out is the checkpoint", lambda ctx: ["--out", str(ctx.checkpoint)], ("--out", "is the input")),
    Case("--out holds the dataset", lambda ctx: ["--out", str(ctx.tmp)], ("--out", "holds the input")),
]


@pytest.mark.parametrize("case", EVAL_CASES, ids=_ids(EVAL_CASES))
def test_eval(tmp_path, trained, monkeypatch, case):
    with ExitStack() as stack:
        ctx = _ctx(tmp_path, trained, monkeypatch, stack, resume=False)
        default_out = tmp_path / "ev"
        extra = case.prepare(ctx)
        before = {name: _snapshot(folder) for name, folder in (("data", ctx.data), ("checkpoint", ctx.checkpoint))}
        outputs = _snapshot(tmp_path / "outputs") if (tmp_path / "outputs").exists() else {}
        command = ["eval", "--checkpoint", str(ctx.checkpoint), "--data", str(ctx.data), "--workers", "0"]
        res = runner.invoke(app, [*command, "--out", str(default_out), *extra], terminal_width=2000)
    _clean(res)
    assert res.exit_code == 2, res.output
    for part in case.named:
        assert _names(res, part), part
    assert "meanIoU" not in res.output  # no metrics, NaN or otherwise
    assert not default_out.exists()
    for name, folder in (("data", ctx.data), ("checkpoint", ctx.checkpoint)):
        assert _snapshot(folder) == before[name], f"{name} changed"
    if outputs:
        assert _snapshot(tmp_path / "outputs") == outputs


def test_eval_default_out_lies_inside_the_checkpoint(tmp_path, trained):
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(trained / "run" / "best", checkpoint)
    command = ["eval", "--checkpoint", str(checkpoint), "--data", str(trained / "data"), "--workers", "0"]
    res = runner.invoke(app, command, terminal_width=2000)
    assert res.exit_code == 0, res.output
    assert (checkpoint / "eval_test" / "metrics.json").is_file()


# --- the training state: plain data, read safely, older states still resume ---------------------------------------


def test_training_state_is_plain_data(trained):
    state = torch.load(trained / "run" / "last" / STATE_FILE, weights_only=True)  # no allow-list needed
    name, keys, *_ = state["rng"][0]["numpy"]
    assert name == "MT19937" and isinstance(keys, list)


def test_state_with_a_numpy_rng_array_still_resumes(tmp_path, trained):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    path = run / "last" / STATE_FILE
    state = torch.load(path, weights_only=True)
    for rng in state["rng"]:
        name, keys, *rest = rng["numpy"]
        rng["numpy"] = (name, np.asarray(keys, dtype=np.uint32), *rest)
    torch.save(state, path)
    assert b"numpy" in path.read_bytes()  # the array really is pickled
    res = _train(trained / "data", run, "--resume", items=("train.epochs=2",))
    assert res.exit_code == 0, res.output
    assert "resumed from" in res.output


# --- the guards themselves ---------------------------------------------------------------------------------------


def test_ranking_refuses_nan_boxes_before_roi_align():
    colours = torch.rand(1, 3, 16, 16)
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [float("nan"), 0.2, 0.3, 0.4]]])
    with pytest.raises(NonFiniteError, match="candidate ranking"):
        candidate_colours(colours, boxes)
    assert candidate_colours(colours, boxes.nan_to_num(0.5)).isfinite().all()


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="needs the /dev/full device")
def test_a_full_disk_is_an_os_error():
    with pytest.raises(OSError) as info:
        checkpoint_module.write_file(Path("/dev/full"), b"x" * 65536)
    assert info.value.errno == errno.ENOSPC


ANY_RANK_SCRIPT = """
import sys
import torch.distributed as dist
import torch.multiprocessing as mp
from rsvg.engine.distributed import any_rank


def worker(rank, init, out):
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=2)
    found = [any_rank(rank == 1), any_rank(False)]  # only rank 1 sees a NaN; then nobody does
    open(f"{out}.{rank}", "w").write(" ".join(map(str, found)))
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1], sys.argv[2]), nprocs=2, join=True)
"""


def test_every_rank_learns_that_one_rank_must_stop(tmp_path):
    script = tmp_path / "any_rank.py"
    script.write_text(ANY_RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), str(tmp_path / "init"), str(tmp_path / "found")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [(tmp_path / f"found.{rank}").read_text() for rank in (0, 1)] == ["True False", "True False"]
