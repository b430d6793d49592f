"""SCNet: Fully 1x1 Convolutional Network for Lightweight Image Super-Resolution (Wu, Jiang, Jiang and Liu, Machine
Intelligence Research 2024; arXiv 2307.16140). Official code: github.com/Aitical/SCNet (state-dict names follow
``basicsr/archs/SCNet_arch.py``).

Every convolution is 1x1; spatial context comes from a parameter-free shift (``Shift8``): the channels split into
eight equal groups, each moved one pixel towards one of the eight neighbours (zero filled at the border). The body
is SRResNet-like: ``conv_first`` (1x1) + LeakyReLU(0.1), ``num_block`` residual blocks ``x + conv2(relu(shift(
conv1(x))))``, then one upsampling stage (x2, x3) or two x2 stages (x4, three for x8), each followed by
LeakyReLU(0.1), and ``conv_hr`` + LeakyReLU + ``conv_last``, plus the bilinear upscaled input (align_corners False).

Two upsampling stages exist in the official code: the default ``UpShiftMLP`` (bilinear upsampling, 1x1,
LeakyReLU(0.02), shift, 1x1: keys ``upconvN.up_layer.{1,4}``) and ``UpShiftPixelShuffle`` (1x1, LeakyReLU(0.02),
shift, 1x1 to ``dim * s^2``, PixelShuffle: keys ``upconvN.up_layer.{0,3}``; the paper's Table 7 ablation, better).

Detection: the pixel-shuffle form shows its scale in the last 1x1 of each stage; the MLP form shows only the number
of stages, and its x2 and x3 files hold exactly the same tensors: a one-stage MLP file is read as x2 (pass the model
and scale by hand for a x3 one). The paper's SCNet-T is the official test configuration (64 channels, 16 blocks).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed

# (row, column) offset each of the eight channel groups is read from, in the official group order.
_SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1), (1, 1), (1, -1), (-1, 1), (-1, -1))


class Shift8(nn.Module):
    """Parameter-free spatial shift: group ``k`` of eight takes each pixel's neighbour at ``_SHIFTS[k]`` (zeros past
    the border). The channel count must be a multiple of 8, as the official code asserts."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if x.shape[1] != 8 * self.groups:
            raise ValueError(f"Shift8 expects {8 * self.groups} channels, got {x.shape[1]}")
        padded = F.pad(x, (1, 1, 1, 1))
        parts = [padded[:, k * self.groups:(k + 1) * self.groups, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                 for k, (dy, dx) in enumerate(_SHIFTS)]
        return torch.cat(parts, dim=1)


class ResidualBlockShift(nn.Module):
    """``x + conv2(relu(shift(conv1(x))))`` with 1x1 convolutions."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shift = Shift8(num_feat // 8)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.shift(self.conv1(x))))


class UpShiftMLP(nn.Module):
    """Bilinear upsampling, then 1x1, LeakyReLU(0.02), shift, 1x1 (the official default stage)."""

    def __init__(self, dim: int, scale: int = 2) -> None:
        super().__init__()
        self.up_layer = nn.Sequential(
            nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False),
            nn.Conv2d(dim, dim, 1), nn.LeakyReLU(0.02), Shift8(dim // 8), nn.Conv2d(dim, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.up_layer(x)


class UpShiftPixelShuffle(nn.Module):
    """1x1, LeakyReLU(0.02), shift, 1x1 to ``dim * scale^2``, PixelShuffle."""

    def __init__(self, dim: int, scale: int = 2) -> None:
        super().__init__()
        self.up_layer = nn.Sequential(
            nn.Conv2d(dim, dim, 1), nn.LeakyReLU(0.02), Shift8(dim // 8), nn.Conv2d(dim, dim * scale * scale, 1),
            nn.PixelShuffle(scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.up_layer(x)


def _stage_scales(scale: int) -> list[int]:
    if scale in (2, 3):
        return [scale]
    if scale in (4, 8):
        return [2] * (2 if scale == 4 else 3)
    raise ValueError(f"SCNet supports x2, x3, x4 and x8, not x{scale}")


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "conv_first.weight" not in sd or "body.0.conv1.weight" not in sd or "conv_hr.weight" not in sd:
        return None
    if tuple(sd["conv_first.weight"].shape[-2:]) != (1, 1):  # SRResNet-style nets share these names with 3x3 kernels
        return None
    stages = count_indexed(sd, r"upconv(\d+)\.")
    pixelshuffle = "upconv1.up_layer.0.weight" in sd
    if pixelshuffle:
        stage_scale = round((sd["upconv1.up_layer.3.weight"].shape[0] / sd["conv_first.weight"].shape[0]) ** 0.5)
        scale = stage_scale if stages == 1 else 2 ** stages
    else:
        scale = 2 if stages == 1 else 2 ** stages  # one MLP stage: x2 and x3 have the same tensors
    return {"scale": scale, "num_feat": int(sd["conv_first.weight"].shape[0]),
            "num_block": count_indexed(sd, r"body\.(\d+)\."), "use_pixelshuffle": pixelshuffle}


@register_arch("scnet", scales=(4, 2, 3, 8), detect=_detect, paper="Wu et al., Machine Intelligence Research 2024",
               tiny={"num_feat": 8, "num_block": 1})
class SCNet(SRModel):
    """SCNet: a fully 1x1 convolutional SRResNet with parameter-free spatial shifts and a bilinear global skip."""

    def __init__(self, scale: int = 4, num_feat: int = 64, num_block: int = 16, use_pixelshuffle: bool = False,
                 num_in_ch: int = 3, num_out_ch: int = 3) -> None:
        super().__init__()
        if num_feat % 8:
            raise ValueError(f"SCNet's shift needs num_feat divisible by 8, got {num_feat}")
        self.scale = scale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 1)
        self.body = nn.Sequential(*[ResidualBlockShift(num_feat) for _ in range(num_block)])
        stage = UpShiftPixelShuffle if use_pixelshuffle else UpShiftMLP
        self.stage_names = []
        for index, stage_scale in enumerate(_stage_scales(scale), start=1):
            setattr(self, f"upconv{index}", stage(num_feat, stage_scale))
            self.stage_names.append(f"upconv{index}")
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        for name in self.stage_names:
            out = self.lrelu(getattr(self, name)(out))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


# The paper's tables were not readable here: the variants record the official configurations (options/test/SCNet/
# SCNet-T-x4*.yml) and their parameter counts by the official code, without published PSNR.
register_variant("scnet", "scnet", {}, description="SCNet-T (64 channels, 16 blocks, bilinear MLP upsampling) "
                 "[official options/test/SCNet/SCNet-T-x4.yml]")
register_variant("scnet_t_ps", "scnet", {"use_pixelshuffle": True},
                 description="SCNet-T with pixel-shuffle upsampling [official options/test/SCNet/SCNet-T-x4-PS.yml]")
