"""Honest efficiency figures: parameters, MACs/FLOPs by operator, activations, peak memory and latency.

One counting rule for every model (papers differ; see docs/efficiency.md):
- MACs (Mult-Adds) count every multiply-accumulate of convolutions, transposed convolutions, linear layers, matrix
  products and attention (``bmm``/``matmul``/scaled-dot-product attention: Q@K^T and A@V). This is the column SR
  papers print; NTIRE's conv-only counter misses the attention matmuls.
- Interpolation (bilinear/bicubic/nearest), normalisation (LayerNorm, BatchNorm, GroupNorm) and softmax are counted
  apart, as elementary operations, and reported in the per-operator table; they are not MACs.
- FLOPs = 2 x MACs (one multiply plus one add), the convention of fvcore/torch's FlopCounterMode.
- Activations: the elements of every convolution output (the NTIRE efficient-SR rule).
Counting runs on the meta device, so a 1280x720 output costs no compute and no memory. Models whose forward depends
on the data (SMSR's sparse masks: ``nonzero``) cannot run there; they are counted on the CPU on a random image, and
the result says so (``counted_on``).

Latency: warm-up runs, then the median (and minimum) of N timed runs, with CUDA events on a GPU; the model goes
through the fast path first (:func:`litesr.fast.prepare_model`: deploy forms folded, channels-last for bf16/fp16).
Peak memory is the process's peak RSS during the timed runs on the CPU (the kernel's high-water mark, reset before),
``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from .descriptor import describe, meta_copy
from .forward import run_model
from .memory import peak_rss, reset_peak_rss

aten = torch.ops.aten


def _numel(shape: Any) -> int:
    return math.prod(int(s) for s in shape)


def _conv_macs(args: tuple, out: Tensor) -> int:
    weight = args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    # weight: (Cout, Cin/groups, k...) for conv; (Cin, Cout/groups, k...) for transposed conv
    kernel = _numel(weight.shape[2:])
    if transposed:
        x = args[0]
        return _numel(x.shape) * int(weight.shape[1]) * kernel
    return _numel(out.shape) * int(weight.shape[1]) * kernel


def _mm_macs(args: tuple, out: Tensor) -> int:
    a, b = args[0], args[1]
    return int(a.shape[0]) * int(a.shape[1]) * int(b.shape[1])


def _addmm_macs(args: tuple, out: Tensor) -> int:
    return _mm_macs(args[1:], out)


def _bmm_macs(args: tuple, out: Tensor) -> int:
    a, b = args[0], args[1]
    return int(a.shape[0]) * int(a.shape[1]) * int(a.shape[2]) * int(b.shape[2])


def _baddbmm_macs(args: tuple, out: Tensor) -> int:
    return _bmm_macs(args[1:], out)


def _sdpa_macs(args: tuple, out: Tensor | tuple) -> int:
    q, k, v = args[0], args[1], args[2]
    batch = _numel(q.shape[:-2])
    lq, d = int(q.shape[-2]), int(q.shape[-1])
    lk, dv = int(k.shape[-2]), int(v.shape[-1])
    return batch * lq * lk * (d + dv)


# aten op -> (category, MAC function). Categories are the rows of the per-operator table.
_MAC_OPS: dict[Any, tuple[str, Callable[[tuple, Any], int]]] = {
    aten.convolution.default: ("conv", _conv_macs),
    aten.mm.default: ("matmul", _mm_macs),
    aten.addmm.default: ("matmul", _addmm_macs),
    aten.bmm.default: ("matmul", _bmm_macs),
    aten.baddbmm.default: ("matmul", _baddbmm_macs),
    aten._scaled_dot_product_flash_attention_for_cpu.default: ("attention", _sdpa_macs),
    aten._scaled_dot_product_efficient_attention.default: ("attention", _sdpa_macs),
    aten._scaled_dot_product_flash_attention.default: ("attention", _sdpa_macs),
    aten._scaled_dot_product_cudnn_attention.default: ("attention", _sdpa_macs),
    aten.scaled_dot_product_attention.default: ("attention", _sdpa_macs),
}

# Elementary operations per output element for the ops that are not MACs but cost real work.
_ELEMENT_OPS: dict[Any, tuple[str, int]] = {
    aten.upsample_bilinear2d.vec: ("interpolate", 4 * 2),
    aten.upsample_bilinear2d.default: ("interpolate", 4 * 2),
    aten.upsample_bicubic2d.vec: ("interpolate", 16 * 2),
    aten.upsample_bicubic2d.default: ("interpolate", 16 * 2),
    aten.upsample_nearest2d.vec: ("interpolate", 1),
    aten.upsample_nearest2d.default: ("interpolate", 1),
    aten.native_layer_norm.default: ("normalisation", 5),
    aten.native_group_norm.default: ("normalisation", 5),
    aten.native_batch_norm.default: ("normalisation", 2),
    aten._native_batch_norm_legit_no_training.default: ("normalisation", 2),
    aten._softmax.default: ("softmax", 3),
}


class OpCounter(TorchDispatchMode):
    """Counts MACs by category, elementary ops of interpolation/normalisation, and conv output elements."""

    def __init__(self) -> None:
        super().__init__()
        self.macs: dict[str, int] = defaultdict(int)
        self.element_ops: dict[str, int] = defaultdict(int)
        self.conv_activations = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        packet = func._overloadpacket
        if func in _MAC_OPS:
            category, fn = _MAC_OPS[func]
            first = out[0] if isinstance(out, tuple) else out
            self.macs[category] += fn(args, first)
            if category == "conv":
                self.conv_activations += first.numel()
        elif func in _ELEMENT_OPS:
            category, per_element = _ELEMENT_OPS[func]
            first = out[0] if isinstance(out, tuple) else out
            self.element_ops[category] += per_element * first.numel()
        elif packet in (aten.upsample_bilinear2d, aten.upsample_bicubic2d, aten.upsample_nearest2d):
            first = out[0] if isinstance(out, tuple) else out
            self.element_ops["interpolate"] += first.numel()
        return out


@dataclass
class OpCount:
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    macs: dict[str, int]
    element_ops: dict[str, int]
    conv_activations: int
    counted_on: str = "meta"

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    @property
    def conv_macs(self) -> int:
        return self.macs.get("conv", 0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_macs"] = self.total_macs
        d["total_flops"] = 2 * self.total_macs
        return d


def count_ops(model: nn.Module, input_hw: tuple[int, int], in_channels: int | None = None) -> OpCount:
    """Count the operations of one forward pass on an input of ``input_hw`` (LR size), batch 1."""
    d = describe(model)
    color_space, scale = d.color_space, d.scale
    channels = in_channels or 3

    def count(net: nn.Module, x: Tensor) -> OpCounter:
        counter = OpCounter()
        with torch.no_grad(), counter:
            if color_space == "y":
                # Count the network only: Cb/Cr interpolation is the engine's, not the model's.
                net(x[:, :1])
            else:
                run_model(net, x)
        return counter

    counted_on = "meta"
    try:
        counter = count(meta_copy(model).eval(), torch.zeros(1, channels, *input_hw, device="meta"))
    except (NotImplementedError, RuntimeError):
        # Data-dependent control flow (nonzero, .item()) has no meta kernel: count a real run on the CPU.
        if any(p.device.type == "meta" for p in model.parameters()):
            raise
        counted_on = "cpu"
        generator = torch.Generator().manual_seed(0)
        was_training = model.training
        try:
            counter = count(model.eval().cpu(), torch.rand(1, channels, *input_hw, generator=generator))
        finally:
            model.train(was_training)
    return OpCount(
        tuple(input_hw),
        (input_hw[0] * scale, input_hw[1] * scale),
        dict(counter.macs),
        dict(counter.element_ops),
        counter.conv_activations,
        counted_on,
    )


def lr_size_for_output(output_hw: tuple[int, int], scale: int) -> tuple[int, int]:
    """LR size whose xs output is (about) ``output_hw``: 1280x720 at x3 gives 427x240, as SwinIR counts."""
    return (round(output_hw[0] / scale), round(output_hw[1] / scale))


@dataclass
class Latency:
    precision: str
    threads: int
    device: str
    median_ms: float
    min_ms: float
    runs: int
    peak_memory_mb: float | None = None
    backend: str = "torch"


def measure_latency(
    model: nn.Module,
    input_hw: tuple[int, int],
    *,
    precision: str = "fp32",
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 2,
    runs: int = 5,
    channels_last: bool | None = None,
) -> Latency:
    """Median wall time of ``runs`` forward passes after ``warmup`` (CUDA events on GPU), and the peak memory.

    ``model`` runs as given (pass it through :func:`litesr.fast.prepare_model` for the fast path); the input is
    channels-last when the model's precision is reduced. ``threads`` applies to these runs only.
    """
    from .errors import ConfigError

    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"unknown precision {precision!r} (use fp32, bf16 or fp16)")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ConfigError("fp16 inference is supported on CUDA only; use bf16 on CPU")
    previous_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        return _measure_latency(model, input_hw, precision, device, warmup, runs, channels_last, run_model)
    finally:
        torch.set_num_threads(previous_threads)


def _measure_latency(model: nn.Module, input_hw: tuple[int, int], precision: str, device: str, warmup: int,
                     runs: int, channels_last: bool | None, run_model: Callable) -> Latency:
    model = model.to(device).eval()
    x = torch.rand(1, 3, *input_hw, device=device)
    use_cl = channels_last if channels_last is not None else precision != "fp32"
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    def once() -> None:
        with (
            torch.inference_mode(),
            torch.autocast(device_type=device.split(":")[0], dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            run_model(model, x)

    for _ in range(warmup):
        once()
    times = []
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    reset = not cuda and reset_peak_rss()
    for _ in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            once()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            once()
            times.append((time.perf_counter() - t0) * 1000)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        hwm = peak_rss() if reset else None
        peak = hwm / 2**20 if hwm is not None else None
    return Latency(precision, torch.get_num_threads(), device, statistics.median(times), min(times), runs, peak)


@dataclass
class Profile:
    model: str
    scale: int
    params: int
    ops_720p: OpCount
    ops_256: OpCount
    latency: list[Latency] = field(default_factory=list)
    latency_hw: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "scale": self.scale,
            "params": self.params,
            "ops_1280x720_output": self.ops_720p.to_dict(),
            "ops_256x256_input": self.ops_256.to_dict(),
            "latency_input_hw": self.latency_hw,
            "latency": [asdict(lat) for lat in self.latency],
            "counting_rule": "MACs: conv, linear, matmul, attention; FLOPs = 2 x MACs; activations: conv outputs",
        }


def profile_model(
    model: nn.Module,
    name: str,
    *,
    latency_hw: tuple[int, int] | None = None,
    precisions: tuple[str, ...] = (),
    threads: tuple[int, ...] = (),
    device: str = "cpu",
    runs: int = 5,
    warmup: int = 2,
    backend: str = "torch",
    deploy: bool = True,
) -> Profile:
    """Parameters and operation counts (1280x720 output, 256x256 input) of ``model``, and its latency on
    ``latency_hw`` inputs for every precision and thread count asked for. With ``deploy``, re-parameterisable
    models are counted and timed in their deploy form (what inference runs)."""
    from .fast import fold_deploy, prepare_model

    if deploy:
        model = fold_deploy(model)
    scale = describe(model).scale
    params = sum(p.numel() for p in model.parameters())
    prof = Profile(
        name,
        scale,
        params,
        count_ops(model, lr_size_for_output((720, 1280), scale)),
        count_ops(model, (256, 256)),
    )
    if latency_hw is not None:
        prof.latency_hw = tuple(latency_hw)
        for prec in precisions or ("fp32",):
            runnable = prepare_model(model, device=device, precision=prec, backend=backend,  # type: ignore[arg-type]
                                     deploy=False)
            for thr in threads or (torch.get_num_threads(),):
                lat = measure_latency(runnable, latency_hw, precision=prec, device=device, threads=thr, runs=runs,
                                      warmup=warmup)
                lat.backend = backend
                prof.latency.append(lat)
    return prof
