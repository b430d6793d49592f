"""Running a zoo model on images in [0, 1], honouring what the model declares (range, colour space, size rules)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .archs.blocks import pad_to_multiple


def model_contract(model: nn.Module) -> tuple[float, str, int, int]:
    """(input_range, color_space, pad_multiple, scale) of a model; plain modules get the defaults (1.0, rgb, 1)."""
    return (
        float(getattr(model, "input_range", 1.0)),
        str(getattr(model, "color_space", "rgb")),
        int(getattr(model, "pad_multiple", 1)),
        int(getattr(model, "scale")),
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


def run_model(model: nn.Module, x: Tensor) -> Tensor:
    """Upscale a batch ``x`` (B, 3, H, W) of RGB in [0, 1] with ``model``; returns (B, 3, sH, sW), not clamped.

    Scales to the model's input range, converts to Y for luma-only models (Cb/Cr upscaled with MATLAB bicubic),
    reflect-pads to the model's size multiple and crops the output back.
    """
    input_range, color_space, multiple, scale = model_contract(model)
    h, w = x.shape[-2:]
    if color_space == "y":
        from .imresize import imresize

        ycbcr = rgb_to_ycbcr(x)
        inp = ycbcr[:, :1]
    else:
        inp = x
    if multiple > 1:
        inp, _, _ = pad_to_multiple(inp, multiple)
    out = model(inp * input_range) if input_range != 1.0 else model(inp)
    if input_range != 1.0:
        out = out / input_range
    out = out[..., : h * scale, : w * scale]
    if color_space == "y":
        chroma = imresize(ycbcr[:, 1:], scale=scale)
        out = ycbcr_to_rgb(torch.cat([out, chroma], dim=1))
    return out
