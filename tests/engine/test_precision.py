"""Choosing the inference precision: auto follows the hardware's native bf16 units, and says why."""

from __future__ import annotations

import pytest
import torch

from rsvg.engine.precision import cpu_bf16_flags, resolve_precision

ZEN4 = "processor : 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags : fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
ZEN3 = "flags : fpu sse2 avx2 fma\n"


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    assert cpu_bf16_flags(ZEN4) == ["avx512_bf16"]
    assert cpu_bf16_flags(SAPPHIRE_RAPIDS) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16_flags(ZEN3) == [] and cpu_bf16_flags("") == []


def test_auto_on_a_cpu_follows_its_bf16_units() -> None:
    p = resolve_precision("auto", "cpu", cpuinfo=SAPPHIRE_RAPIDS)
    assert (p.name, p.amp) == ("bf16", "bf16") and "amx_bf16" in p.describe()
    p = resolve_precision("auto", "cpu", cpuinfo=ZEN3)
    assert (p.name, p.amp) == ("fp32", "off") and "no native bf16" in p.describe()


def test_an_explicit_precision_is_kept_and_a_wrong_one_named() -> None:
    assert resolve_precision("fp32", "cpu", cpuinfo=SAPPHIRE_RAPIDS).name == "fp32"
    assert resolve_precision("bf16", "cpu", cpuinfo=ZEN3).amp == "bf16"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        resolve_precision("fp16", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without CUDA")
def test_auto_on_cuda_without_a_gpu_stays_fp32() -> None:
    assert resolve_precision("auto", "cuda").name == "fp32"
