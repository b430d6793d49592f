"""VIF in the pixel domain (Sheikh & Bovik 2006, the authors' ``vifp_mscale.m``): 4 scales with Gaussian windows of
17/9/5/3 pixels (sigma = size / 5), valid filtering and decimation by 2 between scales, sigma_n^2 = 2, float64.

The wavelet-domain VIF (``vifvec.m``, a steerable pyramid, what pyiqa's ``vif`` computes) is a different number;
litesr has the pixel-domain one, calibrated against piq's ``vif_p``. piq guards variances with 1e-8, the MATLAB code
with 1e-10; litesr follows the MATLAB code.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ._filters import filter_valid, gaussian_1d
from .base import Metric, register_metric

_EPS = 1e-10
_SIGMA_N_SQ = 2.0


def vif_p(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Pixel-domain VIF per image of two (N, C, H, W) batches on the 0..255 scale (per channel, then averaged)."""
    if min(ref.shape[-2:]) < 41:
        raise ConfigError(f"VIF needs images of at least 41x41 pixels, got {ref.shape[-1]}x{ref.shape[-2]}")
    n, c, h, w = ref.shape
    x, y = ref.reshape(n * c, 1, h, w), dist.reshape(n * c, 1, h, w)
    num = torch.zeros(n * c, dtype=x.dtype, device=x.device)
    den = torch.zeros_like(num)
    for scale in range(4):
        size = 2 ** (4 - scale) + 1
        g = gaussian_1d(size, size / 5.0, dtype=x.dtype, device=x.device)
        if scale:
            x, y = filter_valid(x, g)[..., ::2, ::2], filter_valid(y, g)[..., ::2, ::2]
        mu1, mu2 = filter_valid(x, g), filter_valid(y, g)
        s1 = (filter_valid(x * x, g) - mu1 * mu1).clamp_min(0)
        s2 = (filter_valid(y * y, g) - mu2 * mu2).clamp_min(0)
        s12 = filter_valid(x * y, g) - mu1 * mu2
        gain = s12 / (s1 + _EPS)
        sv = s2 - gain * s12
        flat_ref = s1 < _EPS
        gain = torch.where(flat_ref, 0.0, gain)
        sv = torch.where(flat_ref, s2, sv)
        s1 = torch.where(flat_ref, 0.0, s1)
        flat_dist = s2 < _EPS
        gain = torch.where(flat_dist, 0.0, gain)
        sv = torch.where(flat_dist, 0.0, sv)
        negative = gain < 0
        sv = torch.where(negative, s2, sv)
        gain = gain.clamp_min(0)
        sv = sv.clamp_min(_EPS)
        num = num + torch.log10(1 + gain * gain * s1 / (sv + _SIGMA_N_SQ)).flatten(1).sum(1)
        den = den + torch.log10(1 + s1 / _SIGMA_N_SQ).flatten(1).sum(1)
    return (num / den).view(n, c).mean(dim=1)


@register_metric("vif")
class VIF(Metric):
    summary = "visual information fidelity, pixel domain (vifp_mscale.m), images >= 41 px"
    reference = "vifp_mscale.m (Sheikh 2006); piq vif_p"
    differentiable = True

    def compute(self, x, y):
        return vif_p(x, y)
