"""`auto` precision: bf16 on CPUs with native bf16 matrix units (simulated both ways), and only
while bf16 masks are recorded to agree with fp32."""
from __future__ import annotations

import pytest
import torch

from segearth import runtime as runtime_module
from segearth.errors import InputError
from segearth.runtime import cpu_has_native_bf16, resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("flags, native", [
    ({"avx512f", "avx512_bf16"}, True),   # AMD Zen 4, Intel Cooper Lake
    ({"avx512f", "amx_bf16", "amx_tile"}, True),  # Intel Sapphire Rapids and later
    ({"avx2", "avx512f", "avx512bw"}, False),  # AVX-512 without bf16: emulated, slower than fp32
    (set(), False),  # flags unknown (not Linux): no guessing
])
def test_native_bf16_is_read_from_the_cpu_flags(flags, native):
    assert cpu_has_native_bf16(flags) is native


def test_auto_on_a_cpu_with_native_bf16(monkeypatch):
    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    monkeypatch.setattr(runtime_module, "BF16_AGREES_ON_CPU", True)
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(runtime_module, "BF16_AGREES_ON_CPU", False)  # masks would disagree
    assert resolve_precision("auto", CPU) == "fp32"


def test_auto_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(runtime_module, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(runtime_module, "BF16_AGREES_ON_CPU", True)
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"  # asked for explicitly, it still runs
    with pytest.raises(InputError, match="fp16 needs a GPU"):
        resolve_precision("fp16", CPU)

