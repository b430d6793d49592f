"""Learned upsamplers of the community "neosr / resselt" architectures (MoSR, MoESR): DySample and UniUpsample.

Not an architecture (the leading underscore keeps ``litesr.archs`` from treating it as one); names follow the code
those checkpoints were trained with, so state-dict keys match.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

# The order of this tuple is stored in MoESR/FDAT checkpoints (``MetaUpsample[1]``): never reorder it.
UPSAMPLE_MODES = ("conv", "pixelshuffledirect", "pixelshuffle", "nearest+conv", "dysample")


class DySample(nn.Module):
    """DySample (Liu et al., ICCV 2023, "Learning to Upsample by Learning to Sample"): per output pixel, a learned
    offset (``offset`` scaled by a sigmoid ``scope``, times 0.5) around the regular sub-pixel grid (``init_pos``);
    the features are bilinearly sampled there in ``groups`` channel groups, then ``end_conv`` (1x1) maps to output."""

    def __init__(self, in_channels: int, out_ch: int, scale: int = 2, groups: int = 4,
                 end_convolution: bool = True) -> None:
        super().__init__()
        if in_channels < groups or in_channels % groups:
            raise ConfigError(f"DySample: {in_channels} channels do not split into {groups} groups")
        self.scale, self.groups = scale, groups
        self.end_conv = nn.Conv2d(in_channels, out_ch, 1) if end_convolution else None
        self.offset = nn.Conv2d(in_channels, 2 * groups * scale**2, 1)
        self.scope = nn.Conv2d(in_channels, 2 * groups * scale**2, 1, bias=False)
        nn.init.trunc_normal_(self.offset.weight, std=0.02)
        nn.init.zeros_(self.scope.weight)
        self.register_buffer("init_pos", self._init_pos())

    def _init_pos(self) -> Tensor:
        h = torch.arange((-self.scale + 1) / 2, (self.scale - 1) / 2 + 1) / self.scale
        grid = torch.stack(torch.meshgrid([h, h], indexing="ij")).transpose(1, 2)
        return grid.repeat(1, self.groups, 1).reshape(1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        offset = self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos
        b, _, h, w = offset.shape
        offset = offset.view(b, 2, -1, h, w)
        coords_h = torch.arange(h, device=x.device) + 0.5
        coords_w = torch.arange(w, device=x.device) + 0.5
        coords = torch.stack(torch.meshgrid([coords_w, coords_h], indexing="ij")).transpose(1, 2)
        coords = coords.unsqueeze(1).unsqueeze(0).to(x.dtype)
        normalizer = torch.tensor([w, h], dtype=x.dtype, device=x.device).view(1, 2, 1, 1, 1)
        coords = 2 * (coords + offset) / normalizer - 1
        s = self.scale
        coords = (F.pixel_shuffle(coords.reshape(b, -1, h, w), s).view(b, 2, -1, s * h, s * w)
                  .permute(0, 2, 3, 4, 1).contiguous().flatten(0, 1))
        out = F.grid_sample(x.reshape(b * self.groups, -1, h, w), coords, mode="bilinear", align_corners=False,
                            padding_mode="border").view(b, -1, s * h, s * w)
        return self.end_conv(out) if self.end_conv is not None else out


class UniUpsample(nn.Sequential):
    """One of :data:`UPSAMPLE_MODES`, with a ``MetaUpsample`` uint8 buffer recording (version 1, mode index, scale,
    in_dim, out_dim, mid_dim, group), from which detection reads the configuration back."""

    def __init__(self, upsample: str, scale: int = 2, in_dim: int = 64, out_dim: int = 3, mid_dim: int = 64,
                 group: int = 4) -> None:
        if upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"upsampler must be one of {', '.join(UPSAMPLE_MODES)}, not {upsample!r}")
        if scale not in (1, 3) and scale & (scale - 1):
            raise ConfigError(f"upsampler {upsample!r}: scale {scale} is not supported (2^n and 3 are)")
        m: list[nn.Module] = []
        factors = [3] if scale == 3 else [2] * int(math.log2(scale)) if scale > 1 else []
        if scale == 1 or upsample == "conv":
            m.append(nn.Conv2d(in_dim, out_dim, 3, 1, 1))
        elif upsample == "pixelshuffledirect":
            m += [nn.Conv2d(in_dim, out_dim * scale**2, 3, 1, 1), nn.PixelShuffle(scale)]
        elif upsample == "pixelshuffle":
            m += [nn.Conv2d(in_dim, mid_dim, 3, 1, 1), nn.LeakyReLU(inplace=True)]
            for f in factors:
                m += [nn.Conv2d(mid_dim, f * f * mid_dim, 3, 1, 1), nn.PixelShuffle(f)]
            m.append(nn.Conv2d(mid_dim, out_dim, 3, 1, 1))
        elif upsample == "nearest+conv":
            for f in factors:
                m += [nn.Conv2d(in_dim, in_dim, 3, 1, 1), nn.Upsample(scale_factor=f),
                      nn.LeakyReLU(negative_slope=0.2, inplace=True)]
            m += [nn.Conv2d(in_dim, in_dim, 3, 1, 1), nn.LeakyReLU(negative_slope=0.2, inplace=True),
                  nn.Conv2d(in_dim, out_dim, 3, 1, 1)]
        else:
            m.append(DySample(in_dim, out_dim, scale, group))
        super().__init__(*m)
        meta = [1, UPSAMPLE_MODES.index(upsample), scale, in_dim, out_dim, mid_dim, group]
        self.register_buffer("MetaUpsample", torch.tensor(meta, dtype=torch.uint8))
