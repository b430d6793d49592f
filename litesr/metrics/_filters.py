"""Small float64 filtering helpers shared by the classical metrics (MATLAB filter2/imfilter semantics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_1d(size: int, sigma: float, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """The normalised 1-D Gaussian whose outer product is MATLAB ``fspecial('gaussian', size, sigma)``."""
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


def filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``filter2(g g^T, x, 'valid')`` per channel of a (N, C, H, W) batch, as two separable passes."""
    c = x.shape[1]
    n = g.numel()
    x = F.conv2d(x, g.view(1, 1, n, 1).expand(c, 1, n, 1).to(x), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, n).expand(c, 1, 1, n).to(x), groups=c)


def downsample2_symmetric(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``x(1:2:end, 1:2:end)``: 2x2 means, an odd last
    row/column paired with itself."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def conv_same(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlation with an odd (kh, kw) kernel, zero padding, output the size of the input, per channel."""
    c = x.shape[1]
    kh, kw = kernel.shape
    return F.conv2d(x, kernel.to(x).view(1, 1, kh, kw).expand(c, 1, kh, kw), padding=(kh // 2, kw // 2), groups=c)
