"""Learned upsamplers of the community "neosr / resselt" architectures (MoSR, MoESR, FDAT): DySample, LDA-AQU and
UniUpsample (version 1 for MoSR/MoESR, version 3 for FDAT, which adds three modes).

Not an architecture (the leading underscore keeps ``litesr.archs`` from treating it as one); names follow the code
those checkpoints were trained with, so state-dict keys match.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .blocks import LayerNorm2d

# The order of this tuple is stored in MoESR/FDAT checkpoints (``MetaUpsample[1]``): never reorder it.
UPSAMPLE_MODES = ("conv", "pixelshuffledirect", "pixelshuffle", "nearest+conv", "dysample")
# Version 3 of the block (FDAT) appends these; the indices of the first five stay.
UPSAMPLE_MODES_V3 = (*UPSAMPLE_MODES, "transpose+conv", "lda", "pa_up")


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


class LDAUpsampler(nn.Module):
    """LDA-AQU (local deformable attention, "adaptive query upsampling"): every output pixel queries the bilinear
    upsampled ``proj_q`` features against ``k_u`` x ``k_u`` key/value samples of the input taken at learned offsets
    (``conv_offset`` on each of ``n_groups`` channel groups, ``tanh`` times ``range_factor`` around a regular grid),
    with a learned bias on the keys. Key names follow FDAT's ``LDA_AQU``."""

    def __init__(self, in_channels: int, scale: int, reduction_factor: int = 4, num_heads: int = 1, k_e: int = 3,
                 k_u: int = 3, n_groups: int = 2, range_factor: float = 11, rpb: bool = True) -> None:
        super().__init__()
        self.k_u, self.num_heads, self.scale, self.n_groups = k_u, num_heads, scale, n_groups
        self.range_factor = range_factor
        self.hidden_dim = in_channels // reduction_factor
        self.attn_scale = (in_channels // (reduction_factor * num_heads)) ** -0.5
        self.proj_q = nn.Conv2d(in_channels, self.hidden_dim, 1, bias=False)
        self.proj_k = nn.Conv2d(in_channels, self.hidden_dim, 1, bias=False)
        group_channel = in_channels // (reduction_factor * n_groups)
        self.conv_offset = nn.Sequential(
            nn.Conv2d(group_channel, group_channel, 3, 1, 1, groups=group_channel, bias=False),
            LayerNorm2d(group_channel), nn.SiLU(), nn.Conv2d(group_channel, 2 * k_u**2, k_e, 1, k_e // 2))
        self.layer_norm = LayerNorm2d(in_channels)
        pad = (k_u - 1) // 2
        base = torch.arange(-pad, pad + 1, dtype=torch.float32)
        grid = torch.stack([base.repeat_interleave(k_u), base.repeat(k_u)], dim=1)  # (dy, dx) per kernel tap
        self.register_buffer("base_offset", grid.flatten().view(1, -1, 1, 1), persistent=False)
        if rpb:
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros(1, num_heads, 1, k_u**2, self.hidden_dim // num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def sampling_grid(self, offset: Tensor, out_h: int, out_w: int) -> Tensor:
        """(B', k*oH, k*oW, 2) grid_sample coordinates: kernel tap (i, j) of output pixel (y, x) at (i*oH + y,
        j*oW + x), as (x, y) normalised with align_corners=True."""
        b, k = offset.shape[0], self.k_u
        rows = torch.arange(out_h, device=offset.device, dtype=offset.dtype)
        cols = torch.arange(out_w, device=offset.device, dtype=offset.dtype)
        position = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).view(1, 1, out_h, 1, out_w, 2)
        offset = offset.view(b, k, k, 2, out_h, out_w).permute(0, 1, 4, 2, 5, 3) + position
        offset = offset.reshape(b, k * out_h, k * out_w, 2)
        y = 2 * offset[..., 0] / (out_h - 1) - 1
        x = 2 * offset[..., 1] / (out_w - 1) - 1
        return torch.stack([x, y], dim=-1)

    def sample(self, x: Tensor, grid: Tensor, out_h: int, out_w: int) -> Tensor:
        """(B', C, H, W) -> (B', k*k, C, oH, oW): the features at each output pixel's k*k sampling points."""
        k = self.k_u
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        b, c = out.shape[:2]
        return out.view(b, c, k, out_h, k, out_w).permute(0, 2, 4, 1, 3, 5).reshape(b, k * k, c, out_h, out_w)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        out_h, out_w = int(h * self.scale), int(w * self.scale)
        g, heads, taps = self.n_groups, self.num_heads, self.k_u**2
        v = x
        x = self.layer_norm(x)
        q = F.interpolate(self.proj_q(x), (out_h, out_w), mode="bilinear", align_corners=True)
        offset = self.conv_offset(q.view(b * g, -1, out_h, out_w)).tanh() * self.range_factor
        grid = self.sampling_grid(offset + self.base_offset.to(x.dtype), out_h, out_w)
        k = self.sample(self.proj_k(x).view(b * g, self.hidden_dim // g, h, w), grid, out_h, out_w)
        v = self.sample(v.view(b * g, c // g, h, w), grid, out_h, out_w)
        n = out_h * out_w

        def by_head(t: Tensor) -> Tensor:  # (b*g, taps, ch, oH, oW) -> (b, heads, n, taps, g*ch/heads)
            t = t.view(b, g, taps, t.shape[2], out_h, out_w).permute(0, 4, 5, 2, 1, 3).reshape(b, n, taps, -1)
            return t.view(b, n, taps, heads, -1).permute(0, 3, 1, 2, 4)

        k, v = by_head(k), by_head(v)
        if hasattr(self, "relative_position_bias_table"):
            k = k + self.relative_position_bias_table
        q = q.view(b, heads, -1, n).transpose(2, 3).unsqueeze(3) * self.attn_scale  # b, heads, n, 1, ch
        out = (q @ k.transpose(-1, -2)).softmax(dim=-1) @ v  # b, heads, n, 1, ch
        return out.view(b, heads, out_h, out_w, -1).permute(0, 1, 4, 2, 3).reshape(b, -1, out_h, out_w)


class PixelAttention(nn.Module):
    """``x * sigmoid(conv1x1(x))`` (FDAT's ``PA``, key ``conv.0``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv(x)


def _transposed_v3(in_dim: int, out_dim: int, scale: int) -> list[nn.Module]:
    if scale == 2:
        m: list[nn.Module] = [nn.ConvTranspose2d(in_dim, out_dim, 4, 2, 1)]
    elif scale == 3:
        m = [nn.ConvTranspose2d(in_dim, out_dim, 3, 3, 0)]
    elif scale == 4:
        m = [nn.ConvTranspose2d(in_dim, in_dim, 4, 2, 1), nn.GELU(), nn.ConvTranspose2d(in_dim, out_dim, 4, 2, 1)]
    else:
        raise ConfigError(f"upsampler 'transpose+conv': scale {scale} is not supported (2, 3 and 4 are)")
    return [*m, nn.Conv2d(out_dim, out_dim, 3, 1, 1)]


class UniUpsample(nn.Sequential):
    """One of :data:`UPSAMPLE_MODES` (``version`` 1) or :data:`UPSAMPLE_MODES_V3` (``version`` 3, FDAT: also
    'transpose+conv', 'lda', 'pa_up', and 'dysample' / 'lda' behind a conv to ``mid_dim`` when it differs), with a
    ``MetaUpsample`` uint8 buffer recording (version, mode index, scale, in_dim, out_dim, mid_dim, group), from which
    detection reads the configuration back."""

    def __init__(self, upsample: str, scale: int = 2, in_dim: int = 64, out_dim: int = 3, mid_dim: int = 64,
                 group: int = 4, *, version: int = 1) -> None:
        modes = {1: UPSAMPLE_MODES, 3: UPSAMPLE_MODES_V3}.get(version)
        if modes is None:
            raise ConfigError(f"UniUpsample version must be 1 or 3, not {version}")
        if upsample not in modes:
            raise ConfigError(f"upsampler must be one of {', '.join(modes)}, not {upsample!r}")
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
        elif upsample == "transpose+conv":
            m += _transposed_v3(in_dim, out_dim, scale)
        elif upsample == "pa_up":
            for f in factors:
                m += [nn.Upsample(scale_factor=f), nn.Conv2d(in_dim, mid_dim, 3, 1, 1), PixelAttention(mid_dim),
                      nn.LeakyReLU(negative_slope=0.2, inplace=True), nn.Conv2d(mid_dim, mid_dim, 3, 1, 1),
                      nn.LeakyReLU(negative_slope=0.2, inplace=True)]
                in_dim = mid_dim  # so MetaUpsample[3] of 'pa_up' records mid_dim, as FDAT's files have it
            m.append(nn.Conv2d(mid_dim, out_dim, 3, 1, 1))
        else:  # dysample, lda
            width = in_dim
            if version == 3 and mid_dim != in_dim:
                m += [nn.Conv2d(in_dim, mid_dim, 3, 1, 1), nn.LeakyReLU(inplace=True)]
                width = mid_dim
            if upsample == "dysample":
                m.append(DySample(width, out_dim, scale, group))
            else:
                m += [LDAUpsampler(width, scale), nn.Conv2d(width, out_dim, 3, 1, 1)]
        super().__init__(*m)
        meta = [version, modes.index(upsample), scale, in_dim, out_dim, mid_dim, group]
        # Built on the meta device (parameter counts, detection checks), the record still needs its values: keep it
        # on the CPU there.
        device = "cpu" if torch.empty(0).is_meta else None
        self.register_buffer("MetaUpsample", torch.tensor(meta, dtype=torch.uint8, device=device))
