"""MoSR: "Mamba Out" super-resolution (Phhofm / umzi2, neosr 2024; ``neosr/archs/mosr_arch.py``), a community
architecture that spandrel loads.

A conv, ``n_block`` gated CNN blocks (MambaOut's unit: channel LayerNorm, a 3x3 ``fc1`` split into gate / identity
/ depthwise-``kernel_size`` conv parts, Mish, a 3x3 ``fc2``; the block returns ``out + input - 0.5``), a conv tail
(3x3 to 2C, Mish, 3x3, Mish, 1x1), plus a ``ConvBlock`` shortcut from the input (two 3x3 + Mish and a 1x1) minus
0.5, then the upsampler: ``ps`` (conv + PixelShuffle), ``gps`` (8 conv predictions averaged, PixelShuffle) or
``dys`` (DySample).

State-dict names follow that code: ``gblocks.0`` (first conv), ``gblocks.{1..n}.{norm,fc1,conv,fc2}``,
``gblocks.{n+1,n+3,n+5}`` (tail), ``shortcut.{block.0,block.2,conv11}``, ``upsampler``. Input and output are RGB
in [0, 1]; fully convolutional (any size, tiles freely).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from ._upsample import DySample
from .base import SRModel
from .blocks import DropPath, LayerNorm2d, count_indexed, drop_path_rates


class GatedCNNBlock(nn.Module):
    """MambaOut's gated CNN unit on NCHW features; ``x + (out - 0.5)`` as in MoSR."""

    def __init__(self, dim: int, expansion_ratio: float, conv_ratio: float, kernel_size: int,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        hidden = int(expansion_ratio * dim)
        conv_channels = int(conv_ratio * dim)
        self.split_indices = [hidden, hidden - conv_channels, conv_channels]
        self.fc1 = nn.Conv2d(dim, hidden * 2, 3, 1, 1)
        self.act = nn.Mish()
        self.conv = nn.Conv2d(conv_channels, conv_channels, kernel_size, 1, kernel_size // 2, groups=conv_channels)
        self.fc2 = nn.Conv2d(hidden, dim, 3, 1, 1)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        for m in (self.fc1, self.conv, self.fc2):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        g, i, c = torch.split(self.fc1(self.norm(x)), self.split_indices, dim=1)
        out = self.act(self.fc2(self.act(g) * torch.cat((i, self.conv(c)), dim=1)))
        return self.drop_path(out) + (x - 0.5)


class ConvBlock(nn.Module):
    """Two 3x3 convs with Mish plus a 1x1 projection (AST's ``ConvBlock``)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.Mish(), nn.Conv2d(out_ch, out_ch, 3, 1, 1),
                                   nn.Mish())
        self.conv11 = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x) + self.conv11(x)


class GPS(nn.Module):
    """Geometric-ensemble PixelShuffle: 8 predictions from one conv, averaged, then PixelShuffle."""

    def __init__(self, dim: int, scale: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.in_to_k = nn.Conv2d(dim, scale * scale * out_ch * 8, kernel_size, 1, kernel_size // 2)
        self.ps = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.in_to_k(x)
        return self.ps(x.reshape(x.shape[0], 8, -1, x.shape[-2], x.shape[-1]).mean(dim=1))


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "gblocks.0.weight" not in sd or "gblocks.1.fc1.weight" not in sd or "shortcut.conv11.weight" not in sd:
        return None
    dim, in_ch = sd["gblocks.0.weight"].shape[:2]
    fc1, dw = sd["gblocks.1.fc1.weight"], sd["gblocks.1.conv.weight"]
    if "upsampler.init_pos" in sd:
        upsampler, out_ch = "dys", int(sd["upsampler.end_conv.weight"].shape[0])
        scale = math.isqrt(sd["upsampler.offset.weight"].shape[0] // 8)
    elif "upsampler.in_to_k.weight" in sd:
        upsampler, out_ch = "gps", int(in_ch)
        scale = math.isqrt(sd["upsampler.in_to_k.weight"].shape[0] // 8 // out_ch)
    else:
        upsampler, out_ch = "ps", int(in_ch)
        scale = math.isqrt(sd["upsampler.0.weight"].shape[0] // out_ch)
    return {
        "scale": scale, "in_ch": int(in_ch), "out_ch": out_ch, "dim": int(dim),
        "n_block": count_indexed(sd, r"gblocks\.(\d+)\.fc1\.weight$"), "upsampler": upsampler,
        "kernel_size": int(dw.shape[2]), "expansion_ratio": fc1.shape[0] / fc1.shape[1] / 2,
        "conv_ratio": dw.shape[0] / dim,
    }


@register_arch("mosr", scales=(4, 1, 2, 3, 8), detect=_detect, paper="neosr 2024 (MoSR, community architecture)",
               tiny={"n_block": 2, "dim": 16})
class MoSR(SRModel):
    """MoSR (defaults: 24 gated blocks of 64 channels, kernel 7, expansion 1.5, PixelShuffle)."""

    def __init__(self, scale: int = 4, in_ch: int = 3, out_ch: int = 3, n_block: int = 24, dim: int = 64,
                 upsampler: str = "ps", drop_path: float = 0.0, kernel_size: int = 7, expansion_ratio: float = 1.5,
                 conv_ratio: float = 1.0) -> None:
        super().__init__()
        if upsampler not in ("ps", "gps", "dys"):
            raise ConfigError(f"upsampler must be 'ps', 'gps' or 'dys', not {upsampler!r}")
        if upsampler != "dys":
            out_ch = in_ch  # as the official code: only DySample has its own output conv
        self.scale = scale
        self.color_space = "rgb" if in_ch == 3 else "y"
        rates = drop_path_rates(drop_path, [n_block])[0] if n_block else []
        self.gblocks = nn.Sequential(
            nn.Conv2d(in_ch, dim, 3, 1, 1),
            *(GatedCNNBlock(dim, expansion_ratio, conv_ratio, kernel_size, rates[i]) for i in range(n_block)),
            nn.Conv2d(dim, dim * 2, 3, 1, 1), nn.Mish(), nn.Conv2d(dim * 2, dim, 3, 1, 1), nn.Mish(),
            nn.Conv2d(dim, dim, 1),
        )
        self.shortcut = ConvBlock(in_ch, dim)
        if upsampler == "ps":
            self.upsampler = nn.Sequential(nn.Conv2d(dim, out_ch * scale**2, 3, 1, 1), nn.PixelShuffle(scale))
        elif upsampler == "gps":
            self.upsampler = GPS(dim, scale, out_ch)
        else:
            self.upsampler = DySample(dim, out_ch, scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.upsampler(self.gblocks(x) + (self.shortcut(x) - 0.5))


register_variant("mosr", "mosr", {}, description="MoSR (24 gated CNN blocks, 64 channels, PixelShuffle)")
