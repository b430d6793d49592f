"""No-reference measures: a simple sharpness score for outputs without ground truth.

``sharpness`` is the variance of the 4-neighbour Laplacian of the luma (0..255 scale, valid filtering): the classic
blur measure (Pech-Pacheco et al. 2000, "variance of Laplacian"). It ranks one image's blurred/sharpened versions
well; it is not a perceptual quality score and over-sharpening or noise raise it too. NIQE is not here yet
(docs/metrics.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Metric, register_metric


def laplacian_variance(x: torch.Tensor) -> torch.Tensor:
    """Variance (N - 1) of the valid 3x3 Laplacian response per image, averaged over channels."""
    n, c, h, w = x.shape
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    lap = F.conv2d(x.reshape(n * c, 1, h, w), k.view(1, 1, 3, 3))
    return lap.flatten(1).var(dim=1).view(n, c).mean(dim=1)


@register_metric("sharpness")
class Sharpness(Metric):
    summary = "no-reference: variance of the Laplacian of the luma (higher = sharper)"
    reference = "Pech-Pacheco 2000 (variance of Laplacian); no library reference, tested on blur series"
    no_reference = True
    default_color = "gray"

    def compute(self, x, y):
        return laplacian_variance(x)
