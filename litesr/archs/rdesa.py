"""RDESA: residual distillation blocks with channel attention, and enhanced spatial attention (litesr's seed network).

Layout (state-dict names in brackets):

- head: conv3x3 3 -> C + ReLU (``head.0``);
- N residual distillation blocks (``blocks.i``): three conv3x3 + ReLU (``c1``, ``c2``, ``c3``) whose three outputs are
  concatenated, fused back to C by a 1x1 conv (``fuse``), re-weighted by RCAN channel attention (``ca``) and added to
  the block input;
- the N block outputs concatenated and fused by a 1x1 conv (``fuse``); enhanced spatial attention (``esa``, RLFN's
  pruned form with 16 channels); the long skip from the head;
- conv3x3 to 3 * scale^2 and PixelShuffle (``upsampler.0``).

The three convs of a block are sequential, each feeding the next, as in RFDN's distillation chain: the
concatenation then carries features of 3x3, 5x5 and 7x7 receptive field for the 1x1 fusion to mix. Run in parallel
on the block input, three 3x3 convs followed by a concatenation would be exactly one 3x3 conv to 3C, i.e. a single
wider layer with no depth and no multi-scale features.

``norm`` (none | batch | layer) puts a normalisation after each of the three convs of a block (``n1``-``n3``:
BatchNorm2d or channel LayerNorm), to reproduce the point of the notes about covariate shift and SR (EDSR removed
BatchNorm: it normalises away the range information SR needs). ``none``, the default, adds no layer and no tensor,
so the shipped weights load unchanged.

RGB in [0, 1]. ESA's strided conv and 7x7/3 max-pool need at least 15 pixels per side; smaller inputs are padded
inside ``forward``.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import pixelshuffle_scale, register_swappable_tail, tail_upsampler
from .base import SRModel
from .blocks import ESA, CALayer, LayerNorm2d, conv, run_at_least

NORMS = ("none", "batch", "layer")


def make_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation after each conv of a block: nothing (Identity: no state-dict entry), BatchNorm2d or
    LayerNorm2d."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return LayerNorm2d(channels)
    raise ValueError(f"rdesa: norm must be one of {', '.join(NORMS)}, not {kind!r}")


class ResidualDistillationBlock(nn.Module):
    """Three chained conv3x3 + ReLU, their outputs concatenated, 1x1 fusion, channel attention, residual."""

    def __init__(self, channels: int, reduction: int = 16, norm: str = "none") -> None:
        super().__init__()
        self.c1 = conv(channels, channels)
        self.c2 = conv(channels, channels)
        self.c3 = conv(channels, channels)
        self.n1, self.n2, self.n3 = (make_norm(norm, channels) for _ in range(3))
        self.act = nn.ReLU(inplace=True)
        self.fuse = conv(channels * 3, channels, 1)
        self.ca = CALayer(channels, reduction)

    def forward(self, x: Tensor) -> Tensor:
        out1 = self.act(self.n1(self.c1(x)))
        out2 = self.act(self.n2(self.c2(out1)))
        out3 = self.act(self.n3(self.c3(out2)))
        return self.ca(self.fuse(torch.cat([out1, out2, out3], dim=1))) + x


def _detect(sd: StateDict) -> dict | None:
    if "blocks.0.c1.weight" not in sd or "blocks.0.ca.conv_du.0.weight" not in sd or "esa.conv1.weight" not in sd:
        return None
    if "upsampler.0.weight" not in sd:  # a swapped tail: its config comes from the checkpoint's metadata
        return None
    channels = sd["head.0.weight"].shape[0]
    return {
        "scale": pixelshuffle_scale(sd, "upsampler.0.weight", 3),
        "channels": channels,
        "num_blocks": len({m.group(1) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}),
        "reduction": channels // sd["blocks.0.ca.conv_du.0.weight"].shape[0],
        "esa_channels": sd["esa.conv1.weight"].shape[0],
        **({} if "blocks.0.n1.weight" not in sd else
           {"norm": "batch" if "blocks.0.n1.running_mean" in sd else "layer"}),
    }


@register_arch("rdesa", scales=(2, 3, 4), detect=_detect, paper="litesr seed network",
               tiny={"channels": 16, "num_blocks": 2, "reduction": 4, "esa_channels": 8})
class RDESA(SRModel):
    """RDESA: residual distillation blocks with channel attention, 1x1 fusion of all blocks, ESA, long skip."""

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1
    min_size = ESA.min_size  # ESA's strided conv and max-pool need 15 pixels per side

    def __init__(self, scale: int = 4, channels: int = 48, num_blocks: int = 4, reduction: int = 16,
                 esa_channels: int = 16, upsampler: str = "pixelshuffle", norm: str = "none") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"rdesa: norm must be one of {', '.join(NORMS)}, not {norm!r}")
        self.scale = scale
        self.head = nn.Sequential(conv(3, channels), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList([ResidualDistillationBlock(channels, reduction, norm) for _ in range(num_blocks)])
        self.fuse = conv(channels * num_blocks, channels, 1)
        self.esa = ESA(channels, esa_channels, full=False)
        self.upsampler = tail_upsampler("rdesa", upsampler, channels, scale, 3)

    def _forward(self, x: Tensor) -> Tensor:
        head = self.head(x)
        outs = []
        out = head
        for block in self.blocks:
            out = block(out)
            outs.append(out)
        return self.upsampler(self.esa(self.fuse(torch.cat(outs, dim=1))) + head)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


register_variant("rdesa", "rdesa", {}, description="RDESA (48 channels, 4 blocks), about 300K parameters at x4")
register_variant("rdesa_s", "rdesa", {"channels": 32, "num_blocks": 4}, description="RDESA-S (32 channels, 4 blocks)",
                 pretrained={2: "rdesa_s_x2.safetensors", 3: "rdesa_s_x3.safetensors", 4: "rdesa_s_x4.safetensors"})
register_variant("rdesa_l", "rdesa", {"channels": 64, "num_blocks": 6}, description="RDESA-L (64 channels, 6 blocks)")

register_swappable_tail("rdesa")  # --model-opt upsampler=NAME (litesr.upsamplers)
