"""FSIM and FSIMc (Zhang, Zhang, Mou, Zhang 2011) as the authors' ``FeatureSIM.m`` with its ``phasecong2``.

Luma (and for FSIMc the YIQ chroma I, Q with the coefficients of ``FeatureSIM.m``) on the 0..255 scale, mean-filtered
and decimated by F = max(1, round(min(H, W) / 256)); phase congruency from log-Gabor filters (4 scales from a 6-pixel
wavelength, x2 each, sigma_f 0.55; 4 orientations, dtheta/sigma 1.2; noise threshold k = 2 from the median energy of
the smallest scale, divided by 1.7); Scharr gradient magnitude; similarity with T1 = 0.85, T2 = 160 (T3 = T4 = 200,
lambda = 0.03 for chroma); the score is the PC_max-weighted mean of the similarity map. Float64 throughout.

Where litesr follows ``FeatureSIM.m`` and pyiqa/piq (which share one port) do not: the mean filter is MATLAB's centred
``conv2(..., 'same')`` (the same as their average pooling when F is 1 or 2 and the size even), the median of an even
count is the mean of the two middle values (torch.median takes the lower), the energy epsilon is 1e-4 (theirs: machine
epsilon), FSIMc uses the 3-digit YIQ coefficients and ``real((S_I S_Q)^lambda)`` (theirs: the absolute value).
tests/test_metrics_reference.py measures the resulting gap on real images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ._filters import conv_same
from .base import Metric, register_metric

_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
_YIQ_LIBRARIES = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))
_T1, _T2, _T3, _T4, _LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03


def matlab_mean_decimate(x: torch.Tensor, f: int) -> torch.Tensor:
    """``conv2(x, fspecial('average', f), 'same')`` then ``x(1:f:end, 1:f:end)`` on a (N, C, H, W) batch."""
    if f == 1:
        return x
    h, w = x.shape[-2:]
    before = (f + 1) // 2 - 1  # 'same' centres an even kernel one step towards the end
    oh, ow = -(-h // f), -(-w // f)
    x = F.pad(x, (before, max(0, ow * f - w - before), before, max(0, oh * f - h - before)))
    return F.avg_pool2d(x[..., : oh * f, : ow * f], f)


def _centred_grid(n: int, dtype, device) -> torch.Tensor:
    if n % 2:
        return torch.arange(-(n - 1) / 2, (n - 1) / 2 + 1, dtype=dtype, device=device) / (n - 1)
    return torch.arange(-n / 2, n / 2, dtype=dtype, device=device) / n


def _ifftshift(x: torch.Tensor) -> torch.Tensor:
    return torch.roll(x, (-(x.shape[0] // 2), -(x.shape[1] // 2)), (0, 1))


def log_gabor_filters(h: int, w: int, scales: int = 4, orientations: int = 4, min_wavelength: float = 6.0,
                      mult: float = 2.0, sigma_f: float = 0.55, d_theta_on_sigma: float = 1.2,
                      dtype=torch.float64, device=None) -> torch.Tensor:
    """The (orientations, scales, H, W) frequency-domain filters of ``phasecong2`` (log-Gabor x angular spread)."""
    xs = _centred_grid(w, dtype, device).view(1, w)
    ys = _centred_grid(h, dtype, device).view(h, 1)
    radius = _ifftshift(torch.sqrt(xs * xs + ys * ys))
    theta = _ifftshift(torch.atan2(-ys.expand(h, w), xs.expand(h, w)))
    radius[0, 0] = 1.0
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** 30)  # lowpassfilter([rows cols], .45, 15), radius already shifted
    lowpass[0, 0] = 1.0  # the DC term, radius 0 before the radius[0, 0] = 1 guard
    sin_t, cos_t = torch.sin(theta), torch.cos(theta)
    theta_sigma = math.pi / orientations / d_theta_on_sigma
    gabors = []
    for s in range(scales):
        fo = 1.0 / (min_wavelength * mult**s)
        g = torch.exp(-(torch.log(radius / fo) ** 2) / (2 * math.log(sigma_f) ** 2)) * lowpass
        g[0, 0] = 0.0
        gabors.append(g)
    out = []
    for o in range(orientations):
        angle = o * math.pi / orientations
        ds = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        dc = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        spread = torch.exp(-(torch.atan2(ds, dc).abs() ** 2) / (2 * theta_sigma**2))
        out.append(torch.stack([g * spread for g in gabors]))
    return torch.stack(out)


def _matlab_median(v: torch.Tensor) -> torch.Tensor:
    """Median over the last axis, the mean of the two middle values for an even count (MATLAB ``median``)."""
    s = v.sort(dim=-1).values
    n = s.shape[-1]
    return s[..., n // 2] if n % 2 else (s[..., n // 2 - 1] + s[..., n // 2]) / 2


def phase_congruency(x: torch.Tensor, k: float = 2.0) -> torch.Tensor:
    """``phasecong2`` of a (N, 1, H, W) float64 batch: the (N, 1, H, W) phase congruency map."""
    n, _, h, w = x.shape
    filters = log_gabor_filters(h, w, dtype=x.dtype, device=x.device)  # (O, S, H, W)
    orientations, scales = filters.shape[:2]
    eo = torch.fft.ifft2(torch.fft.fft2(x[:, 0])[:, None, None] * filters)  # (N, O, S, H, W)
    even, odd = eo.real, eo.imag
    amplitude = eo.abs()
    sum_e, sum_o = even.sum(2, keepdim=True), odd.sum(2, keepdim=True)
    x_energy = torch.sqrt(sum_e**2 + sum_o**2) + 1e-4
    mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
    energy = (even * mean_e + odd * mean_o - (even * mean_o - odd * mean_e).abs()).sum(2)  # (N, O, H, W)
    # Noise from the smallest scale: the median of |EO|^2 of a Rayleigh-distributed response.
    em_n = (filters[:, 0] ** 2).sum(dim=(-2, -1))  # (O,)
    median_e2n = _matlab_median((amplitude[:, :, 0] ** 2).flatten(2))  # (N, O)
    noise_power = -median_e2n / math.log(0.5) / em_n
    spatial = torch.fft.ifft2(filters).real * math.sqrt(h * w)  # (O, S, H, W)
    sum_an2 = (spatial**2).sum(dim=(1, 2, 3))
    sum_ai_aj = sum((spatial[:, i] * spatial[:, j]).sum(dim=(-2, -1))
                    for i in range(scales) for j in range(i + 1, scales))
    noise_energy2 = 2 * noise_power * sum_an2 + 4 * noise_power * sum_ai_aj  # (N, O)
    tau = torch.sqrt(noise_energy2 / 2)
    threshold = (tau * math.sqrt(math.pi / 2) + k * torch.sqrt((2 - math.pi / 2) * tau**2)) / 1.7
    energy = (energy - threshold[..., None, None]).clamp_min(0)
    return (energy.sum(1) / amplitude.sum(dim=(1, 2)))[:, None]


def _similarity(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return (2 * a * b + t) / (a * a + b * b + t)


def _gradient(x: torch.Tensor) -> torch.Tensor:
    scharr = torch.tensor([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]], dtype=x.dtype,
                          device=x.device) / 16
    return torch.sqrt(conv_same(x, scharr) ** 2 + conv_same(x, scharr.T) ** 2)


def fsim(dist: torch.Tensor, ref: torch.Tensor, chromatic: bool = False, chroma: str = "matlab") -> torch.Tensor:
    """FSIM (1-channel inputs) or FSIMc (``chromatic``, RGB inputs) per image, 0..255 scale. ``chroma="libraries"``
    uses pyiqa/piq's YIQ coefficients and ``|S_I S_Q|^lambda`` instead of FeatureSIM.m's."""
    if chromatic and ref.shape[1] != 3:
        raise ConfigError(f"FSIMc needs RGB images, got {ref.shape[1]} channel(s)")
    if not chromatic and ref.shape[1] != 1:
        raise ConfigError(f"FSIM works on one plane (color=gray or y), got {ref.shape[1]} channels")
    f = max(1, round(min(ref.shape[-2:]) / 256))
    if chromatic:
        m = torch.tensor(_YIQ if chroma == "matlab" else _YIQ_LIBRARIES, dtype=ref.dtype, device=ref.device)
        ref, dist = torch.einsum("kc,nchw->nkhw", m, ref), torch.einsum("kc,nchw->nkhw", m, dist)
    ref, dist = matlab_mean_decimate(ref, f), matlab_mean_decimate(dist, f)
    y1, y2 = ref[:, :1], dist[:, :1]
    pc1, pc2 = phase_congruency(y1), phase_congruency(y2)
    pc_max = torch.maximum(pc1, pc2)
    sim = _similarity(_gradient(y1), _gradient(y2), _T2) * _similarity(pc1, pc2, _T1) * pc_max
    if chromatic:
        iq = _similarity(ref[:, 1:2], dist[:, 1:2], _T3) * _similarity(ref[:, 2:3], dist[:, 2:3], _T4)
        # real((S_I S_Q)^lambda) in MATLAB: a negative product contributes |.|^lambda cos(pi lambda)
        sim = sim * iq.abs() ** _LAMBDA
        if chroma == "matlab":
            sim = sim * torch.where(iq < 0, math.cos(math.pi * _LAMBDA), 1.0)
    return sim.sum(dim=(1, 2, 3)) / pc_max.sum(dim=(1, 2, 3))


@register_metric("fsim")
class FSIM(Metric):
    summary = "feature similarity on luma (phase congruency + gradient, Zhang 2011)"
    reference = "FeatureSIM.m (Zhang 2011); pyiqa fsim and piq fsim (chromatic=False)"
    colors = ("gray", "y")
    default_color = "gray"

    def compute(self, x, y):
        return fsim(x, y, chromatic=False)


@register_metric("fsimc")
class FSIMc(Metric):
    summary = "FSIM with YIQ chroma (FSIMc, Zhang 2011), RGB images"
    reference = "FeatureSIM.m FSIMc (Zhang 2011); pyiqa fsim and piq fsim (chromatic=True)"
    colors = ("rgb",)
    default_color = "rgb"

    def __init__(self, color: str | None = None, crop: int = 0, chroma: str = "matlab") -> None:
        super().__init__(color, crop)
        if chroma not in ("matlab", "libraries"):
            raise ConfigError(f"metric fsimc: chroma must be matlab or libraries, not {chroma!r}")
        self.chroma = chroma

    def compute(self, x, y):
        if x.shape[1] == 1:  # a gray image has no chroma: I = Q = 0 on both sides
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        return fsim(x, y, chromatic=True, chroma=self.chroma)
