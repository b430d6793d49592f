"""HFFN: A High-Frequency Focused Network for Lightweight Single Image Super-Resolution (Weng, Chen, Zheng, Gu, Zhou
and Zhang, arXiv 2303.11701, 2023). Built from the paper's abstract: the paper lists no code ("-"), no GitHub copy
was found, and only the abstract (and the first lines of the introduction) of the stored copies could be read here,
not the method section, its figures or its tables.

What the abstract fixes, and litesr follows: the network is built of High-Frequency Focused Blocks (HFFBs) that
"selectively enhance high-frequency information while minimizing redundant feature computation of low-frequency
information", i.e. give most of the computation to the high-frequency part of the features and little to the
low-frequency part; and of Local Feature Fusion Blocks (LFFBs) that fuse the features of several HFFBs "in a local
region", using complementary information across layers. The paper evaluates on five benchmark sets with "a low
number of parameters" (lightweight SR).

Everything else is litesr's choice, not the paper's:

- Frequency split (:func:`frequency_split`): ``pooled = avg_pool(x, 2)``, ``low = bilinear(pooled)`` back to the
  feature size (``align_corners=False``), ``high = x - low``, so ``low + high == x``. No learned filter.
- HFFB: the high-frequency branch is a 3x3 conv (``high_conv1``), LeakyReLU(0.05), a 3x3 conv (``high_conv2``) and
  enhanced spatial attention (``esa``: litesr's shared :class:`~litesr.archs.blocks.ESA` in RFDN's full form, on
  ``esa_channels`` = 12 channels, a quarter of the default width); the low-frequency branch is one 1x1 conv
  (``low_conv``) at the pooled resolution, bilinearly upsampled afterwards (a 1x1 conv commutes with bilinear
  upsampling, so this is the 1x1 conv of ``low`` at a quarter of the cost). The two are concatenated, fused by a 1x1
  conv (``fuse``) and added to the block input. At the defaults the high branch takes 98.7% of the two branches' MACs
  (89% of the whole block's, the 1x1 fusion being the rest).
- LFFB: ``num_hffbs`` HFFBs in sequence (``blocks``); their outputs are concatenated, fused by a 1x1 conv
  (``fuse``) and added to the LFFB input.
- Network: 3x3 ``conv_first``, ``num_lffbs`` LFFBs (``body``), the outputs of all LFFBs concatenated and fused by a
  1x1 conv with LeakyReLU(0.05) (``fuse``), a 3x3 ``conv_after_body``, the long skip from ``conv_first``, and the
  zoo's one-conv pixel-shuffle tail (``upsampler.0``, swappable with ``--model-opt upsampler=NAME``). Inputs in
  [0, 1], no mean shift.
- Widths: 48 channels, three LFFBs of three HFFBs (nine HFFBs), ESA on 12 channels: 551,748 / 558,243 / 567,336
  parameters at x2 / x3 / x4, a size chosen to sit among 2023's lightweight models. The paper's parameter count and
  PSNR could not be read here, so none are registered; nothing says these widths are the paper's.

Size rule: odd H or W are reflect-padded to even inside ``forward`` (the 2x2 pooling) and the output cropped; inputs
smaller than 16 pixels (ESA's strided conv and 7x7 max-pool need 15; 16 keeps the side even) are padded to 16.
The split's 2x2 pooling and ESA's strided conv and max-pool are aligned to the top-left corner of the map, so tiled
inference differs slightly from whole-image inference.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import pixelshuffle_scale, register_swappable_tail, tail_upsampler
from .base import SRModel
from .blocks import ESA, conv, count_indexed, pad_to_multiple, run_at_least

# ESA's strided conv and 7x7 / 3 max-pool need 15 pixels; 16 keeps the padded side even for the 2x2 pooling.
_MIN_SIZE = 16


def frequency_split(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(pooled, low, high): the 2x2 average, it upsampled bilinearly to x's size, and ``high = x - low``."""
    pooled = F.avg_pool2d(x, 2)
    low = F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return pooled, low, x - low


class HFFB(nn.Module):
    """High-frequency focused block (litesr's form, see the module docstring): two 3x3 convs and ESA on ``x - low``,
    one 1x1 conv on the 2x2-pooled ``low``, a 1x1 fusion of both and a residual."""

    def __init__(self, channels: int, esa_channels: int) -> None:
        super().__init__()
        self.high_conv1 = conv(channels, channels, 3)
        self.high_conv2 = conv(channels, channels, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.esa = ESA(channels, esa_channels, full=True)
        self.low_conv = conv(channels, channels, 1)
        self.fuse = conv(2 * channels, channels, 1)

    def high_branch(self, high: Tensor) -> Tensor:
        return self.esa(self.high_conv2(self.act(self.high_conv1(high))))

    def low_branch(self, pooled: Tensor, size: tuple[int, int]) -> Tensor:
        return F.interpolate(self.low_conv(pooled), size=size, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled, _, high = frequency_split(x)
        fused = self.fuse(torch.cat([self.high_branch(high), self.low_branch(pooled, x.shape[-2:])], dim=1))
        return fused + x


class LFFB(nn.Module):
    """Local feature fusion block: HFFBs in sequence, all their outputs concatenated, a 1x1 fusion and a residual."""

    def __init__(self, channels: int, num_hffbs: int, esa_channels: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([HFFB(channels, esa_channels) for _ in range(num_hffbs)])
        self.fuse = conv(num_hffbs * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        outs = []
        out = x
        for block in self.blocks:
            out = block(out)
            outs.append(out)
        return self.fuse(torch.cat(outs, dim=1)) + x


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "body.0.blocks.0.high_conv1.weight" not in sd or "body.0.blocks.0.low_conv.weight" not in sd:
        return None
    if "conv_first.weight" not in sd or "conv_after_body.weight" not in sd or "upsampler.0.weight" not in sd:
        return None
    if "body.0.blocks.0.esa.conv1.weight" not in sd or "body.0.fuse.weight" not in sd or "fuse.0.weight" not in sd:
        return None
    num_feat = int(sd["conv_first.weight"].shape[0])
    num_lffbs = count_indexed(sd, r"body\.(\d+)\.fuse\.weight$")
    num_hffbs = count_indexed(sd, r"body\.0\.blocks\.(\d+)\.low_conv\.weight$")
    if tuple(sd["body.0.fuse.weight"].shape[:2]) != (num_feat, num_hffbs * num_feat):
        return None
    if tuple(sd["fuse.0.weight"].shape[:2]) != (num_feat, num_lffbs * num_feat):
        return None
    return {"scale": pixelshuffle_scale(sd, "upsampler.0.weight", 3), "num_feat": num_feat, "num_lffbs": num_lffbs,
            "num_hffbs": num_hffbs, "esa_channels": int(sd["body.0.blocks.0.esa.conv1.weight"].shape[0])}


@register_arch("hffn", scales=(2, 3, 4), detect=_detect, paper="Weng et al., arXiv 2303.11701 (2023)",
               tiny={"num_feat": 8, "num_lffbs": 1, "num_hffbs": 2, "esa_channels": 4})
class HFFN(SRModel):
    """HFFN, from the paper's abstract: LFFBs of high-frequency focused blocks, global fusion, pixel-shuffle tail."""

    def __init__(self, scale: int = 4, num_feat: int = 48, num_lffbs: int = 3, num_hffbs: int = 3,
                 esa_channels: int = 12, upsampler: str = "pixelshuffle") -> None:
        super().__init__()
        self.scale = scale
        self.conv_first = conv(3, num_feat, 3)
        self.body = nn.ModuleList([LFFB(num_feat, num_hffbs, esa_channels) for _ in range(num_lffbs)])
        self.fuse = nn.Sequential(conv(num_lffbs * num_feat, num_feat, 1), nn.LeakyReLU(0.05, inplace=True))
        self.conv_after_body = conv(num_feat, num_feat, 3)
        self.upsampler = tail_upsampler("hffn", upsampler, num_feat, scale, 3)

    def _forward(self, x: Tensor) -> Tensor:
        first = self.conv_first(x)
        outs = []
        out = first
        for lffb in self.body:
            out = lffb(out)
            outs.append(out)
        return self.upsampler(self.conv_after_body(self.fuse(torch.cat(outs, dim=1))) + first)

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = pad_to_multiple(x, 2)  # the 2x2 pooling of the frequency split needs even sides
        out = run_at_least(self._forward, x, _MIN_SIZE, self.scale)
        return out[..., : h * self.scale, : w * self.scale]


register_variant("hffn", "hffn", {}, description="HFFN, from the paper's abstract (frequency split, widths and depths "
                 "are litesr's choice, see module docstring; no published figures registered)")

register_swappable_tail("hffn")  # --model-opt upsampler=NAME (litesr.upsamplers)
