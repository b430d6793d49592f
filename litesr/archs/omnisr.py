"""Omni-SR: Omni Aggregation Networks for Lightweight Image Super-Resolution (Wang et al., CVPR 2023).

State-dict names follow the official code (Francis0625/Omni-SR, ``components/OmniSR.py``, ``ops/OSAG.py``,
``ops/OSA.py``, ``ops/esa.py``): ``input``, ``residual_layer.i`` (OSAG: ``residual_layer.j`` = OSA blocks then a 1x1
conv, and ``esa``), ``output``, ``up.0``. An OSA block is one ``nn.Sequential`` (``layer``) whose indices the keys
carry: 0 MBConv (local), 2 window self-attention over an ``window_size`` block (meso), 4/6/10/12 gated conv
feed-forwards, 5 channel attention inside each window, 8 self-attention over a dilated grid spanning the image
(global), 11 channel attention across windows; 1, 3, 7, 9 are the parameter-free window (un)partitions.

Parameter counts: the paper's model (64 channels, 5 OSAGs of one block, window 8, positional bias) has 784,604 /
793,259 / 805,376 parameters at x2 / x3 / x4. The paper's 772K / 780K / 792K are what ``thop`` reports: it counts no
``nn.Embedding`` (the positional-bias tables, 9,000), no custom ``LayerNorm2d`` (3,840) and no parameter held by a
module with children (the channel-attention temperatures, 40); :func:`paper_parameter_count` reproduces that
(771,724 / 780,379 / 792,496).

Input in [0, 1]. Any size works: the input is zero-padded to a multiple of the window (as the official
``check_image_size``) and, below the 15 pixels the ESA's strided conv and 7x7 max-pool need, further to the next
window multiple; the output is cropped back.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import ESA, LayerNorm2d, count_indexed, relative_position_index

CHANNEL_HEADS = 4  # the channel attentions have 4 heads; the spatial ones 4 heads of dim // 4 channels


def pad_for_windows(x: Tensor, multiple: int, min_size: int = 1, mode: str = "constant") -> tuple[Tensor, int, int]:
    """Pad the bottom/right of an NCHW tensor to a multiple of ``multiple`` that is at least ``min_size``.

    ``mode``: 'constant' (zeros) or 'reflect' (edge replication where the input is too small to reflect).
    Returns the padded tensor and the original H, W.
    """
    h, w = x.shape[-2:]
    th, tw = (max(n, min_size) for n in (h, w))
    ph, pw = (-th) % multiple + th - h, (-tw) % multiple + tw - w
    if ph or pw:
        if mode == "reflect" and (ph >= h or pw >= w):
            mode = "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode) if mode != "constant" else F.pad(x, (0, pw, 0, ph))
    return x, h, w


class SqueezeExcitation(nn.Module):
    """SE gate of the MBConv: spatial mean, Linear down, SiLU, Linear up, sigmoid (keys ``gate.1``, ``gate.3``)."""

    def __init__(self, dim: int, shrinkage_rate: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * shrinkage_rate)
        self.gate = nn.Sequential(SpatialMean(), nn.Linear(dim, hidden, bias=False), nn.SiLU(),
                                  nn.Linear(hidden, dim, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)[:, :, None, None]


class SpatialMean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class MBConvResidual(nn.Module):
    """MBConv with expansion 1: 1x1, GELU, depthwise 3x3, GELU, SE, 1x1, plus the input (keys ``fn.*``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fn = nn.Sequential(
            nn.Conv2d(dim, dim, 1), nn.GELU(), nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.GELU(),
            SqueezeExcitation(dim), nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x


class ToWindows(nn.Module):
    """(B, C, H, W) -> (B, X, Y, ws, ws, C): ``grid=False`` cuts contiguous blocks, ``grid=True`` a dilated grid
    (window (x, y) gathers the pixels at rows w1 * X + x, columns w2 * Y + y)."""

    def __init__(self, window_size: int, grid: bool) -> None:
        super().__init__()
        self.ws, self.grid = window_size, grid

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        ws, nx, ny = self.ws, h // self.ws, w // self.ws
        if self.grid:
            return x.view(b, c, ws, nx, ws, ny).permute(0, 3, 5, 2, 4, 1)
        return x.view(b, c, nx, ws, ny, ws).permute(0, 2, 4, 3, 5, 1)


class FromWindows(nn.Module):
    """Inverse of :class:`ToWindows`."""

    def __init__(self, grid: bool) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, x: Tensor) -> Tensor:
        b, nx, ny, ws, _, c = x.shape
        if self.grid:
            return x.permute(0, 5, 3, 1, 4, 2).reshape(b, c, ws * nx, ws * ny)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, nx * ws, ny * ws)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window of a (B, X, Y, ws, ws, C) tensor, with a learned relative
    position bias (``rel_pos_bias``, an Embedding) when ``with_pe``."""

    def __init__(self, dim: int, window_size: int, with_pe: bool) -> None:
        super().__init__()
        dim_head = dim // 4
        self.heads, self.scale, self.with_pe = dim // dim_head, dim_head**-0.5, with_pe
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim, bias=False))
        if with_pe:
            self.rel_pos_bias = nn.Embedding((2 * window_size - 1) ** 2, self.heads)
            self.register_buffer("rel_pos_indices", relative_position_index(window_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, nx, ny, ws, _, c = x.shape
        tokens = x.reshape(b * nx * ny, ws * ws, c)
        q, k, v = (t.reshape(t.shape[0], ws * ws, self.heads, -1).transpose(1, 2)
                   for t in self.to_qkv(tokens).chunk(3, dim=-1))
        sim = (q * self.scale) @ k.transpose(-2, -1)
        if self.with_pe:
            sim = sim + self.rel_pos_bias(self.rel_pos_indices).permute(2, 0, 1)
        out = (sim.softmax(dim=-1) @ v).transpose(1, 2).reshape(b * nx * ny, ws, ws, c)
        return self.to_out(out).view(b, nx, ny, ws, ws, c)


class PreNormResidual(nn.Module):
    """x + fn(LayerNorm(x)) over the last (channel) dimension."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x)) + x


class ConvPreNormResidual(PreNormResidual):
    """x + fn(LayerNorm2d(x)) on an NCHW tensor (eps 1e-6, the official custom LayerNorm)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__(dim, fn)
        self.norm = LayerNorm2d(dim)


class GatedConvFeedForward(nn.Module):
    """1x1 to 2x channels, depthwise 3x3, GELU(first half) * second half, 1x1 back; no biases."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project_in = nn.Conv2d(dim, dim * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(dim * 2, dim * 2, 3, padding=1, groups=dim * 2, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class ChannelAttention(nn.Module):
    """Transposed (channel-to-channel) attention with cosine similarity and a learned temperature per head.

    ``grid=False`` attends over the pixels of each ws x ws window; ``grid=True`` over the pixels at the same offset in
    every window (across the image).
    """

    def __init__(self, dim: int, window_size: int, grid: bool, heads: int = CHANNEL_HEADS) -> None:
        super().__init__()
        self.heads, self.ws, self.grid = heads, window_size, grid
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def _split(self, t: Tensor) -> Tensor:
        """(B, heads * d, H, W) -> (B, groups, heads, d, n) with n the pixels each channel vector spans."""
        b, c, h, w = t.shape
        ws, nx, ny = self.ws, h // self.ws, w // self.ws
        t = t.view(b, self.heads, c // self.heads, nx, ws, ny, ws)
        if self.grid:  # groups: offsets in the window; vectors: one pixel per window
            return t.permute(0, 4, 6, 1, 2, 3, 5).reshape(b, ws * ws, self.heads, c // self.heads, nx * ny)
        return t.permute(0, 3, 5, 1, 2, 4, 6).reshape(b, nx * ny, self.heads, c // self.heads, ws * ws)

    def _merge(self, t: Tensor, h: int, w: int) -> Tensor:
        b, _, heads, d, _ = t.shape
        ws, nx, ny = self.ws, h // self.ws, w // self.ws
        if self.grid:
            t = t.view(b, ws, ws, heads, d, nx, ny).permute(0, 3, 4, 5, 1, 6, 2)
        else:
            t = t.view(b, nx, ny, heads, d, ws, ws).permute(0, 3, 4, 1, 5, 2, 6)
        return t.reshape(b, heads * d, h, w)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (self._split(t) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out(self._merge(attn @ v, *x.shape[-2:]))


class OSABlock(nn.Module):
    """Omni self-attention block: MBConv, then block (meso) and grid (global) attention, each followed by a gated
    feed-forward, a channel attention and another feed-forward (``layer.0`` .. ``layer.12``)."""

    def __init__(self, dim: int, window_size: int, with_pe: bool) -> None:
        super().__init__()
        def aggregation(grid: bool) -> list[nn.Module]:
            """Spatial attention over blocks (meso) or the dilated grid (global), then FFN, channel attention, FFN."""
            return [
                ToWindows(window_size, grid),
                PreNormResidual(dim, WindowAttention(dim, window_size, with_pe)),
                FromWindows(grid),
                ConvPreNormResidual(dim, GatedConvFeedForward(dim)),
                ConvPreNormResidual(dim, ChannelAttention(dim, window_size, grid)),
                ConvPreNormResidual(dim, GatedConvFeedForward(dim)),
            ]

        self.layer = nn.Sequential(MBConvResidual(dim), *aggregation(grid=False), *aggregation(grid=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class OSAG(nn.Module):
    """Omni self-attention group: OSA blocks and a 1x1 conv with a residual, then ESA (RLFN's pruned form)."""

    def __init__(self, dim: int, block_num: int, window_size: int, with_pe: bool, bias: bool) -> None:
        super().__init__()
        self.residual_layer = nn.Sequential(*(OSABlock(dim, window_size, with_pe) for _ in range(block_num)),
                                            nn.Conv2d(dim, dim, 1, bias=bias))
        self.esa = ESA(dim, max(dim // 4, 16), full=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.esa(self.residual_layer(x) + x)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    first = "residual_layer.0.residual_layer.0.layer."
    if "input.weight" not in sd or "up.0.weight" not in sd or first + "0.fn.0.weight" not in sd:
        return None
    num_feat, num_in_ch = sd["input.weight"].shape[:2]
    bias_key = first + "2.fn.rel_pos_bias.weight"
    pe = bias_key in sd
    return {
        "scale": math.isqrt(sd["up.0.weight"].shape[0] // num_in_ch),
        "num_in_ch": int(num_in_ch),
        "num_out_ch": int(num_in_ch),
        "num_feat": int(num_feat),
        "res_num": count_indexed(sd, r"residual_layer\.(\d+)\.esa\."),
        "block_num": count_indexed(sd, r"residual_layer\.0\.residual_layer\.(\d+)\.") - 1,
        # Only the positional bias tables depend on the window; without them the official default (8) is assumed.
        "window_size": (math.isqrt(sd[bias_key].shape[0]) + 1) // 2 if pe else 8,
        "pe": pe,
        "bias": "input.bias" in sd,
    }


@register_arch("omnisr", scales=(2, 3, 4), detect=_detect, paper="Wang et al., CVPR 2023 (Omni-SR)",
               tiny={"num_feat": 8, "res_num": 1, "block_num": 1, "window_size": 4})
class OmniSR(SRModel):
    """Omni-SR: omni self-attention groups (local MBConv, meso window and global grid attention over space and
    channels, ESA) between a conv head and a pixel-shuffle upsampler. Defaults are the paper's model."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, res_num: int = 5,
                 block_num: int = 1, window_size: int = 8, pe: bool = True, bias: bool = True) -> None:
        super().__init__()
        if num_feat < 4 or num_feat % 4:
            raise ConfigError(f"num_feat must be a multiple of 4 (4 attention heads), not {num_feat}")
        self.scale, self.window_size = scale, window_size
        self.color_space = "rgb" if num_in_ch == 3 else "y"
        self.min_size = ESA.min_size
        self.residual_layer = nn.Sequential(*(OSAG(num_feat, block_num, window_size, pe, bias) for _ in range(res_num)))
        self.input = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=bias)
        self.output = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=bias)
        self.up = nn.Sequential(nn.Conv2d(num_feat, num_out_ch * scale**2, 3, 1, 1, bias=bias), nn.PixelShuffle(scale))

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = pad_for_windows(x, self.window_size, self.min_size)
        residual = self.input(x)
        out = self.up(self.output(self.residual_layer(residual)) + residual)
        return out[..., : h * self.scale, : w * self.scale]


def paper_parameter_count(model: nn.Module) -> int:
    """Parameters as the paper's ``thop`` profile counts them (see the module docstring)."""
    skipped = set()
    for module in model.modules():
        if isinstance(module, WindowAttention) and module.with_pe:
            skipped.add(id(module.rel_pos_bias.weight))
        elif isinstance(module, ConvPreNormResidual):
            skipped.update(id(p) for p in module.norm.parameters())
        elif isinstance(module, ChannelAttention):
            skipped.add(id(module.temperature))
    return sum(p.numel() for p in model.parameters() if id(p) not in skipped)


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_OMNISR_PUBLISHED = {
    2: {"Set5": (38.29, 0.9617), "Set14": (34.27, 0.9238), "B100": (32.41, 0.9026), "Urban100": (33.30, 0.9386),
        "Manga109": (39.53, 0.9792)},
    3: {"Set5": (34.77, 0.9304), "Set14": (30.70, 0.8489), "B100": (29.33, 0.8111), "Urban100": (29.12, 0.8712),
        "Manga109": (34.64, 0.9507)},
    4: {"Set5": (32.57, 0.8993), "Set14": (28.95, 0.7898), "B100": (27.81, 0.7439), "Urban100": (26.95, 0.8105),
        "Manga109": (31.50, 0.9192)},
}
register_variant("omnisr", "omnisr", {}, description="Omni-SR (64 channels, 5 OSAGs, window 8)"
                 " [published: SSIU (DF2K-trained); Mult-Adds: SSIU]",
                 paper_params={2: 772_000, 3: 780_000, 4: 792_000},
                 paper_psnr=_OMNISR_PUBLISHED, paper_macs={2: 172, 3: 78, 4: 45})
