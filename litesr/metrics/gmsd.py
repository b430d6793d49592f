"""GMSD (Xue, Zhang, Mou, Bovik 2014) as the authors' ``GMSD.m``: 2x2 mean filter and decimation by 2, Prewitt
gradients (``[1 0 -1]/3`` in 3 rows, zero borders), quality map ``(2 m1 m2 + T) / (m1^2 + m2^2 + T)`` with T = 170
on the 0..255 scale, score = its standard deviation (N - 1). Lower is better; 0 for identical images.

pyiqa and piq agree with this on even sizes (they add 1e-12 under the square root, which changes nothing measurable).
On odd sizes they drop the last row/column before the 2x2 mean; ``GMSD.m`` keeps it, averaged with the zero border
of ``conv2(..., 'same')``; litesr follows the MATLAB code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._filters import conv_same
from .base import Metric, register_metric


def gmsd(x: torch.Tensor, y: torch.Tensor, t: float = 170.0, eps: float = 0.0) -> torch.Tensor:
    """GMSD per image of two (N, C, H, W) batches on the 0..255 scale (per channel, then averaged). ``eps`` goes under
    the gradient-magnitude square root (a loss needs it: the root's derivative is infinite at a flat patch)."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    y = y.reshape(n * c, 1, h, w)
    # conv2(Y, ones(2)/4, 'same') then Y(1:2:end, 1:2:end): odd sizes meet the zero border.
    x = F.avg_pool2d(F.pad(x, (0, w % 2, 0, h % 2)), 2)
    y = F.avg_pool2d(F.pad(y, (0, w % 2, 0, h % 2)), 2)
    dx = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=x.dtype, device=x.device) / 3.0
    gx = torch.sqrt(conv_same(x, dx) ** 2 + conv_same(x, dx.T) ** 2 + eps)
    gy = torch.sqrt(conv_same(y, dx) ** 2 + conv_same(y, dx.T) ** 2 + eps)
    quality = (2 * gx * gy + t) / (gx * gx + gy * gy + t)
    return quality.flatten(1).std(dim=1).view(n, c).mean(dim=1)


@register_metric("gmsd")
class GMSD(Metric):
    summary = "gradient magnitude similarity deviation (Xue 2014), 0 = identical"
    reference = "GMSD.m (Xue 2014); pyiqa gmsd and piq gmsd on even sizes"
    lower_is_better = True
    differentiable = True

    def compute(self, x, y):
        return gmsd(x, y)
