"""Building blocks shared by several architectures. Each lives here once; architectures import them.

Names of sub-modules follow the official code of the architectures that use them, so state-dict keys match.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, *, bias: bool = True, stride: int = 1,
         groups: int = 1, dilation: int = 1, padding_mode: str = "zeros") -> nn.Conv2d:
    """A 'same'-padded convolution (padding = dilation * (k - 1) / 2), the default layer of most SR code."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=dilation * (kernel_size - 1) // 2,
                     bias=bias, groups=groups, dilation=dilation, padding_mode=padding_mode)


def pixelshuffle_block(in_channels: int, out_channels: int, scale: int, kernel_size: int = 3) -> nn.Sequential:
    """One conv to ``out_channels * scale^2`` then PixelShuffle (IMDN/RFDN/RLFN ``upsampler``; keys ``0.weight``)."""
    return nn.Sequential(conv(in_channels, out_channels * scale**2, kernel_size), nn.PixelShuffle(scale))


class Upsample(nn.Sequential):
    """EDSR/RCAN/SwinIR upsampler: log2(s) x (conv to 4C + PixelShuffle(2)) for powers of 2, conv to 9C + PS(3) for 3."""

    def __init__(self, scale: int, num_feat: int, *, bias: bool = True) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1, bias=bias), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1, bias=bias), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported; supported scales are 2^n and 3")
        super().__init__(*layers)


class UpsampleOneStep(nn.Sequential):
    """SwinIR 'pixelshuffledirect': a single conv to out_ch * s^2 and PixelShuffle(s)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__(nn.Conv2d(num_feat, (scale**2) * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


class MeanShift(nn.Conv2d):
    """Subtract (sign=-1) or add (sign=+1) the dataset RGB mean, as a frozen 1x1 conv (EDSR/RCAN/CARN keys)."""

    def __init__(self, rgb_range: float = 1.0, rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040),
                 rgb_std: tuple[float, float, float] = (1.0, 1.0, 1.0), sign: int = -1) -> None:
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


def channel_mean(x: Tensor) -> Tensor:
    return x.mean(dim=(2, 3), keepdim=True)


def channel_std(x: Tensor) -> Tensor:
    """Per-channel standard deviation over H, W (population, as IMDN's ``stdv_channels``)."""
    return (x - channel_mean(x)).pow(2).mean(dim=(2, 3), keepdim=True).pow(0.5)


class CALayer(nn.Module):
    """Squeeze-and-excitation channel attention of RCAN (``conv_du``: 1x1 down, ReLU, 1x1 up, sigmoid)."""

    def __init__(self, channels: int, reduction: int = 16, *, bias: bool = True) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(self.avg_pool(x))


class CCALayer(CALayer):
    """IMDN's contrast-aware channel attention: the squeeze is mean + standard deviation of each channel."""

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(channel_std(x) + channel_mean(x))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor (Restormer/NAFNet style ``weight``/``bias``)."""

    def __init__(self, channels: int, eps: float = 1e-6, *, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        y = y * self.weight.view(1, -1, 1, 1)
        return y + self.bias.view(1, -1, 1, 1) if self.bias is not None else y


class BodyLayerNorm(nn.Module):
    """Restormer's ``LayerNorm(dim, 'WithBias')``: channel LayerNorm (eps 1e-6) with its parameters under ``body``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = LayerNorm2d(channels, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "reflect") -> tuple[Tensor, int, int]:
    """Pad the bottom/right of an NCHW tensor to a multiple; returns the tensor and the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        if mode == "reflect" and (ph >= h or pw >= w):
            mode = "replicate"  # reflect needs pad < size; tiny inputs fall back to edge replication
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) -> (B * nW, ws, ws, C); H and W must be multiples of ``window_size``."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_reverse(windows: Tensor, window_size: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws, ws, C) -> (B, H, W, C)."""
    b = windows.shape[0] // ((h // window_size) * (w // window_size))
    x = windows.view(b, h // window_size, w // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)
