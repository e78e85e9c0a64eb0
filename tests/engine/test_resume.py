"""Exact resume: a run killed with SIGKILL and continued with --resume ends bit-identical to an uninterrupted one,
with the lite config's caches (frozen backbone and text encoder) and every training stage on; the text cache does
not depend on batching; train.deterministic says what it switched on and restores it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.cli import set_args
from helpers.models import TINY_MODEL
from rsvg.config import load_config
from rsvg.engine.determinism import deterministic_mode, mkl_cnr_mode
from rsvg.engine.trainer import train
from rsvg.models.text_encoder import TextEncoder

LITE = "configs/mgvlf_lite.yaml"
# the lite config at the tiny test size: frozen backbone and text encoder (both cached), second look, object head,
# ranking and refinement; one sample a step and a checkpoint after every step; fp32 named, since the killed run is
# another process, which resolves train.amp auto by this machine's CPU (the suite's fp32 default is in-process)
KILL_RUN = [*TINY_MODEL, "train.epochs=12", "train.batch_size=1", "train.checkpoint_every_steps=1", "train.seed=3"]
KILL_RUN.append("train.amp=off")


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


@pytest.mark.slow
def test_killed_run_resumes_exactly(official_dataset, tmp_path):
    straight = tmp_path / "straight"
    train(load_config(LITE, [*KILL_RUN, f"data.root={official_dataset}"]), straight)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rsvg.cli", "train", "-c", LITE, "--data", str(official_dataset), "--out", str(killed)]
    proc = subprocess.Popen([*cmd, *set_args(KILL_RUN)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_file = killed / "last" / "training_state.pt"
    deadline = time.monotonic() + 240
    while not state_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few steps in, wherever that lands: the last complete checkpoint must be enough
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    state = torch.load(state_file, weights_only=False)
    assert state["epoch"] < 12  # it was interrupted before the end

    res = subprocess.run([*cmd, "--resume", *set_args(KILL_RUN)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "resumed from" in res.stdout
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, first {differ[0]}"
    ha = json.loads((straight / "history.json").read_text())
    hb = json.loads((killed / "history.json").read_text())
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]  # the interrupted epoch counts all its steps
    assert [h["val"] for h in ha] == [h["val"] for h in hb]


def test_cached_text_features_do_not_depend_on_the_batch():
    enc = TextEncoder("minilm", freeze=True).eval()
    enc.cache_enabled = True
    tok = enc.tokenizer()
    short, long = "a ship", "the large white storage tank on the upper left of the small bridge in the middle"
    rows = [tok.encode(q, 32) for q in (short, long)]
    ids = torch.tensor([r[0] for r in rows])
    mask = torch.tensor([r[1] for r in rows])
    n_short, n_long = int(mask[0].sum()), int(mask[1].sum())
    with torch.no_grad():
        # the short query first seen beside the long one (padded to its length) ...
        together_words, together_sentence = enc(ids[:, :n_long], mask[:, :n_long])
        enc._cache.clear()
        # ... and first seen alone, trimmed to its own length
        alone_words, alone_sentence = enc(ids[:1, :n_short], mask[:1, :n_short])
    assert torch.equal(together_words[0, :n_short], alone_words[0])
    assert torch.equal(together_words[0, n_short:], torch.zeros_like(together_words[0, n_short:]))
    assert torch.equal(together_sentence[0], alone_sentence[0])

    # precompute fills the cache with exactly what the batch path serves
    enc._cache.clear()
    assert enc.precompute([ids[0, :n_short].tolist(), ids[1, :n_long].tolist(), ids[0, :n_short].tolist()]) == 2
    with torch.no_grad():
        words, sentence = enc(ids[:, :n_long], mask[:, :n_long])
    assert len(enc._cache) == 2
    assert torch.equal(words[0, :n_short], alone_words[0]) and torch.equal(sentence[0], alone_sentence[0])


def test_deterministic_mode_switches_on_and_restores():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.deterministic)
    with deterministic_mode(True) as det:
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.mkldnn.deterministic
        assert det.threads == torch.get_num_threads()
        # rsvg is imported before the first matrix product of the test process (conftest), so MKL runs in
        # strict CNR here, on any CPU
        assert det.mkl in ("strict", "no-mkl") and det.exact
        assert "deterministic algorithms" in det.summary()
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.deterministic) == before
    with deterministic_mode(False) as det:
        assert not det.exact and "off" in det.summary()
        assert not torch.are_deterministic_algorithms_enabled()


def test_user_mkl_setting_is_kept():
    # MKL_CBWR set by the user wins over rsvg's request; the mode is reported as it is
    env = {**os.environ, "MKL_CBWR": "AUTO"}
    code = (
        "import rsvg, torch; torch.ones(8, 8) @ torch.ones(8, 8); "
        "from rsvg.engine.determinism import mkl_cnr_mode; print(mkl_cnr_mode())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("cnr", "no-mkl")
    assert mkl_cnr_mode() in ("strict", "no-mkl")
