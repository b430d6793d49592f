"""Running a zoo model on images in [0, 1], honouring what the model declares (range, colour space, size rules).

:func:`run_model` is one forward pass; :func:`upscale_tensor` builds the user-facing engine on it (tiling with
blended overlaps, x8 self-ensemble, bf16/fp16, a memory budget) and :func:`upscale_image` applies it to a decoded
:class:`~litesr.images.Image` (gray, alpha, 16 bits).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from .archs.blocks import CALayer, CCALayer, pad_to_multiple
from .errors import ConfigError

if TYPE_CHECKING:
    from .images import Image

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


def model_contract(model: nn.Module) -> tuple[float, str, int, int]:
    """(input_range, color_space, pad_multiple, scale) of a model; plain modules get the defaults (1.0, rgb, 1)."""
    return (
        float(getattr(model, "input_range", 1.0)),
        str(getattr(model, "color_space", "rgb")),
        int(getattr(model, "pad_multiple", 1)),
        int(model.scale),
    )


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """BT.601 YCbCr of RGB in [0, 1], also in [0, 1] (Y in [16/255, 235/255]), as MATLAB ``rgb2ycbcr``."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    cb = (128.0 - 37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    cr = (128.0 + 112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    return torch.cat([y, cb, cr], dim=1)


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (MATLAB ``ycbcr2rgb``)."""
    y, cb, cr = x[:, 0:1] * 255.0 - 16.0, x[:, 1:2] * 255.0 - 128.0, x[:, 2:3] * 255.0 - 128.0
    r = 0.00456621 * y + 0.00625893 * cr
    g = 0.00456621 * y - 0.00153632 * cb - 0.00318811 * cr
    b = 0.00456621 * y + 0.00791071 * cb
    return torch.cat([r, g, b], dim=1)


def model_luma(model: nn.Module, x: Tensor) -> Tensor:
    """The (B, 1, H, W) luma a Y-channel ``model`` is fed for RGB ``x`` in [0, 1]: BT.601 Y, rounded to 8-bit levels
    (MATLAB ``rgb2ycbcr`` on uint8) unless the model declares ``luma_uint8 = False``."""
    return _model_luma_of(model, rgb_to_ycbcr(x)[:, :1])


def _model_luma_of(model: nn.Module, luma: Tensor) -> Tensor:
    from .imresize import round_half_away

    return round_half_away(luma * 255.0) / 255.0 if getattr(model, "luma_uint8", True) else luma


def run_model(model: nn.Module, x: Tensor) -> Tensor:
    """Upscale a batch ``x`` (B, 3, H, W) of RGB in [0, 1] with ``model``; returns (B, 3, sH, sW), not clamped.

    Scales to the model's input range, converts to Y for luma-only models (:func:`model_luma`; Cb/Cr upscaled with
    MATLAB bicubic), reflect-pads to the model's size multiple and crops the output back.
    """
    return run_model_with_luma(model, x)[0]


def run_model_with_luma(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """:func:`run_model`, also returning the model's own (B, 1, sH, sW) luma output for Y-channel models (else None):
    the papers of Y models measure that plane, not the Y of the recombined RGB image."""
    input_range, color_space, multiple, scale = model_contract(model)
    h, w = x.shape[-2:]
    ycbcr = rgb_to_ycbcr(x) if color_space == "y" else None  # converted once: luma in, chroma for the output
    inp = _model_luma_of(model, ycbcr[:, :1]) if ycbcr is not None else x
    if multiple > 1:
        inp, _, _ = pad_to_multiple(inp, multiple)
    out = model(inp * input_range) if input_range != 1.0 else model(inp)
    if input_range != 1.0:
        out = out / input_range
    out = out[..., : h * scale, : w * scale]
    if color_space != "y":
        return out, None
    from .imresize import imresize

    chroma = imresize(ycbcr[:, 1:], scale=scale)
    return ycbcr_to_rgb(torch.cat([out, chroma], dim=1)), out


# ----------------------------------------------------------------------------------------------- the upscaling engine


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for parameter-free models)."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def resolve_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    """``None`` -> the model's device; ``"cuda"`` without a GPU is a :class:`ConfigError`, not a crash later."""
    if device is None:
        return model_device(model) if model is not None else torch.device("cpu")
    try:
        target = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r} (use cpu or cuda)") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for, but torch sees no CUDA GPU (use --device cpu)")
    return target


def _check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 needs a CUDA device (CPU convolutions have no fast fp16); use bf16 or fp32 on CPU")


def _prepare(model: nn.Module, device: str | torch.device | None, precision: str) -> tuple[torch.device, bool]:
    """Check the precision, move the model to its device in eval mode (channels-last for reduced precision);
    returns the device and whether inputs should be channels-last too."""
    target = resolve_device(device, model)
    _check_precision(precision, target)
    if model_device(model) != target:
        model.to(target)
    model.eval()
    channels_last = precision != "fp32"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return target, channels_last


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _run(model: nn.Module, x: Tensor, channels_last: bool) -> Tensor:
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return run_model(model, x).float()


# The 8 elements of the dihedral group as (transpose, flip H, flip W); inverses undo flips first, then transpose.
_DIHEDRAL = [(t, fh, fw) for t in (False, True) for fh in (False, True) for fw in (False, True)]


def _transform(x: Tensor, transpose: bool, flip_h: bool, flip_w: bool) -> Tensor:
    x = x.transpose(-2, -1) if transpose else x
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    return x.flip(dims) if dims else x


def _untransform(y: Tensor, transpose: bool, flip_h: bool, flip_w: bool) -> Tensor:
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    y = y.flip(dims) if dims else y
    return y.transpose(-2, -1) if transpose else y


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of full-size tiles covering ``[0, length)``, evenly spread so that neighbours overlap by at least
    ``overlap``: the last tile is moved inward rather than cut short, so every tile sees the same amount of context."""
    if length <= tile:
        return [0]
    count = max(2, math.ceil((length - overlap) / (tile - overlap)))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _ramp(length: int, device: torch.device) -> Tensor:
    """Weights across an overlap of ``length`` samples: 0 over the first quarter, a raised cosine over the middle half,
    1 over the last quarter; ramp(i) + ramp(length-1-i) == 1. Keeping a tile's outermost quarter out of the blend
    matters: pixels near a tile's edge lack context (a random tiny IMDN: 1.6/255 off with a full-width ramp,
    0.004/255 with this one)."""
    position = torch.arange(length, device=device, dtype=torch.float32) + 0.5
    t = ((position - length / 4) / (length / 2)).clamp(0.0, 1.0)
    return 0.5 - 0.5 * torch.cos(math.pi * t)


@dataclass(frozen=True)
class _Axis:
    """How one image axis is cut into tiles: starts, tile length, blend weights (output space) and core ranges."""

    starts: list[int]
    size: int
    weights: list[Tensor]
    # Per tile, the LR range (relative to the tile) that it alone owns: the overlaps are split at their middle.
    # Whole-image statistics sum over these, so every pixel counts once.
    cores: list[tuple[int, int]]

    @classmethod
    def plan(cls, length: int, tile: int, overlap: int, scale: int, device: torch.device) -> _Axis:
        starts = tile_starts(length, tile, overlap)
        size = min(tile, length)
        weights, cores = [], []
        for i, start in enumerate(starts):
            w = torch.ones(size * scale, device=device)
            lo, hi = 0, size
            if i > 0:
                shared = starts[i - 1] + size - start
                w[: shared * scale] *= _ramp(shared * scale, device)
                lo = shared // 2
            if i + 1 < len(starts):
                shared = start + size - starts[i + 1]
                w[(size - shared) * scale :] *= _ramp(shared * scale, device).flip(0)
                hi = size - (shared - shared // 2)
            weights.append(w)
            cores.append((lo, hi))
        return cls(starts, size, weights, cores)

    def total(self, length: int, scale: int, device: torch.device) -> Tensor:
        total = torch.zeros(length * scale, device=device)
        for start, w in zip(self.starts, self.weights):
            total[start * scale : (start + self.size) * scale] += w
        return total


# Channel-attention layers whose squeeze is a function of per-channel mean and standard deviation; tiled inference
# feeds them whole-image statistics (see _StatisticsHooks). Keyed by exact class: a subclass may squeeze otherwise.
_SQUEEZES: dict[type, Callable[[Tensor, Tensor], Tensor]] = {
    CALayer: lambda mean, std: mean,
    CCALayer: lambda mean, std: std + mean,
}
# Official IMDN x2, 64x80 crop, 48-pixel tiles: the attention moves by 7e-3, 3e-3, 1e-4 from pass to pass; the result
# of the third pass (second statistics) is already as close to the untiled one as with exact statistics.
_MAX_STATISTICS_PASSES = 4
_STATISTICS_TOLERANCE = 5e-3


class _StatisticsHooks:
    """Tiles see only part of the image, so layers that squeeze the whole feature map (channel attention) would weigh
    channels differently in every tile: a few 1/255 of difference everywhere for IMDN. With these hooks installed,
    each tiled pass sums every attention layer's input over the tiles' own (non-overlapping) regions, and the next
    pass replaces each layer's squeeze with the whole-image statistics. Layer k's statistics depend on layers < k, so
    the passes are repeated until the attention stops changing (two or three passes in practice)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if type(m) in _SQUEEZES]
        self.attention: dict[tuple[int, int], Tensor] = {}  # (layer, call within the forward) -> (B, C, 1, 1)
        self.sums: dict[tuple[int, int], list] = {}
        self.calls = [0] * len(self.layers)
        self.core: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.tile_shape = (1, 1)
        self.handles: list = []

    def __bool__(self) -> bool:
        return bool(self.layers)

    def __enter__(self) -> _StatisticsHooks:
        for index, layer in enumerate(self.layers):
            self.handles.append(layer.register_forward_hook(self._hook(index)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def start_tile(self, core: tuple[int, int, int, int], tile_shape: tuple[int, int]) -> None:
        """Before each tile: its own region (y0, y1, x0, x1) and its size as the model sees it (padded)."""
        self.calls = [0] * len(self.layers)
        self.core, self.tile_shape = core, tile_shape

    def _hook(self, index: int) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor | None:
            key = (index, self.calls[index])
            self.calls[index] += 1
            x = inputs[0]
            self._accumulate(key, x)
            attention = self.attention.get(key)
            return None if attention is None else x * attention.to(x.dtype)

        return hook

    def _accumulate(self, key: tuple[int, int], x: Tensor) -> None:
        # The feature map may be at another resolution than the tile (or padded to a multiple): map proportionally.
        fh, fw = x.shape[-2:]
        y0, y1, x0, x1 = self.core
        ry, rx = fh / self.tile_shape[0], fw / self.tile_shape[1]
        part = x[..., round(y0 * ry) : round(y1 * ry), round(x0 * rx) : round(x1 * rx)].double()
        s1 = part.sum(dim=(-2, -1))
        s2 = part.square().sum(dim=(-2, -1))
        n = part.shape[-2] * part.shape[-1]
        entry = self.sums.get(key)
        if entry is None:
            self.sums[key] = [s1, s2, n]
        else:
            entry[0] += s1
            entry[1] += s2
            entry[2] += n

    def finish_pass(self) -> float:
        """Turn this pass's sums into attention vectors for the next; returns the largest change."""
        change = 0.0 if self.attention or not self.sums else math.inf
        for key, (s1, s2, n) in self.sums.items():
            layer = self.layers[key[0]]
            mean = s1 / n
            std = (s2 / n - mean.square()).clamp_min(0.0).sqrt()
            squeeze = _SQUEEZES[type(layer)](mean, std)[..., None, None]
            weight = layer.conv_du[0].weight
            attention = layer.conv_du(squeeze.to(weight.dtype)).float()
            old = self.attention.get(key)
            change = max(change, math.inf if old is None else (attention - old).abs().max().item())
            self.attention[key] = attention
        self.sums.clear()
        return change


def upscale_tensor(
    model: nn.Module,
    x: Tensor,
    *,
    tile: int | None = None,
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    precision: Precision = "fp32",
    device: str | torch.device | None = None,
    max_memory: int | None = None,
) -> Tensor:
    """Upscale RGB ``x`` ((B,) 3, H, W) in [0, 1] with ``model``; returns ((B,) 3, sH, sW) in [0, 1] on x's device.

    - ``tile``: process ``tile`` x ``tile`` LR pieces (rounded up to the model's size multiple) that overlap by
      ``tile_overlap`` pixels and are blended with cosine ramps, so memory stays bounded and no seams show. Edge
      tiles are moved inward, never shrunk. Channel-attention layers get whole-image statistics (extra passes), so
      the result stays within about 1/255 of the untiled one. ``None``: the whole image at once (unless
      ``max_memory`` says otherwise).
    - ``self_ensemble``: average the 8 flipped/transposed versions (x8 time, usually +0.1 dB for CNNs).
    - ``precision``: ``"bf16"`` autocasts to bfloat16 with channels-last tensors (CPU and CUDA); ``"fp16"`` is CUDA
      only. Results are returned in float32.
    - ``device``: where the model runs (it is moved there); the image stays where it is and only tiles travel.
    - ``max_memory``: a budget in bytes for the forward passes; picks the largest tile that fits, from a measured
      calibration run (see :func:`activation_bytes_per_pixel`).
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"upscale_tensor expects (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"upscale_tensor expects floats in [0, 1], got {x.dtype}")
    x = x.float()
    target, channels_last = _prepare(model, device, precision)
    _, _, multiple, scale = model_contract(model)
    h, w = x.shape[-2:]
    if max_memory is not None:
        fitted = tile_for_memory(model, (x.shape[0], h, w), max_memory, precision=precision, device=target,
                                 result_on_device=x.device == target)
        tile = fitted if tile is None or (fitted is not None and fitted < tile) else tile
    if tile is not None and tile <= 0:
        tile = None
    if tile is not None:
        tile = math.ceil(tile / multiple) * multiple

    # Allocated outside inference mode, so that callers get an ordinary tensor they may modify in place.
    out = torch.zeros(x.shape[0], 3, h * scale, w * scale, dtype=torch.float32, device=x.device)
    with torch.inference_mode(), _autocast(precision, target):
        for transform in _DIHEDRAL if self_ensemble else _DIHEDRAL[:1]:
            xt = _transform(x, *transform)
            th, tw = xt.shape[-2:]
            if tile is None or (tile >= th and tile >= tw):
                yt = _run(model, xt.to(target), channels_last).to(x.device)
            else:  # pad the whole image as run_model would, so that edge tiles see what the untiled pass sees
                padded, _, _ = pad_to_multiple(xt, multiple)
                yt = _upscale_tiled(model, padded, tile, tile_overlap, scale, target, channels_last)
                yt = yt[..., : th * scale, : tw * scale]
            out += _untransform(yt, *transform)
            del yt
        if self_ensemble:
            out /= len(_DIHEDRAL)
        out.clamp_(0.0, 1.0)
    return out.squeeze(0) if squeeze else out


def _upscale_tiled(model: nn.Module, x: Tensor, tile: int, overlap: int, scale: int, device: torch.device,
                   channels_last: bool) -> Tensor:
    """The blended tiles of one image batch, (B, 3, sH, sW) on x's device."""
    h, w = x.shape[-2:]
    overlap = max(0, min(overlap, tile // 2))
    rows = _Axis.plan(h, tile, overlap, scale, x.device)
    cols = _Axis.plan(w, tile, overlap, scale, x.device)
    out = torch.zeros(x.shape[0], 3, h * scale, w * scale, dtype=torch.float32, device=x.device)

    multiple = model_contract(model)[2]
    padded = (math.ceil(rows.size / multiple) * multiple, math.ceil(cols.size / multiple) * multiple)

    def one_pass(statistics: _StatisticsHooks | None) -> None:
        out.zero_()
        for top, wy, (y0, y1) in zip(rows.starts, rows.weights, rows.cores):
            for left, wx, (x0, x1) in zip(cols.starts, cols.weights, cols.cores):
                piece = x[..., top : top + rows.size, left : left + cols.size].to(device)
                if statistics is not None:
                    statistics.start_tile((y0, y1, x0, x1), padded)
                result = _run(model, piece, channels_last).to(x.device)
                region = out[..., top * scale : (top + rows.size) * scale, left * scale : (left + cols.size) * scale]
                region.addcmul_(result, wy[:, None] * wx[None, :])

    statistics = _StatisticsHooks(model)
    if not statistics:
        one_pass(None)
    else:
        with statistics:
            one_pass(statistics)  # per-tile attention; gathers the first whole-image statistics
            statistics.finish_pass()
            for _ in range(_MAX_STATISTICS_PASSES - 1):
                one_pass(statistics)  # whole-image attention of the last pass; gathers the next statistics
                if statistics.finish_pass() < _STATISTICS_TOLERANCE:
                    break  # the statistics this pass used are those it found: a fixed point
    return out.div_(rows.total(h, scale, x.device)[:, None] * cols.total(w, scale, x.device)[None, :])


# ------------------------------------------------------------------------------------------------------ memory budget

_CALIBRATION_TILE = 64


def activation_bytes_per_pixel(
    model: nn.Module, *, precision: Precision = "fp32", device: str | torch.device | None = None
) -> float:
    """Peak bytes allocated by one forward pass, per LR pixel, measured on a 64 x 64 tile (cached on the model).

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the peak of live bytes in the allocator events of the torch
    profiler (RSS would hide memory malloc reuses). The figure includes the pass's fixed costs, so it overestimates
    slightly for larger tiles, which is the safe side.
    """
    target, channels_last = _prepare(model, device, precision)
    key = (str(target), precision)
    cache: dict = model.__dict__.setdefault("_litesr_bytes_per_pixel", {})
    if key in cache:
        return cache[key]
    probe = torch.rand(1, 3, _CALIBRATION_TILE, _CALIBRATION_TILE, generator=torch.Generator().manual_seed(0))
    probe = probe.to(target)

    def run() -> None:
        with torch.inference_mode(), _autocast(precision, target):
            _run(model, probe, channels_last)

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
    _, _, multiple, scale = model_contract(model)
    target = resolve_device(device, model)
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


# -------------------------------------------------------------------------------------------------- decoded images


def upscale_image(model: nn.Module, image: Image, **options) -> Image:  # noqa: ANN003 - upscale_tensor's options
    """Upscale a decoded :class:`~litesr.images.Image`: gray images go through the model as RGB and come back gray,
    alpha is upscaled with bicubic interpolation and re-attached, and bit depth, format and metadata carry over.
    ``options`` are those of :func:`upscale_tensor`."""
    from .imresize import imresize

    scale = model_contract(model)[3]
    x = torch.from_numpy(image.rgb).permute(2, 0, 1).unsqueeze(0)
    if image.is_gray:
        x = x.expand(1, 3, -1, -1)
    y = upscale_tensor(model, x.contiguous(), **options)[0]
    rgb = y.mean(dim=0, keepdim=True) if image.is_gray else y
    alpha = None
    if image.alpha is not None:
        up = imresize(torch.from_numpy(image.alpha)[None, None], scale=scale)
        alpha = up[0, 0].clamp_(0.0, 1.0).numpy()
    return image.with_pixels(rgb.permute(1, 2, 0).contiguous().numpy(), alpha)
