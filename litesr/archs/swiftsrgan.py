"""Swift-SRGAN: Rethinking Super-Resolution for Efficient and Real-time Inference (Krishnan & Gupta, ICICC 2021).

SRGAN's generator built from depthwise-separable convs (depthwise k x k, then pointwise 1x1): a 9x9 head with
PReLU, ``num_blocks`` residual blocks (separable conv, BN, PReLU, separable conv, BN, plus input), a separable conv
with BN and a skip from the head, per factor 2 a separable conv to 4C, PixelShuffle and PReLU, and a 9x9 separable
conv to RGB; output ``(tanh + 1) / 2``. Convs followed by BN carry no bias. BN makes the output depend on
``train()``/``eval()``.

State-dict names follow the official code (Koushik0901/Swift-SRGAN ``swift-srgan/models.py``): ``initial.cnn``,
``residual.N.block{1,2}.{cnn.depthwise,cnn.pointwise,bn,act}``, ``convblock``, ``upsampler.N.{conv,act}``,
``final_conv``. Input and output are RGB in [0, 1]; fully convolutional (any size, tiles freely).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed


class SeparableConv2d(nn.Module):
    """Depthwise k x k (groups = in) then pointwise 1x1."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, *, bias: bool = True) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, kernel_size, padding=kernel_size // 2, groups=in_ch, bias=bias)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class ConvBlock(nn.Module):
    """Separable conv, BN (optional), PReLU (optional; the official module keeps its weight even when unused)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, *, use_act: bool = True, use_bn: bool = True) -> None:
        super().__init__()
        self.use_act = use_act
        self.cnn = SeparableConv2d(in_ch, out_ch, kernel_size, bias=not use_bn)
        self.bn = nn.BatchNorm2d(out_ch) if use_bn else nn.Identity()
        self.act = nn.PReLU(num_parameters=out_ch)

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.cnn(x))
        return self.act(x) if self.use_act else x


class UpsampleBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = SeparableConv2d(channels, channels * 4, 3)
        self.ps = nn.PixelShuffle(2)
        self.act = nn.PReLU(num_parameters=channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.ps(self.conv(x)))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1 = ConvBlock(channels, channels, 3)
        self.block2 = ConvBlock(channels, channels, 3, use_act=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.block2(self.block1(x)) + x


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "initial.cnn.depthwise.weight" not in sd or "final_conv.pointwise.weight" not in sd:
        return None
    return {
        "scale": 2 ** count_indexed(sd, r"upsampler\.(\d+)\."),
        "in_channels": int(sd["initial.cnn.depthwise.weight"].shape[0]),
        "num_channels": int(sd["initial.cnn.pointwise.weight"].shape[0]),
        "num_blocks": count_indexed(sd, r"residual\.(\d+)\."),
    }


@register_arch("swiftsrgan", scales=(4, 2, 8), detect=_detect, paper="Krishnan & Gupta, ICICC 2021 (Swift-SRGAN)",
               tiny={"num_channels": 8, "num_blocks": 2})
class SwiftSRGAN(SRModel):
    """Swift-SRGAN generator: SRGAN with depthwise-separable convs (paper: 16 blocks of 64 channels)."""

    def __init__(self, scale: int = 4, in_channels: int = 3, num_channels: int = 64, num_blocks: int = 16) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ConfigError(f"Swift-SRGAN upsamples by powers of 2, not x{scale}")
        self.scale = scale
        self.color_space = "rgb" if in_channels == 3 else "y"
        self.initial = ConvBlock(in_channels, num_channels, 9, use_bn=False)
        self.residual = nn.Sequential(*(ResidualBlock(num_channels) for _ in range(num_blocks)))
        self.convblock = ConvBlock(num_channels, num_channels, 3, use_act=False)
        self.upsampler = nn.Sequential(*(UpsampleBlock(num_channels) for _ in range(int(math.log2(scale)))))
        self.final_conv = SeparableConv2d(num_channels, in_channels, 9)

    def forward(self, x: Tensor) -> Tensor:
        initial = self.initial(x)
        x = self.convblock(self.residual(initial)) + initial
        return (torch.tanh(self.final_conv(self.upsampler(x))) + 1) / 2


register_variant("swiftsrgan", "swiftsrgan", {}, description="Swift-SRGAN generator (16 blocks, 64 channels)")
