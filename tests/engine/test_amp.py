"""Mixed precision in training: what ``train.amp`` resolves to and why, and the fp32 the loss reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pytest
import torch

from rsvg.config import load_config
from rsvg.engine.amp import AmpChoice, choose_amp, in_fp32, resolve_amp

ZEN4 = "processor : 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags : fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
ZEN3 = "flags : fpu sse2 avx2 fma\n"
CPU = torch.device("cpu")


def test_auto_on_a_cpu_follows_its_bf16_units_and_says_why() -> None:
    assert choose_amp("auto", CPU, cpuinfo=ZEN4) == AmpChoice("bf16", "bf16", "auto: the CPU has avx512_bf16")
    both = choose_amp("auto", CPU, cpuinfo=SAPPHIRE_RAPIDS)
    assert (both.step, both.encoders, both.reason) == ("bf16", "bf16", "auto: the CPU has amx_bf16 and avx512_bf16")
    none = choose_amp("auto", CPU, cpuinfo=ZEN3)
    assert (none.step, none.encoders) == ("off", "off") and "no native bf16" in none.reason
    assert choose_amp("auto", CPU, cpuinfo=ZEN3, trains_backbone=False)[:2] == ("off", "off")


def test_auto_keeps_a_frozen_backbones_steps_in_fp32_and_the_encoders_in_bf16() -> None:
    # with a frozen backbone the steps are not faster in bf16 on a CPU (measured): only the encoders are
    choice = choose_amp("auto", CPU, trains_backbone=False, cpuinfo=ZEN4)
    assert (choice.step, choice.encoders) == ("off", "bf16")
    assert "the steps in fp32 (faster with a frozen backbone)" in choice.reason
    assert resolve_amp("auto", CPU, cpuinfo=ZEN4) == "bf16"  # a backbone that trains


def test_an_explicit_setting_is_kept_and_a_wrong_one_named() -> None:
    assert choose_amp("off", CPU, cpuinfo=SAPPHIRE_RAPIDS) == AmpChoice("off", "off", "train.amp asks for it")
    assert choose_amp("bf16", CPU, trains_backbone=False, cpuinfo=ZEN3)[:2] == ("bf16", "bf16")  # emulated: slow
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        choose_amp("fp16", CPU)
    with pytest.raises(ValueError, match=r"train\.amp must be auto, off, bf16 or fp16"):
        choose_amp("fp32", CPU)


def test_a_bare_off_in_yaml_means_off() -> None:
    # YAML reads ``off`` as false; ``--set train.amp=off`` and ``amp: off`` in a file mean the setting "off"
    assert load_config(None, ["train.amp=off"]).train.amp == "off"
    assert load_config(None, ["train.amp=bf16"]).train.amp == "bf16"


class Pair(NamedTuple):
    a: torch.Tensor
    b: int


@dataclass
class Record:
    scores: torch.Tensor
    parts: dict
    name: str = "x"


def test_in_fp32_casts_every_half_tensor_and_keeps_the_rest() -> None:
    x = torch.ones(2, dtype=torch.bfloat16, requires_grad=True)
    out = {
        "boxes": x * 2,
        "stages": [Record(x.half(), {"i": torch.arange(3), "d": torch.ones(1, dtype=torch.float64)})],
        "pair": Pair(x + 1, 7),
        "t": (x, None),
    }
    got = in_fp32(out)
    assert got["boxes"].dtype == torch.float32 and got["t"][0].dtype == torch.float32 and got["t"][1] is None
    record = got["stages"][0]
    assert isinstance(record, Record) and record.scores.dtype == torch.float32 and record.name == "x"
    assert record.parts["i"].dtype == torch.int64 and record.parts["d"].dtype == torch.float64
    assert isinstance(got["pair"], Pair) and got["pair"].a.dtype == torch.float32 and got["pair"].b == 7
    got["boxes"].sum().backward()  # the casts are differentiable: the gradient reaches the bf16 input
    assert x.grad is not None and torch.equal(x.grad.float(), torch.full((2,), 2.0))
