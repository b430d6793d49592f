"""MATLAB-compatible bicubic ``imresize`` in torch, and the uint8 LR pipeline of the SR benchmarks.

The SR literature makes its LR images with MATLAB ``imresize(hr, 1/s, 'bicubic')`` and upscales its bicubic baseline
with the same function, so a toolkit that wants the published numbers has to resize exactly as MATLAB does:

- Keys cubic kernel (a = -0.5), widened by ``1/scale`` when downscaling with antialiasing;
- MATLAB's ``contributions()``: output pixel ``x`` (1-based) maps to ``u = x/scale + 0.5*(1 - 1/scale)``, taps
  ``floor(u - width/2) + (0 .. ceil(width)+1)``, weights normalised to sum 1, all-zero tap columns dropped;
- out-of-range taps mirrored with the edge pixel repeated (MATLAB's symmetric padding) or clamped to the edge
  (``border="replicate"``, the convention of the SelfExSR benchmark files);
- separable: one 1-D pass per dimension, the dimension with the smaller scale first, rows (height) first on ties;
- on uint8 images MATLAB rounds (half away from zero) and saturates to 0..255 after *each* pass.

Each pass is a gather of the precomputed tap indices and a weighted sum over the (few) taps, so it runs batched on
any device.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Border = Literal["symmetric", "replicate"]
_KERNEL_WIDTH = 4.0  # support of the cubic kernel, in input pixels


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), in float64."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=256)
def _contributions(in_len: int, out_len: int, scale: float, antialias: bool, border: Border) -> tuple[Tensor, Tensor]:
    """MATLAB's ``contributions``: tap indices into 0..in_len-1 and float64 weights, both shaped (P, out_len).

    Stored tap-major (one contiguous row per tap) because the resize loops over taps.
    """
    width = _KERNEL_WIDTH
    widen = scale < 1 and antialias
    if widen:
        width = width / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based, as in MATLAB
    distance = u[:, None] - indices
    weights = scale * _cubic(scale * distance) if widen else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)

    zero_based = indices.astype(np.int64) - 1
    if border == "symmetric":
        # MATLAB: aux = [1:n, n:-1:1]; indices = aux(mod(indices - 1, 2n) + 1)
        period = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
        zero_based = period[np.mod(zero_based, 2 * in_len)]
    elif border == "replicate":
        zero_based = np.clip(zero_based, 0, in_len - 1)
    else:
        raise ValueError(f"border must be 'symmetric' or 'replicate', not {border!r}")

    keep = np.any(weights != 0, axis=0)  # drop tap columns that are zero for every output pixel
    indices_t = torch.from_numpy(np.ascontiguousarray(zero_based[:, keep].T))
    weights_t = torch.from_numpy(np.ascontiguousarray(weights[:, keep].T))
    return indices_t, weights_t


def _output_length(in_len: int, scale: float) -> int:
    # MATLAB: ceil(scale * in). The tolerance keeps 255 * (1/3) = 85.00000000000001 from becoming 86.
    return max(1, math.ceil(in_len * scale - 1e-9))


def _plan(
    in_size: tuple[int, int], scale: float | tuple[float, float] | None, size: tuple[int, int] | None
) -> list[tuple[int, int, float]]:
    """The 1-D passes MATLAB makes: (dim, out_len, scale) in MATLAB's order, dim -2 = rows (height), -1 = columns."""
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of `scale` and `size`")
    if size is not None:
        out_h, out_w = (int(s) for s in size)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"imresize: output size must be positive, got {size}")
        scales = (out_h / in_size[0], out_w / in_size[1])
        lengths = (out_h, out_w)
    else:
        scales = (float(scale), float(scale)) if isinstance(scale, int | float) else tuple(map(float, scale))
        if len(scales) != 2 or min(scales) <= 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        lengths = (_output_length(in_size[0], scales[0]), _output_length(in_size[1], scales[1]))
    # MATLAB's getResizeDimOrder: rows first unless the column scale is the smaller one.
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    return [(k - 2, lengths[k], scales[k]) for k in order]


def _resize_along(x: Tensor, dim: int, out_len: int, scale: float, antialias: bool, border: Border) -> Tensor:
    in_len = x.shape[dim]
    if out_len == in_len and scale == 1.0:
        return x  # the cubic kernel at integer offsets is the identity
    indices, weights = _contributions(in_len, out_len, scale, antialias, border)
    indices = indices.to(x.device)
    weights = weights.to(device=x.device, dtype=x.dtype)
    if dim == -2:
        # (P, out, 1) would broadcast along the contiguous last dim, a slow path of torch's CPU kernels; expand it.
        weights = weights.unsqueeze(-1).expand(-1, -1, x.shape[-1]).contiguous()
    out = None
    for tap in range(indices.shape[0]):  # a handful of taps: gather one shifted copy each, weighted sum
        # Separate multiply and add, in tap order, as MATLAB accumulates (no fused multiply-add).
        term = x.index_select(dim, indices[tap]) * weights[tap]
        out = term if out is None else out + term
    return out


def _check_float(x: Tensor) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"imresize expects a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() < 2:
        raise ValueError(f"imresize expects a tensor shaped (..., H, W), got shape {tuple(x.shape)}")


def imresize(
    x: Tensor,
    scale: float | tuple[float, float] | None = None,
    *,
    size: tuple[int, int] | None = None,
    border: Border = "symmetric",
    antialias: bool = True,
) -> Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` on a float tensor shaped (..., H, W); no rounding, no clamping.

    ``scale`` is output/input (``0.25`` downscales by 4; a pair gives (height, width) scales); ``size`` is the output
    (height, width) instead. Computes in the input dtype (float64 in, float64 out); half types compute in float32.
    """
    _check_float(x)
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    for dim, out_len, dim_scale in _plan(tuple(x.shape[-2:]), scale, size):
        work = _resize_along(work, dim, out_len, dim_scale, antialias, border)
    return work.to(x.dtype)


def round_half_away(x: Tensor) -> Tensor:
    """Round half away from zero, as MATLAB's ``round`` and its uint8 conversion (torch.round rounds half to even)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def to_uint8_range(x: Tensor) -> Tensor:
    """MATLAB uint8 conversion of values on the 0..255 scale: round half away from zero, saturate to 0..255."""
    return round_half_away(x).clamp_(0.0, 255.0)


def modcrop(img: np.ndarray | Tensor, scale: int) -> np.ndarray | Tensor:
    """Crop bottom/right to multiples of ``scale``: numpy (H, W[, C]) or tensor (..., H, W), as MATLAB ``modcrop``."""
    if isinstance(img, Tensor):
        h, w = img.shape[-2:]
        return img[..., : h - h % scale, : w - w % scale]
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


def bicubic_downsample_uint8(
    hr: np.ndarray, scale: int, border: Border = "symmetric", *, round_each_pass: bool = True
) -> np.ndarray:
    """The benchmarks' LR image: ``imresize(modcrop(hr, scale), 1/scale, 'bicubic')`` on uint8, as MATLAB does it.

    ``hr`` is uint8 (H, W) or (H, W, C). With ``round_each_pass`` (MATLAB on a uint8 image) the result is rounded and
    saturated after each 1-D pass; without it, it is the double pipeline ``im2uint8(imresize(im2double(hr), 1/s))``
    with one rounding at the end (Set5 ``LR_bicubic/X8`` was made that way).
    """
    if hr.dtype != np.uint8 or hr.ndim not in (2, 3):
        raise ValueError(f"bicubic_downsample_uint8 expects uint8 (H, W) or (H, W, C), got {hr.dtype} {hr.shape}")
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    cropped = modcrop(hr, int(scale))
    if min(cropped.shape[:2]) == 0:
        raise ValueError(f"image of size {hr.shape[1]}x{hr.shape[0]} is smaller than the scale x{scale}")
    chw = torch.from_numpy(np.array(cropped, dtype=np.float64))
    chw = chw.unsqueeze(0) if hr.ndim == 2 else chw.permute(2, 0, 1)
    passes = _plan(tuple(chw.shape[-2:]), 1.0 / scale, None)
    if round_each_pass:
        for dim, out_len, dim_scale in passes:
            chw = to_uint8_range(_resize_along(chw, dim, out_len, dim_scale, True, border))
    else:
        chw = chw / 255.0  # im2double
        for dim, out_len, dim_scale in passes:
            chw = _resize_along(chw, dim, out_len, dim_scale, True, border)
        chw = to_uint8_range(chw * 255.0)  # im2uint8
    out = chw.to(torch.uint8)
    out = out[0] if hr.ndim == 2 else out.permute(1, 2, 0)
    return np.ascontiguousarray(out.numpy())
