"""Arbitrary-scale inference and evaluation (Meta-SR, LIIF): any factor >= 1, with the Meta-SR benchmark protocol.

    from litesr.arbitrary import evaluate_at_scale, upscale_at_scale
    result = evaluate_at_scale(model, "Set5/HR", 2.5)      # Y-PSNR/SSIM, LR made by MATLAB bicubic at x2.5
    out = upscale_at_scale(model, rgb, 2.5)                # (B, 3, round(2.5 H), round(2.5 W)) in [0, 1]

:func:`check_scale` is the one place that decides whether a model can run at a factor: integer-only models refuse a
non-integer one with a message that names the model and the factors it supports.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .descriptor import describe
from .errors import ConfigError


def is_arbitrary_scale_model(model: nn.Module) -> bool:
    from .archs.arbitrary import ArbitraryScaleSR

    return isinstance(model, ArbitraryScaleSR)


def check_scale(model: nn.Module, scale: float, name: str | None = None) -> None:
    """Raise ConfigError when ``model`` cannot upscale by ``scale`` (non-integer factor for an integer-only model)."""
    if scale < 1 or not math.isfinite(scale):
        raise ConfigError(f"scale must be a number >= 1, not {scale:g}")
    if is_arbitrary_scale_model(model) or float(scale).is_integer():
        return
    descriptor = describe(model)
    label = name or descriptor.label
    own = descriptor.scales
    have = ", ".join(f"x{s}" for s in own if s is not None)
    raise ConfigError(f"{label} is an integer-scale model (built for {have}); x{scale:g} needs an arbitrary-scale "
                      "model such as metasr_edsr_baseline or liif_edsr_baseline")


@torch.no_grad()
def upscale_at_scale(model: nn.Module, x: Tensor, scale: float, size: tuple[int, int] | None = None) -> Tensor:
    """RGB [0, 1] (B, 3, H, W) -> the arbitrary-scale model's output at ``scale`` (or ``size``), clamped to [0, 1]."""
    check_scale(model, scale)
    out = model(x, scale=scale, size=size)
    return out.clamp_(0.0, 1.0)


@dataclass(frozen=True)
class ScaleResult:
    scale: float
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    images: int


def _to_tensor(img: np.ndarray, device: torch.device) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(255.0)[None].to(device)


def evaluate_at_scale(model: nn.Module, hr_dir: str | os.PathLike, scale: float, *,
                      device: str | torch.device | None = None, with_bicubic: bool = True) -> ScaleResult:
    """Mean Y-PSNR/SSIM of ``model`` on the HR folder at factor ``scale`` (border ceil(scale)), and of MATLAB bicubic.

    LR images are made from the HR ones as :func:`litesr.data.arbitrary_scale.lr_hr_at_scale` says (Meta-SR)."""
    from .data.arbitrary_scale import lr_hr_at_scale, resize_uint8
    from .data.train import find_images, read_rgb_uint8
    from .evaluate import quantize_uint8
    from .metrics import calculate_metrics

    device = torch.device(device) if device is not None else next(model.parameters()).device
    border = math.ceil(scale)
    rows, bicubic = [], []
    was_training = model.training
    model.eval()
    for path in find_images(hr_dir):
        lr, hr = lr_hr_at_scale(read_rgb_uint8(path), scale)
        sr = upscale_at_scale(model, _to_tensor(lr, device), scale, size=hr.shape[:2])
        rows.append(calculate_metrics(quantize_uint8(sr[0]), hr, border))
        if with_bicubic:
            bicubic.append(calculate_metrics(resize_uint8(lr, hr.shape[:2]), hr, border))
    model.train(was_training)
    mean = [float(np.mean([getattr(r, k) for r in rows])) for k in ("psnr", "ssim")]
    base = [float(np.mean([getattr(r, k) for r in bicubic])) if bicubic else float("nan") for k in ("psnr", "ssim")]
    return ScaleResult(float(scale), mean[0], mean[1], base[0], base[1], len(rows))


def outscale_size(height: int, width: int, outscale: float) -> tuple[int, int]:
    """The output (height, width) of ``--outscale``: round(H * s) x round(W * s)."""
    if not math.isfinite(outscale) or outscale <= 0:
        raise ConfigError(f"--outscale must be a number > 0, not {outscale:g}")
    return max(1, round(height * outscale)), max(1, round(width * outscale))


def _resize_plane(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from .imresize import imresize

    t = torch.from_numpy(np.ascontiguousarray(plane)).float()
    t = t.permute(2, 0, 1) if t.dim() == 3 else t
    out = imresize(t, size=size).clamp_(0.0, 1.0)
    return (out.permute(1, 2, 0) if out.dim() == 3 else out).numpy()


def outscale_image(model: nn.Module, image, outscale: float, run_fixed) -> object:  # noqa: ANN001 - Image in/out
    """``image`` (a :class:`litesr.images.Image`) upscaled to round(outscale * size).

    An arbitrary-scale model runs at that factor (its trained range is checked, warning once); any other model runs
    at its own factor through ``run_fixed(image) -> Image`` (the engine: tiling, precision, memory), and the result is
    resized to the target with MATLAB bicubic, as Real-ESRGAN's ``--outscale`` does. Alpha follows with bicubic."""
    from dataclasses import replace

    size = outscale_size(image.height, image.width, outscale)
    if not is_arbitrary_scale_model(model):
        result = run_fixed(image)
        if (result.height, result.width) == size:
            return result
        alpha = _resize_plane(result.alpha, size) if result.alpha is not None else None
        return replace(result, rgb=_resize_plane(result.rgb, size).astype(np.float32), alpha=alpha)
    check_scale(model, outscale)
    device = next(model.parameters()).device
    rgb = image.rgb if image.rgb.shape[2] == 3 else np.repeat(image.rgb, 3, axis=2)
    with torch.no_grad():
        out = upscale_at_scale(model.eval(), _to_tensor(rgb * 255.0, device), outscale, size=size)
    sr = out[0].permute(1, 2, 0).float().cpu().numpy()
    if image.rgb.shape[2] == 1:
        sr = sr.mean(axis=2, keepdims=True)
    alpha = _resize_plane(image.alpha, size) if image.alpha is not None else None
    return replace(image, rgb=np.ascontiguousarray(sr, dtype=np.float32), alpha=alpha)
