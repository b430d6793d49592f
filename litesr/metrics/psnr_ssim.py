"""PSNR and SSIM as the SR papers measure them (RCAN's ``Evaluate_PSNR_SSIM.m``, BasicSR ``psnr_ssim``).

The protocol: integer images (uint8, or uint16 with a peak of 65535), ``crop_border`` pixels (the scale) shaved from
each border, then either the BT.601 luma Y computed in floating point from the integer values (MATLAB
``rgb2ycbcr(im2double(img))`` times the peak, *not* rounded) or all RGB channels. PSNR from the mean squared error
over every remaining value; SSIM is Wang et al.'s ``ssim_index``: 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
K2 = 0.03, L = the peak, 'valid' filtering, float64, averaged over channels for RGB.

Gray (2-D) images count as an RGB image with three equal channels, so their Y is ``16 + 219/255 * v`` (what the
RCAN/EDSR pipelines do: they replicate gray images to three channels when preparing the test data).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from .base import Metric, register_metric

# BT.601 luma of RGB in [0, 1], on the 0..255 scale (MATLAB rgb2ycbcr's first row and offset).
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


class Metrics(NamedTuple):
    psnr: float
    ssim: float


def peak_value(img: np.ndarray) -> float:
    """The data range of an image: 255 for uint8, 65535 for uint16, 255 for anything else (floats on 0..255)."""
    if img.dtype == np.uint16:
        return 65535.0
    return 255.0


def rgb_to_y(img: np.ndarray, peak: float | None = None) -> np.ndarray:
    """BT.601 Y of an RGB (H, W, 3) or gray (H, W) image, float64 on the image's own scale (0..peak), not rounded.

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1], rescaled from 0..255 to 0..peak. A gray image
    is treated as three equal channels.
    """
    peak = peak_value(img) if peak is None else float(peak)
    x = np.asarray(img, dtype=np.float64) / peak
    if x.ndim == 2:
        luma = sum(_Y_WEIGHTS) * x
    elif x.ndim == 3 and x.shape[2] == 3:
        luma = _Y_WEIGHTS[0] * x[..., 0] + _Y_WEIGHTS[1] * x[..., 1] + _Y_WEIGHTS[2] * x[..., 2]
    elif x.ndim == 3 and x.shape[2] == 1:
        luma = sum(_Y_WEIGHTS) * x[..., 0]
    else:
        raise ValueError(f"rgb_to_y expects an (H, W, 3) or (H, W) image, got shape {img.shape}")
    return (_Y_OFFSET + luma) * (peak / 255.0)


def _prepare(
    img1: np.ndarray, img2: np.ndarray, crop_border: int, y_channel: bool, peak: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Shave the borders and pick Y or RGB; returns two float64 (H, W, C) arrays and the peak value."""
    if img1.shape != img2.shape:
        raise ValueError(f"images differ in shape: {img1.shape} vs {img2.shape}")
    if img1.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, C) images, got shape {img1.shape}")
    peak = peak_value(img1) if peak is None else float(peak)
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        if min(img1.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"image of size {img1.shape[1]}x{img1.shape[0]} is too small to crop {crop_border} pixels")
        img1 = img1[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    if y_channel and (img1.ndim == 2 or img1.shape[2] in (1, 3)):
        a, b = rgb_to_y(img1, peak), rgb_to_y(img2, peak)
    else:
        a, b = np.asarray(img1, dtype=np.float64), np.asarray(img2, dtype=np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return a, b, peak


def psnr(
    img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, *, y_channel: bool = True, peak: float | None = None
) -> float:
    """PSNR in dB over Y (default) or all channels; ``inf`` for identical images. ``peak`` defaults from the dtype."""
    a, b, peak = _prepare(img1, img2, crop_border, y_channel, peak)
    return _psnr_of(a, b, peak)


def _gaussian_window_1d() -> np.ndarray:
    # fspecial('gaussian', 11, 1.5) is the outer product of this normalised 1-D kernel with itself.
    r = np.arange(_SSIM_WINDOW, dtype=np.float64) - (_SSIM_WINDOW - 1) / 2
    g = np.exp(-(r * r) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(window, x, 'valid')`` with the separable Gaussian window, on (H, W, C) float64."""
    n = len(g)
    rows = x.shape[0] - n + 1
    x = sum(g[k] * x[k : k + rows] for k in range(n))
    cols = x.shape[1] - n + 1
    return sum(g[k] * x[:, k : k + cols] for k in range(n))


class SSIMExponents(NamedTuple):
    """The exponents of Wang et al.'s SSIM = l^alpha * c^beta * s^gamma (luminance, contrast, structure)."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0


DEFAULT_SSIM_EXPONENTS = SSIMExponents()


def _ssim_channels(a: np.ndarray, b: np.ndarray, peak: float,
                   exponents: SSIMExponents = DEFAULT_SSIM_EXPONENTS) -> np.ndarray:
    """Mean SSIM of each channel of two float64 (H, W, C) arrays.

    With all exponents 1 (and C3 = C2 / 2) the three factors collapse into the usual two-term formula, which is what
    is computed then (bit for bit what ``ssim_index`` gives); other exponents use the factored form.
    """
    if min(a.shape[:2]) < _SSIM_WINDOW:
        size = f"{a.shape[1]}x{a.shape[0]}"
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels, got {size}")
    c1 = (_SSIM_K1 * peak) ** 2
    c2 = (_SSIM_K2 * peak) ** 2
    g = _gaussian_window_1d()
    mu1, mu2 = _filter_valid(a, g), _filter_valid(b, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter_valid(a * a, g) - mu1_sq
    sigma2_sq = _filter_valid(b * b, g) - mu2_sq
    sigma12 = _filter_valid(a * b, g) - mu1_mu2
    if tuple(exponents) == (1.0, 1.0, 1.0):
        ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
        return ssim_map.mean(axis=(0, 1))
    c3 = c2 / 2
    # Variances can come out a hair below zero in float64; the standard deviations need them clipped.
    sigma1, sigma2 = np.sqrt(np.maximum(sigma1_sq, 0.0)), np.sqrt(np.maximum(sigma2_sq, 0.0))
    luminance = (2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)
    contrast = (2 * sigma1 * sigma2 + c2) / (sigma1_sq + sigma2_sq + c2)
    structure = (sigma12 + c3) / (sigma1 * sigma2 + c3)
    alpha, beta, gamma = exponents
    # The structure term is a correlation and may be negative: keep its sign under a fractional exponent.
    ssim_map = luminance**alpha * contrast**beta * np.sign(structure) * np.abs(structure) ** gamma
    return ssim_map.mean(axis=(0, 1))


def checked_ssim_exponents(alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0) -> SSIMExponents:
    """Checked SSIM exponents: each must be a finite number > 0 (0 would drop a factor, which is a different index)."""
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"SSIM exponent {name} must be a number > 0, not {value!r}")
    return SSIMExponents(float(alpha), float(beta), float(gamma))


def _psnr_of(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def ssim(
    img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, *, y_channel: bool = True, peak: float | None = None,
    exponents: SSIMExponents = DEFAULT_SSIM_EXPONENTS,
) -> float:
    """SSIM (MATLAB ``ssim_index``) over Y (default) or each channel averaged; ``peak`` defaults from the dtype.

    ``exponents`` (alpha, beta, gamma) weight luminance, contrast and structure; the papers use 1, 1, 1."""
    a, b, peak = _prepare(img1, img2, crop_border, y_channel, peak)
    return float(_ssim_channels(a, b, peak, exponents).mean())


def calculate_metrics(
    sr: np.ndarray, hr: np.ndarray, crop_border: int, *, y_channel: bool = True, peak: float | None = None,
    ssim_exponents: SSIMExponents = DEFAULT_SSIM_EXPONENTS,
) -> Metrics:
    """PSNR and SSIM of ``sr`` against ``hr`` under the same crop and channel choice (one preparation for both)."""
    a, b, peak = _prepare(sr, hr, crop_border, y_channel, peak)
    return Metrics(_psnr_of(a, b, peak), float(_ssim_channels(a, b, peak, ssim_exponents).mean()))


# ---- registry entries: the same numbers through create_metric("psnr"/"ssim", color=..., crop=...) ----

def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).cpu().numpy()


@register_metric("psnr")
class PSNR(Metric):
    summary = "peak signal-to-noise ratio in dB (peak 255, MSE over every value)"
    reference = "RCAN Evaluate_PSNR_SSIM.m / BasicSR calculate_psnr; pyiqa psnr, piq psnr"

    def compute(self, x, y):
        return torch.tensor([_psnr_of(_hwc(a), _hwc(b), 255.0) for a, b in zip(x, y)], dtype=torch.float64,
                            device=x.device)


@register_metric("ssim")
class SSIM(Metric):
    summary = "structural similarity, Wang et al. ssim_index (11x11 Gaussian 1.5, valid, float64)"
    reference = "MATLAB ssim_index.m (RCAN Evaluate_PSNR_SSIM.m); pyiqa ssim, piq ssim"

    def compute(self, x, y):
        return torch.tensor([float(_ssim_channels(_hwc(a), _hwc(b), 255.0).mean()) for a, b in zip(x, y)],
                            dtype=torch.float64, device=x.device)
