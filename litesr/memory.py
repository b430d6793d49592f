"""The one owner of memory budgets: how much a forward pass needs, and which tile fits a budget.

Two measures: :func:`activation_bytes_per_pixel` (the allocator's peak, CPU or CUDA) for a budget of the passes
themselves (``upscale_tensor(max_memory=...)``), and :func:`rss_per_pixel` (the resident memory the process grows
by) for a budget of the whole process (``litesr upscale --max-memory``: :func:`tile_for_process`). Calibrations are
cached per model in a weak table.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import weakref
from collections.abc import Iterator

import torch
from torch import nn

from .descriptor import describe
from .device import Precision, resolve_device
from .errors import ConfigError
from .forward import autocast, model_device, prepare_for_run, run_prepared

# model -> {(device or "rss", precision): calibration}
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def free_memory_budget(device: torch.device | str = "cpu", fraction: float = 0.5) -> int | None:
    """``fraction`` of the memory free now (CUDA: on the GPU), or None when it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * fraction)
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * fraction)
    except (ValueError, OSError, AttributeError):
        return None


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
          "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory(text: str | int) -> int:
    """Bytes in ``"2GB"`` (10^9), ``"1.5GiB"`` (2^30), ``"512MB"``, ``"800M"`` or a plain number of bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(f"cannot read the memory size {text!r} (examples: 2GB, 1.5GiB, 512MB)")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"a memory size must be positive, not {text!r}")
    return value


def current_rss() -> int | None:
    """This process's resident memory in bytes (Linux), or None."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss() -> int | None:
    """This process's peak resident memory (``VmHWM``) in bytes (Linux), or None."""
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0, ``clear_refs``); False where that is not possible."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_CALIBRATION_SIDES = (64, 128)


def trim_heap() -> None:
    """Give the allocator's free pages back to the system (glibc ``malloc_trim``), so that the resident size counts
    what is in use and a measured pass must fault its memory in anew; a no-op elsewhere."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_per_pixel(model: nn.Module, *, precision: str = "fp32") -> tuple[float, float] | None:
    """(bytes per LR pixel, fixed bytes) that one forward pass adds to this process's resident memory, measured on
    64 x 64 and 128 x 128 inputs (each run twice; the second counts): everything the pass touches, the allocator's
    slack and oneDNN's scratch included, which the allocator's own count misses (SSIU x4: 90-130 MB more than it).
    None where the peak cannot be reset (not Linux). Cached on the model."""
    key = ("rss", precision)
    cache = _CACHE.setdefault(model, {})
    if key in cache:
        return cache[key]
    device = model_device(model)
    if device.type != "cpu" or not reset_peak_rss():
        return None
    generator = torch.Generator().manual_seed(0)
    transient = []
    for side in _CALIBRATION_SIDES:
        probe = torch.rand(1, 3, side, side, generator=generator)
        for _ in range(2):
            trim_heap()  # freed memory from earlier work would otherwise be reused unseen
            before = current_rss() or 0
            reset_peak_rss()
            with torch.inference_mode(), autocast(precision, device):
                run_prepared(model.eval(), probe, precision != "fp32")
            peak = peak_rss() or 0
        transient.append(max(0, peak - before))
    small, large = (side * side for side in _CALIBRATION_SIDES)
    per_pixel = max((transient[1] - transient[0]) / (large - small), transient[1] / large / 4, 1.0)
    fixed = max(0.0, transient[1] - per_pixel * large)
    cache[key] = (per_pixel, fixed)
    return cache[key]


# Kept free under a process budget: Python objects, encoder buffers, allocator granularity.
_MARGIN = 64 * 2**20


def tile_for_process(model: nn.Module, image_hw: tuple[int, int], max_memory: int, *, precision: str = "fp32",
                     channels: int = 3) -> int | None:
    """The largest tile side (LR pixels) that keeps this whole process under ``max_memory`` bytes while upscaling an
    ``image_hw`` image on the CPU; None when the image fits in one pass.

    What the process holds already (interpreter, torch, model, decoded image) comes off first, then the engine's
    buffers (the input and two float results), the copies made after the model (about four float images of the
    output size, for the numpy result and its quantisation for encoding: the allocator need not give the tiles'
    memory back before them) and a margin; the tiles get the rest, at the rate :func:`rss_per_pixel` measured.
    """
    d = describe(model)
    multiple, scale = d.size_multiple, d.scale
    h, w = image_hw
    output_floats = channels * h * w * scale * scale * 4
    calibration = rss_per_pixel(model, precision=precision)
    held = current_rss() or 0
    engine = channels * h * w * 4 * (2 * scale * scale + 1)
    after_model = 4 * output_floats
    left = max_memory - held - engine - after_model - _MARGIN
    if calibration is None:  # not Linux: the engine's allocator-based estimate, with the same deductions
        if left <= 0:
            raise ConfigError(f"a memory budget of {max_memory / 2**20:.0f} MiB is too small for a "
                              f"{w * scale}x{h * scale} result")
        return tile_for_memory(model, (1, h, w), int(left + engine), precision=precision)  # type: ignore[arg-type]
    per_pixel, fixed = calibration
    trim_heap()
    left -= fixed + max(0, (current_rss() or 0) - held)
    smallest = 32
    if left < per_pixel * smallest * smallest:
        raise ConfigError(
            f"a memory budget of {max_memory / 2**20:.0f} MiB is too small: the process holds {held / 2**20:.0f} MiB, "
            f"the {w * scale}x{h * scale} result and its copies need {(engine + after_model) / 2**20:.0f} MiB, "
            f"and the model ~{per_pixel / 1024:.1f} KiB per input pixel"
        )
    if per_pixel * h * w <= left:
        return None
    side = int(math.sqrt(left / per_pixel))
    return max(smallest, side - side % max(multiple, 8))


_CALIBRATION_TILE = 64


def activation_bytes_per_pixel(
    model: nn.Module, *, precision: Precision = "fp32", device: str | torch.device | None = None
) -> float:
    """Peak bytes allocated by one forward pass, per LR pixel, measured on a 64 x 64 tile (cached on the model).

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the peak of live bytes in the allocator events of the torch
    profiler (RSS would hide memory malloc reuses). The figure includes the pass's fixed costs, so it overestimates
    slightly for larger tiles, which is the safe side.
    """
    target, channels_last = prepare_for_run(model, device, precision)
    key = (str(target), precision)
    cache = _CACHE.setdefault(model, {})
    if key in cache:
        return cache[key]
    probe = torch.rand(1, 3, _CALIBRATION_TILE, _CALIBRATION_TILE, generator=torch.Generator().manual_seed(0))
    probe = probe.to(target)

    def run() -> None:
        with torch.inference_mode(), autocast(precision, target):
            run_prepared(model, probe, channels_last)

    run()  # warm-up: lazy initialisation (oneDNN primitives, cuDNN plans) is not per-tile memory
    if target.type == "cuda":
        torch.cuda.synchronize(target)
        base = torch.cuda.memory_allocated(target)
        torch.cuda.reset_peak_memory_stats(target)
        run()
        torch.cuda.synchronize(target)
        peak = torch.cuda.max_memory_allocated(target) - base
    else:
        peak = _cpu_peak_bytes(run)
    cache[key] = max(float(peak), 1.0) / _CALIBRATION_TILE**2
    return cache[key]


def _cpu_peak_bytes(fn) -> int:  # noqa: ANN001 - any zero-argument callable
    """Peak of live bytes in the CPU allocator while ``fn`` runs, from the profiler's memory events."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]  # type: ignore[union-attr]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ code logs start/stop lines there), whatever sys.stderr is."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tile_for_memory(
    model: nn.Module, shape: tuple[int, int, int], max_memory: int, *, precision: Precision = "fp32",
    device: str | torch.device | None = None, result_on_device: bool = True,
) -> int | None:
    """The largest tile side (LR pixels) whose forward pass fits ``max_memory`` bytes for a (B, H, W) input; ``None``
    when the whole image fits in one pass. ``result_on_device``: the image and its result live in the same memory
    (CPU inference), so their buffers count against the budget too."""
    batch, h, w = shape
    d = describe(model)
    multiple, scale = d.size_multiple, d.scale
    target = model_device(model) if device is None else resolve_device(device)
    per_pixel = activation_bytes_per_pixel(model, precision=precision, device=target)
    # The input and two result buffers (the blend, the sum over transforms), 3 float32 channels each, stay allocated.
    resident = batch * h * w * 3 * 4 * (2 * scale * scale + 1) if result_on_device else 0
    budget = max_memory - resident
    if budget <= 0:
        raise ConfigError(
            f"a memory budget of {max_memory / 2**20:.0f} MiB cannot even hold the {w * scale}x{h * scale} result "
            f"({resident / 2**20:.0f} MiB)"
        )
    if per_pixel * batch * h * w <= budget:
        return None
    side = int(math.sqrt(budget / (per_pixel * batch)))
    side -= side % multiple
    if side < 16:
        raise ConfigError(
            f"a memory budget of {max_memory / 2**20:.0f} MiB leaves room for tiles of only {side} pixels "
            f"(the model needs ~{per_pixel / 1024:.1f} KiB per input pixel); allow more memory"
        )
    return side
