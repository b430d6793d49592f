"""The one run path: a zoo model applied to RGB images in [0, 1], honouring what its descriptor declares.

Inference (:mod:`litesr.inference`, tiles included), evaluation, training, export and profiling all call
:func:`run_model` / :func:`run_model_with_luma`, so the input range, the colour space, the luma rounding of Y models
and the size multiple are handled once.
"""

from __future__ import annotations

import contextlib
import itertools

import torch
from torch import Tensor, nn

from .archs.blocks import pad_to_multiple
from .descriptor import describe
from .device import autocast_dtype, check_precision_for, resolve_device


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

    return round_half_away(luma * 255.0) / 255.0 if describe(model).luma_uint8 else luma


def model_target(model: nn.Module, hr: Tensor) -> Tensor:
    """What ``model``'s output is compared with in training: the RGB ``hr`` itself, or its luma for Y models."""
    return model_luma(model, hr) if describe(model).color_space == "y" else hr


def run_model(model: nn.Module, x: Tensor) -> Tensor:
    """Upscale a batch ``x`` (B, 3, H, W) of RGB in [0, 1] with ``model``; returns (B, 3, sH, sW), not clamped.

    Scales to the model's input range, converts to Y for luma-only models (:func:`model_luma`; Cb/Cr upscaled with
    MATLAB bicubic), reflect-pads to the model's size multiple and crops the output back.
    """
    return run_model_with_luma(model, x)[0]


def run_model_with_luma(model: nn.Module, x: Tensor, *, recombine: bool = True) -> tuple[Tensor, Tensor | None]:
    """:func:`run_model`, also returning the model's own (B, 1, sH, sW) luma output for Y-channel models (else None):
    the papers of Y models measure that plane, not the Y of the recombined RGB image. ``recombine=False`` skips the
    chroma upscaling of Y models (training compares the luma plane only) and returns the luma as the first item."""
    d = describe(model)
    h, w = x.shape[-2:]
    scale = d.scale
    ycbcr = rgb_to_ycbcr(x) if d.color_space == "y" else None  # converted once: luma in, chroma for the output
    inp = _model_luma_of(model, ycbcr[:, :1]) if ycbcr is not None else x
    if d.size_multiple > 1:
        inp, _, _ = pad_to_multiple(inp, d.size_multiple)
    out = model(inp * d.input_range) if d.input_range != 1.0 else model(inp)
    if d.input_range != 1.0:
        out = out / d.input_range
    out = out[..., : h * scale, : w * scale]
    if d.color_space != "y":
        return out, None
    if not recombine:
        return out, out
    from .imresize import imresize

    chroma = imresize(ycbcr[:, 1:], scale=scale)
    return ycbcr_to_rgb(torch.cat([out, chroma], dim=1)), out


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for parameter-free models)."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on ``device`` (a no-op for fp32)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def run_prepared(model: nn.Module, x: Tensor, channels_last: bool) -> Tensor:
    """:func:`run_model` on a model prepared for a precision (channels-last input where asked), as float32."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return run_model(model, x).float()


def prepare_for_run(model: nn.Module, device: str | torch.device | None, precision: str) -> tuple[torch.device, bool]:
    """Check the precision, move the model to its device in eval mode (channels-last for reduced precision);
    returns the device and whether inputs should be channels-last too."""
    target = model_device(model) if device is None else resolve_device(device)
    check_precision_for(precision, target)
    if model_device(model) != target:
        model.to(target)
    model.eval()
    channels_last = precision != "fp32"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return target, channels_last
