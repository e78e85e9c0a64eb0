"""The allocator keeps freed memory: a training step's large tensors reuse mapped pages instead of faulting."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from rsvg.engine import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Six forward/backward passes of a small MLP on a large batch (tens of MB of activations and gradients each): the
# page faults of the last four, after the heap has grown to the step's size.
_PROBE = textwrap.dedent(
    """
    import json, resource, sys, torch
    from rsvg.engine.allocator import keep_freed_memory
    state = keep_freed_memory() if sys.argv[1] == "keep" else None
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 256))
    x = torch.randn(8192, 256)
    faults = []
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(x).square().mean().backward()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"faults": sum(faults[2:]), "kept": state.kept if state else False,
                      "reason": state.reason if state else ""}))
    """
)


def _probe(mode: str, env: dict[str, str] | None = None) -> dict:
    run_env = {**os.environ, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, env=run_env, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the allocator setting is glibc's")
def test_kept_memory_is_reused_without_page_faults() -> None:
    default = _probe("default")
    kept = _probe("keep", {allocator.ENV: "1"})
    assert kept["kept"], kept["reason"]
    # the system default maps each step's large tensors afresh (about 30,000 faults a step here); kept memory is
    # mostly mapped already (glibc's aligned allocations still grow the heap now and then)
    assert default["faults"] > 40000, default
    assert kept["faults"] < default["faults"] / 3, (kept, default)


@pytest.mark.skipif(not GLIBC, reason="the allocator setting is glibc's")
def test_environment_variable_keeps_the_system_default() -> None:
    out = _probe("keep", {allocator.ENV: "0"})
    assert not out["kept"]
    assert out["reason"] == f"{allocator.ENV}=0"
    assert out["faults"] > 40000, out


def test_state_reads_what_was_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_state", allocator.AllocatorState(False, "not set by rsvg"))
    monkeypatch.setenv(allocator.ENV, "0")
    state = allocator.keep_freed_memory()
    assert state is allocator.allocator_state()
    assert state.summary() == f"allocator system default ({allocator.ENV}=0)"
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    monkeypatch.setenv(allocator.ENV, "1")
    assert allocator.keep_freed_memory().reason == "the C library is not glibc"
