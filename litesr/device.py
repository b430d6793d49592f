"""The one owner of device and precision choices: which device a run uses and which precision ``auto`` means there.

Inference (:mod:`litesr.inference`, :mod:`litesr.fast`), training (:mod:`litesr.train`), the CLI and the benchmarks
all ask here, so that ``auto`` means the same everywhere, and each choice comes with the reason it was made (the
CPU flags read, the GPU's capability), which the commands print.

The rule for ``auto``:
- CUDA: bf16 where the GPU supports it, else fp16 (training then uses a gradient scaler);
- CPU with AMX tiles (Intel Sapphire Rapids and later): bf16, where oneDNN's bf16 convolutions are fast;
- any other CPU: fp32. AVX-512-bf16 without AMX runs bf16 natively but is, for most SR models, no faster than fp32
  with litesr's channels-last fp32 path; AVX2-only CPUs have no bf16 instructions at all, where bf16 is emulated and
  several times slower than fp32.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import torch

from .errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
CpuFamily = Literal["amx", "avx512_bf16", "avx512", "avx2", "other"]


# ------------------------------------------------------------------------------------------------ hardware probes


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The feature flags of this machine's CPU (Linux ``/proc/cpuinfo``); empty where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.cache
def cpu_model_name() -> str:
    """The CPU's model name (``AMD EPYC``, ``Intel(R) Xeon(R) ...``); empty where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_family(flags: frozenset[str] | None = None) -> CpuFamily:
    """The speed-relevant family of a CPU, from its flags: the README's speed table has one column per family."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "other"


def cpu_has_amx(flags: frozenset[str] | None = None) -> bool:
    """AMX tiles with bf16 (Intel Sapphire Rapids and later): oneDNN's bf16 convolutions and matmuls run there."""
    return "amx_bf16" in (cpu_flags() if flags is None else flags)


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """bf16 dot-product instructions (AVX-512 BF16 or AMX): bf16 runs natively, at some speed."""
    return bool({"amx_bf16", "avx512_bf16"} & (cpu_flags() if flags is None else flags))


def describe_cpu(flags: frozenset[str] | None = None) -> str:
    """One line for logs and benchmark headers: model name, family and the bf16-relevant flags."""
    flags = cpu_flags() if flags is None else flags
    name = cpu_model_name() or "unknown CPU"
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({cpu_family(flags)}: {', '.join(simd) or 'no AVX2'})"


# ---------------------------------------------------------------------------------------------------------- devices


def resolve_device(name: str | torch.device | None = "auto", *, local_rank: int = 0) -> torch.device:
    """``auto``/``None`` -> CUDA when available, else CPU; ``cuda`` -> the local rank's GPU; errors are one line."""
    if name is None or (isinstance(name, str) and name == "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA GPU (use cpu)")
        if device.index is None and local_rank:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    elif device.type not in ("cpu", "mps"):
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)")
    return device


# ------------------------------------------------------------------------------------------------------- precision


@dataclass(frozen=True)
class PrecisionChoice:
    """A resolved precision and why: ``str(choice)`` is the line the commands print."""

    precision: Precision
    requested: str
    reason: str

    def __str__(self) -> str:
        if self.requested == "auto":
            return f"precision auto -> {self.precision}: {self.reason}"
        return f"precision {self.precision} ({self.reason})"


def choose_precision(
    requested: str, device: torch.device | str, *, flags: frozenset[str] | None = None,
    cuda_bf16: bool | None = None,
) -> PrecisionChoice:
    """Resolve ``requested`` (fp32, bf16, fp16 or auto) for ``device``; impossible requests are a ConfigError.

    ``flags`` (CPU flags) and ``cuda_bf16`` (whether the GPU does bf16) default to this machine's; tests pass them.
    """
    requested = str(requested).lower()
    if requested not in (*PRECISIONS, "auto"):
        raise ConfigError(f"unknown precision {requested!r} (use fp32, bf16, fp16 or auto)")
    device = torch.device(device)
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        if requested == "auto":
            return PrecisionChoice("bf16" if bf16 else "fp16", "auto",
                                   "this GPU supports bf16" if bf16 else "this GPU has no bf16; fp16 instead")
        if requested == "bf16" and not bf16:
            raise ConfigError("precision bf16: this GPU does not support bf16; use fp16 or fp32")
        return PrecisionChoice(requested, requested, "asked for")  # type: ignore[arg-type]
    flags = cpu_flags() if flags is None else flags
    family = cpu_family(flags)
    if requested == "fp16":
        raise ConfigError("precision fp16 needs a CUDA device (CPU convolutions have no fast fp16); use bf16 or fp32")
    if requested == "bf16" and not cpu_has_bf16(flags):
        # Allowed (results are right), but said: torch emulates bf16 there, several times slower than fp32.
        return PrecisionChoice("bf16", "bf16", f"emulated: this CPU ({family}) has no bf16 instructions "
                               "(avx512_bf16/amx_bf16), expect it slower than fp32")
    if requested == "auto":
        if cpu_has_amx(flags):
            return PrecisionChoice("bf16", "auto", "CPU flags include amx_bf16 (AMX tiles: fast bf16 convolutions)")
        if cpu_has_bf16(flags):
            return PrecisionChoice("fp32", "auto", "CPU has avx512_bf16 but no AMX: bf16 is not reliably faster "
                                   "than litesr's fp32 path there (pass bf16 to use it)")
        return PrecisionChoice("fp32", "auto", f"CPU family {family}: no bf16 instructions (avx512_bf16/amx_bf16)")
    return PrecisionChoice(requested, requested, "asked for")  # type: ignore[arg-type]


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision (None for fp32)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def check_precision_for(precision: str, device: torch.device) -> None:
    """An explicit precision that cannot run on ``device`` is a one-line ConfigError (``auto`` is resolved first, by
    :func:`choose_precision`)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)} or auto)")
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ConfigError("fp16 needs a CUDA device (CPU convolutions have no fast fp16); use bf16 or fp32 on CPU")
