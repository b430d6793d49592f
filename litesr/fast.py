"""The fast path: a model made ready for inference on the hardware at hand, and I/O that never keeps it waiting.

:func:`prepare_model` folds re-parameterised branches into their deploy form (ECBSR, ETDS, SPAN: ``to_deploy()``),
moves the model, switches it to channels-last where reduced precision runs, and optionally compiles it
(``torch.compile`` with frozen weights) or hands it to ONNX Runtime (:class:`OnnxBackend`). Precision itself stays
an argument of :func:`litesr.inference.upscale_tensor`; :func:`auto_precision` picks one per device: bf16 on CUDA and
on CPUs with AMX tiles, fp32 elsewhere (AVX-512 bf16 without AMX is no faster than fp32 for most SR models).

:func:`parse_memory` reads ``2GB``/``512MiB`` budgets and :func:`tile_for_process` sizes tiles so that the whole
process stays under one, from the resident memory a forward pass was measured to add (:func:`rss_per_pixel`).
:func:`pipelined` runs decode, compute and encode of a list of jobs in three stages, so that decoding the next image
and encoding the last one overlap the model's work.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import queue
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .archs.blocks import strictly_channels_last
from .errors import ConfigError, LitesrError

Backend = Literal["torch", "compile", "onnx"]
BACKENDS: tuple[str, ...] = ("torch", "compile", "onnx")


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


def cpu_has_amx() -> bool:
    """AMX tiles with bf16 (Intel Sapphire Rapids and later): oneDNN's bf16 convolutions and matmuls run there."""
    return "amx_bf16" in cpu_flags()


def cpu_has_bf16() -> bool:
    """bf16 dot-product instructions (AVX-512 BF16 or AMX): bf16 runs natively, at some speed."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def auto_precision(device: str | torch.device = "cpu") -> str:
    """The precision that runs fastest at (nearly) fp32 quality: CUDA bf16 where supported, else fp16; CPU bf16 with
    AMX, else fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_amx() else "fp32"


# ------------------------------------------------------------------------------------------------ model preparation


def fold_deploy(model: nn.Module) -> nn.Module:
    """The re-parameterised deploy form of ``model`` (same function, plain convolutions) where it has one
    (``to_deploy()``), as a new model; else ``model`` itself. The litesr metadata (arch, config) is carried over."""
    if not callable(getattr(model, "to_deploy", None)) or getattr(model, "deploy", False):
        return model
    folded = copy.deepcopy(model).to_deploy()  # a copy: some to_deploy() convert in place (SPAN)
    for attribute in ("litesr_arch", "litesr_config"):
        if hasattr(model, attribute) and not hasattr(folded, attribute):
            setattr(folded, attribute, getattr(model, attribute))
    return folded.eval()


def prepare_model(
    model: nn.Module,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    backend: Backend = "torch",
    deploy: bool = True,
    channels_last: bool | None = None,
    onnx_path: str | os.PathLike | None = None,
    threads: int | None = None,
    fp32_ends: bool = True,
) -> nn.Module:
    """``model`` ready for fast inference, to pass to :func:`~litesr.inference.upscale_tensor` (or ``run_model``).

    - ``deploy``: fold re-parameterisable branches (:func:`fold_deploy`).
    - ``channels_last``: NHWC weights (default: when ``precision`` is not fp32, as oneDNN/cuDNN prefer it there).
    - with bf16/fp16 the parameters are stored in that type (:func:`cast_parameters`), so run the result under
      autocast (``upscale_tensor(..., precision=...)`` or :class:`Autocast`); ``fp32_ends``: the first layer (it
      reads the image) and the last (it writes it) stay in fp32 (:func:`keep_image_layers_fp32`): bf16 cannot even
      hold 8-bit pixel values exactly.
    - ``backend``: ``"torch"`` (eager), ``"compile"`` (``torch.compile`` with weights frozen as constants; the first
      call of each input size compiles, which takes a while) or ``"onnx"`` (exported with dynamic H/W and run by
      ONNX Runtime on CPU in fp32; ``onnx_path`` keeps the file, else a temporary one is used).

    Returns a prepared copy in eval mode; ``model`` itself is left as it was.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)})")
    target = torch.device(device)
    original = model
    if deploy:
        model = fold_deploy(model)
    if model is original:
        model = copy.deepcopy(model)  # the caller's model stays as it was (device, layout, dtypes)
    model = model.eval()
    if backend == "onnx":
        if target.type != "cpu" or precision != "fp32":
            raise ConfigError("the onnx backend runs fp32 on the CPU; use --backend torch for bf16/fp16 or CUDA")
        return OnnxBackend.from_model(model, onnx_path, threads=threads)
    model = model.to(target)
    if channels_last if channels_last is not None else precision != "fp32":
        model = model.to(memory_format=torch.channels_last)
        use_nhwc_gelu(model)
        use_nhwc_reflect_padding(model)
    if precision != "fp32":
        cast_parameters(model, torch.bfloat16 if precision == "bf16" else torch.float16,
                        keep=keep_image_layers_fp32(model) if fp32_ends else [])
    if backend == "compile":
        # Freezing folds weights into the graph as constants, which lets inductor pre-pack them for oneDNN.
        compiled = torch.compile(model, options={"freezing": True})
        return compiled  # type: ignore[return-value]  # an OptimizedModule; attributes reach the model
    return model


class NHWCGELU(nn.GELU):
    """GELU run on the (N, H, W, C) view of a channels-last tensor: the same function (the vectorised kernel differs
    from the strided one in the last bits), but PyTorch's CPU kernel vectorises the dense view only (bf16 SSIU x4:
    GELU 2.7x faster, the whole model 13%)."""

    def forward(self, x: Tensor) -> Tensor:
        if strictly_channels_last(x):
            return F.gelu(x.permute(0, 2, 3, 1), approximate=self.approximate).permute(0, 3, 1, 2)
        return F.gelu(x, approximate=self.approximate)


def use_nhwc_gelu(model: nn.Module) -> int:
    """Swap every ``nn.GELU`` submodule of ``model`` for :class:`NHWCGELU` (in place); returns how many."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.GELU:
                setattr(parent, name, NHWCGELU(approximate=child.approximate))
                swapped += 1
    return swapped


def reflect_pad_channels_last(x: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """``F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")`` written into a channels-last buffer by slices:
    the same values, without the strided copy PyTorch's reflection kernel makes of a channels-last input."""
    b, c, h, w = x.shape
    out = torch.empty((b, c, h + 2 * pad_h, w + 2 * pad_w), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    out[:, :, pad_h : pad_h + h, pad_w : pad_w + w] = x
    for i in range(pad_h):  # rows first, then whole columns (the corners reflect both ways)
        out[:, :, pad_h - 1 - i, pad_w : pad_w + w] = x[:, :, i + 1]
        out[:, :, pad_h + h + i, pad_w : pad_w + w] = x[:, :, h - 2 - i]
    for j in range(pad_w):
        out[:, :, :, pad_w - 1 - j] = out[:, :, :, pad_w + 1 + j]
        out[:, :, :, pad_w + w + j] = out[:, :, :, pad_w + w - 2 - j]
    return out


class NHWCReflectConv2d(nn.Conv2d):
    """A reflect-padded ``nn.Conv2d`` that pads channels-last inputs with :func:`reflect_pad_channels_last` (SSIU's
    depthwise convs: bf16 x2 189 -> 176 ms); other inputs go the usual way. Same parameters and state-dict names."""

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        pad_h, pad_w = self.padding if isinstance(self.padding, tuple) else (0, 0)
        fits = pad_h < x.shape[-2] and pad_w < x.shape[-1]  # reflect needs pad < size; else the usual error
        if self.padding_mode == "reflect" and strictly_channels_last(x) and fits and not torch.compiler.is_compiling():
            padded = reflect_pad_channels_last(x, pad_h, pad_w)
            return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return super()._conv_forward(x, weight, bias)


def use_nhwc_reflect_padding(model: nn.Module) -> int:
    """Turn every reflect-padded ``nn.Conv2d`` of ``model`` into :class:`NHWCReflectConv2d` (in place); returns how
    many."""
    swapped = 0
    for module in model.modules():
        if type(module) is nn.Conv2d and module.padding_mode == "reflect":
            module.__class__ = NHWCReflectConv2d
            swapped += 1
    return swapped


class _FullPrecision:
    """A module's forward run with autocast off, on float32 inputs (installed on the instance; weights untouched).
    ``cast_output``: hand the result on in the autocast dtype, as the layer would have, so that the layers after it
    do not run their residual sums in fp32 and convert at every step."""

    def __init__(self, forward: Callable[..., Tensor], cast_output: bool = False) -> None:
        self.forward = forward
        self.cast_output = cast_output

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        device = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
        autocast_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        with torch.autocast(device_type=device, enabled=False):
            out = self.forward(*(a.float() if isinstance(a, Tensor) else a for a in args), **kwargs)
        return out.to(autocast_dtype) if self.cast_output and autocast_dtype is not None else out


def image_layers(model: nn.Module, sample_hw: tuple[int, int] = (16, 16)) -> list[str]:
    """Names of the first and the last convolution/linear layer a forward pass calls: the layers that read the image
    and write the result. Found with hooks on a meta-device copy (on the CPU for data-dependent models)."""
    from .profile import _meta_copy

    for device in ("meta", "cpu"):
        net = _meta_copy(model) if device == "meta" else copy.deepcopy(model).float().cpu()
        try:
            order = _layer_call_order(net.eval(), torch.zeros(1, 3, *sample_hw, device=device))
        except (NotImplementedError, RuntimeError):
            continue
        return [order[0], order[-1]] if order else []
    return []


def _layer_call_order(net: nn.Module, x: Tensor) -> list[str]:
    from .archs.blocks import MeanShift
    from .inference import model_contract, run_model

    # Mean shifts are fixed 1x1 convs that stay in image space: the layers after/before them face the image.
    names = {module: name for name, module in net.named_modules()
             if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear) and not isinstance(module, MeanShift)}
    order: list[str] = []
    handles = [module.register_forward_pre_hook(lambda m, _: order.append(names[m])) for module in names]
    try:
        with torch.no_grad():
            if model_contract(net)[1] == "y":
                net(x[:, :1])
            else:
                run_model(net, x)
    finally:
        for handle in handles:
            handle.remove()
    return order


def keep_image_layers_fp32(model: nn.Module) -> list[str]:
    """Run the first and last layer of ``model`` in fp32 under autocast (see :func:`image_layers`); returns their
    names. In bf16 an 8-bit pixel is rounded to 1/512 (0.5/255), and so is every output value: IMDN x2 lost 0.028 dB
    of Set5 PSNR in plain bf16, 0.002 dB with these two layers in fp32 (the first one's result handed on in bf16,
    which keeps the speed of plain bf16; kept in fp32 it costs 10% for another 0.002 dB)."""
    names = image_layers(model)
    for index, name in enumerate(names):
        module = model.get_submodule(name)
        if not isinstance(module.__dict__.get("forward"), _FullPrecision):
            cast = index == 0 and len(names) > 1
            module.forward = _FullPrecision(module.forward, cast_output=cast)  # type: ignore[method-assign]
    return names


def cast_parameters(model: nn.Module, dtype: torch.dtype, keep: Iterable[str] = ()) -> None:
    """Store every floating-point parameter of ``model`` in ``dtype``, except those of the layers named in ``keep``.

    Autocast only casts the inputs of convolutions and matrix products; a parameter used elsewhere in fp32 (a
    LayerNorm weight, a relative-position-bias table) promotes the activations it touches back to fp32, and every
    layer after it converts them again: SwinIR-light x4 ran 1.36x faster than fp32 in bf16 with fp32 parameters,
    2.07x with bf16 parameters. Buffers (image means, index tables) stay as they are. Run the result under autocast.
    """
    kept = {id(p) for name in keep for p in model.get_submodule(name).parameters()}
    for parameter in model.parameters():
        if parameter.is_floating_point() and id(parameter) not in kept:
            parameter.data = parameter.data.to(dtype)


class Autocast(nn.Module):
    """``model`` run under autocast to ``precision`` with channels-last input, returning float32: a drop-in for code
    that calls a model directly (:func:`litesr.evaluate.evaluate`, ``run_model``). Declares the model's contract."""

    def __init__(self, model: nn.Module, precision: str = "bf16") -> None:
        super().__init__()
        if precision not in ("bf16", "fp16"):
            raise ConfigError(f"Autocast runs bf16 or fp16, not {precision!r}")
        self.model = model
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        for attribute in ("input_range", "color_space", "luma_uint8", "pad_multiple", "scale", "litesr_arch",
                          "litesr_config"):
            if hasattr(model, attribute):
                setattr(self, attribute, getattr(model, attribute))

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            return self.model(x.contiguous(memory_format=torch.channels_last)).float()

    def set_scale(self, scale: int) -> None:
        self.model.set_scale(scale)
        self.scale = scale


class OnnxBackend(nn.Module):
    """An ONNX Runtime session dressed as a litesr model: the model's contract (input range, padding, clamping to
    [0, 1]) is baked into the graph, so it declares range 1, RGB and no size multiple, and keeps the scale.

    Channel-attention layers run inside the graph, so tiled inference cannot give them whole-image statistics as the
    torch path does: tiles of IMDN-like models differ from the untiled result by a few 1/255 at most.
    """

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1

    def __init__(self, path: str | os.PathLike, scale: int, *, threads: int | None = None) -> None:
        super().__init__()
        from .export import OnnxModel

        self.scale = scale
        self.path = Path(path)
        self.session = OnnxModel(path, threads=threads)

    @classmethod
    def from_model(cls, model: nn.Module, path: str | os.PathLike | None = None, *,
                   threads: int | None = None) -> OnnxBackend:
        from .export import export_onnx
        from .inference import model_contract

        scale = model_contract(model)[3]
        folder = None
        if path is None:
            folder = Path(tempfile.mkdtemp(prefix="litesr-onnx-"))
            path = folder / f"{getattr(model, 'litesr_arch', 'model')}_x{scale}.onnx"
        try:
            export_onnx(model.cpu().float(), path)
            backend = cls(path, scale, threads=threads)
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        if folder is not None:  # the session has read the file; the folder goes with the backend
            weakref.finalize(backend, shutil.rmtree, folder, True)
        for attribute in ("litesr_arch", "litesr_config"):
            if hasattr(model, attribute):
                setattr(backend, attribute, getattr(model, attribute))
        return backend

    def forward(self, x: Tensor) -> Tensor:
        return self.session(x.float()).to(x.device)

    def set_scale(self, scale: int) -> None:
        if scale != self.scale:
            raise ValueError(f"this ONNX model is built for x{self.scale}, not x{scale}")


# ---------------------------------------------------------------------------------------------------- memory budget

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
    from .inference import _autocast, _run, model_device

    key = ("rss", precision)
    cache: dict = model.__dict__.setdefault("_litesr_bytes_per_pixel", {})
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
            with torch.inference_mode(), _autocast(precision, device):
                _run(model.eval(), probe, precision != "fp32")
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
    from .inference import model_contract, tile_for_memory

    _, _, multiple, scale = model_contract(model)
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


# ----------------------------------------------------------------------------------------------- pipelined folders

Job = TypeVar("Job")
_DONE = object()


def pipelined(
    jobs: Iterable[Job],
    load: Callable[[Job], Any],
    compute: Callable[[Job, Any], Any],
    store: Callable[[Job, Any], None],
    *,
    prefetch: int = 2,
) -> Iterator[tuple[Job, BaseException | None]]:
    """Run ``store(job, compute(job, load(job)))`` for every job, with loading and storing in background threads.

    ``compute`` runs in the calling thread (the model), while a loader thread decodes up to ``prefetch`` jobs ahead
    and a writer thread encodes finished ones. Yields ``(job, error)`` in job order once the job is stored (or has
    failed: ``error`` is the exception of whichever stage failed; later jobs still run). Closing the iterator early
    stops both threads after the jobs in flight.
    """
    loaded: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    finished: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    results: queue.Queue = queue.Queue()
    stop = threading.Event()

    def loader() -> None:
        for job in jobs:
            if stop.is_set():
                break
            try:
                item: tuple = (job, load(job), None)
            except Exception as exc:  # noqa: BLE001 - handed to the caller with its job
                item = (job, None, exc)
            loaded.put(item)
        loaded.put(_DONE)

    def writer() -> None:
        while (item := finished.get()) is not _DONE:
            job, value, error = item
            if error is None:
                try:
                    store(job, value)
                except Exception as exc:  # noqa: BLE001
                    error = exc
            results.put((job, error))
        results.put(_DONE)

    threads = [threading.Thread(target=loader, name="litesr-decode", daemon=True),
               threading.Thread(target=writer, name="litesr-encode", daemon=True)]
    for thread in threads:
        thread.start()

    def drain() -> Iterator[tuple[Job, BaseException | None]]:
        while not results.empty():
            item = results.get()
            if item is not _DONE:
                yield item

    writer_told = False
    try:
        while (item := loaded.get()) is not _DONE:
            job, value, error = item
            if error is None:
                try:
                    value = compute(job, value)
                except Exception as exc:  # noqa: BLE001
                    value, error = None, exc
            finished.put((job, value, error))
            yield from drain()
        finished.put(_DONE)
        writer_told = True
        while (item := results.get()) is not _DONE:
            yield item
    finally:
        stop.set()
        while threads[0].is_alive():  # a loader blocked on a full queue must get room to see the stop
            try:
                loaded.get(timeout=0.05)
            except queue.Empty:
                pass
        if not writer_told:
            finished.put(_DONE)
        for thread in threads:
            thread.join(timeout=60)


def check_backend_available(backend: str) -> None:
    """A one-line error before any work when the chosen backend cannot run here."""
    if backend == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise LitesrError(f"the onnx backend needs onnx and onnxruntime ({exc}): pip install 'litesr[onnx]'") \
                from None
