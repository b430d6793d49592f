"""Device and precision choice (litesr.device): what ``auto`` means per CPU family and GPU, CPU flags mocked."""

from __future__ import annotations

import pytest
import torch

import litesr.device as device
import litesr.fast as fast
from litesr.device import choose_precision, cpu_family
from litesr.errors import ConfigError

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl"}
AVX512_BF16 = AVX512 | {"avx512_bf16"}
AMX = AVX512_BF16 | {"amx_bf16", "amx_tile", "amx_int8"}


@pytest.mark.parametrize("flags,family", [(AVX2, "avx2"), (AVX512, "avx512"), (AVX512_BF16, "avx512_bf16"),
                                          (AMX, "amx"), (frozenset({"sse2"}), "other")])
def test_cpu_family_is_read_off_the_flags(flags, family):
    assert cpu_family(flags) == family


@pytest.mark.parametrize("flags,expected", [(AVX2, "fp32"), (AVX512, "fp32"), (AVX512_BF16, "fp32"), (AMX, "bf16")])
def test_auto_on_the_cpu_is_bf16_only_with_amx(flags, expected):
    choice = choose_precision("auto", "cpu", flags=flags)
    assert choice.precision == expected and choice.requested == "auto"
    assert str(choice).startswith(f"precision auto -> {expected}: ")


def test_the_reason_names_what_was_read():
    assert "avx2" in choose_precision("auto", "cpu", flags=AVX2).reason
    assert "amx_bf16" in choose_precision("auto", "cpu", flags=AMX).reason
    assert "no AMX" in choose_precision("auto", "cpu", flags=AVX512_BF16).reason


def test_explicit_bf16_on_a_cpu_without_bf16_runs_emulated_and_says_so():
    choice = choose_precision("bf16", "cpu", flags=AVX2)
    assert choice.precision == "bf16" and "emulated" in choice.reason and "avx2" in choice.reason
    assert "emulated" not in choose_precision("bf16", "cpu", flags=AVX512_BF16).reason


def test_fp16_on_the_cpu_and_unknown_precisions_are_refused():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        choose_precision("fp16", "cpu", flags=AMX)
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        choose_precision("fp8", "cpu", flags=AMX)


@pytest.mark.parametrize("bf16,expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_is_bf16_where_the_gpu_has_it_else_fp16(bf16, expected):
    # One rule for inference and training (they disagreed before: fp16 in one, fp32 in the other).
    assert choose_precision("auto", torch.device("cuda"), cuda_bf16=bf16).precision == expected
    if not bf16:
        with pytest.raises(ConfigError, match="does not support bf16"):
            choose_precision("bf16", torch.device("cuda"), cuda_bf16=False)


def test_fast_auto_precision_asks_the_one_owner(monkeypatch):
    monkeypatch.setattr(device, "cpu_flags", lambda: AMX)
    assert fast.auto_precision("cpu") == "bf16"
    monkeypatch.setattr(device, "cpu_flags", lambda: AVX2)
    assert fast.auto_precision("cpu") == "fp32"


def test_devices_resolve_with_one_line_errors():
    assert device.resolve_device("cpu") == torch.device("cpu")
    assert device.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        device.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            device.resolve_device("cuda")


def test_describe_cpu_names_the_family():
    assert "(avx2: avx2)" in device.describe_cpu(AVX2)
    assert "amx:" in device.describe_cpu(AMX)
