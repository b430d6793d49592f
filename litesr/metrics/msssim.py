"""MS-SSIM (Wang, Simoncelli, Bovik 2003), as the authors' ``msssim.m``: 5 scales, weights
0.0448/0.2856/0.3001/0.2363/0.1333, ``ssim_index`` at each scale (11x11 Gaussian 1.5, K = 0.01/0.03, L = 255, valid
filtering), 2x2 mean filter with symmetric borders and decimation between scales, float64.

pyiqa and piq agree with this on even image sizes. On odd sizes each pads differently before the 2x2 pooling (pyiqa
zero-pads both sides, piq replicates the first row/column); litesr follows the MATLAB code (the odd last row/column
pairs with itself). Both libraries also clamp negative contrast-structure terms to 0, which msssim.m does not.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ._filters import downsample2_symmetric, filter_valid, gaussian_1d
from .base import Metric, register_metric

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ssim_and_cs(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per image of two (N, C, H, W) float64 batches (channel mean)."""
    g = gaussian_1d(11, 1.5, dtype=x.dtype, device=x.device)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu1, mu2 = filter_valid(x, g), filter_valid(y, g)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filter_valid(x * x, g) - mu1_sq
    s2 = filter_valid(y * y, g) - mu2_sq
    s12 = filter_valid(x * y, g) - mu12
    cs_map = (2 * s12 + c2) / (s1 + s2 + c2)
    ssim_map = (2 * mu12 + c1) / (mu1_sq + mu2_sq + c1) * cs_map
    return ssim_map.mean(dim=(1, 2, 3)), cs_map.mean(dim=(1, 2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, peak: float = 255.0,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> torch.Tensor:
    """MS-SSIM per image of two (N, C, H, W) batches on the 0..``peak`` scale (per channel, then averaged)."""
    levels = len(weights)
    need = 11 * 2 ** (levels - 1)
    if min(x.shape[-2:]) < need:
        raise ConfigError(f"MS-SSIM with {levels} scales needs images of at least {need}x{need} pixels, "
                          f"got {x.shape[-1]}x{x.shape[-2]}")
    n, c = x.shape[:2]
    x = x.reshape(n * c, 1, *x.shape[-2:])
    y = y.reshape(n * c, 1, *y.shape[-2:])
    score = torch.ones(n * c, dtype=x.dtype, device=x.device)
    for level, w in enumerate(weights):
        ssim_val, cs = ssim_and_cs(x, y, peak)
        score = score * (ssim_val if level == levels - 1 else cs) ** w
        if level < levels - 1:
            x, y = downsample2_symmetric(x), downsample2_symmetric(y)
    return score.view(n, c).mean(dim=1)


@register_metric("ms_ssim")
class MSSSIM(Metric):
    summary = "multi-scale SSIM, 5 scales (Wang 2003), images >= 176 px"
    reference = "msssim.m (Wang 2003); pyiqa ms_ssim and piq multi_scale_ssim on even sizes"
    differentiable = True

    def compute(self, x, y):
        return ms_ssim(x, y)
