"""ELAN: Efficient Long-Range Attention Network for Image Super-Resolution (Zhang et al., ECCV 2022).

State-dict names follow the official code (xindongzhang/ELAN, ``models/elan_network.py`` and ``elan_block.py``):
``sub_mean`` / ``add_mean`` (frozen mean shifts), ``head.0``, ``body.i`` (ELAB: ``modules_lfe.lfe_j`` and
``modules_gmsa.gmsa_j``), ``tail.0``. An ELAB holds ``1 + n_share`` pairs of a local feature extractor (LFE: two shift
convolutions with a ReLU) and a group-wise multi-scale self-attention (GMSA). Only the first GMSA of an ELAB computes
attention maps (its 1x1 projection yields queries and values); the others reuse those maps on their own values
(shared attention). The channels are split in three groups attending in windows of ``window_sizes`` (4, 8, 16); every
second ELAB shifts its windows by half a window.

Shift convolution: the input channels fall into five groups shifted left, right, up, down or kept, then a 1x1 conv
mixes them. The official 'fast-training-speed' form stores the fixed depthwise shift kernel (``shift_conv.weight``,
a frozen parameter) and the 1x1 conv (``shift_conv.conv1x1``); the 'low-training-memory' form stores a full 3x3 conv
(``shift_conv.w``, ``shift_conv.b``) and its fixed mask (``shift_conv.m``). Both load; the fixed tensors are
recomputed on construction and loading keeps the recomputed values.

Parameter counts: ELAN-light has 582,012 trainable parameters at x2 (the paper's 582K); the fixed shift kernels add
38,880 (with the frozen mean shifts, 620,916 tensors in ``parameters()``, the 621K some later papers quote).

Input range: the official configs train with ``rgb_range: 255``, so models take pixels in [0, 255] (``rgb_range``).
Any size works: the input is reflect-padded to a multiple of the least common multiple of the window sizes inside
``forward`` and the output cropped, as the official ``check_image_size`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import DerivedBuffers, MeanShift, count_indexed, pad_to_multiple

SHIFT_GROUPS = 5  # left, right, up, down, identity
# Kernel tap (row, col) that each of the first four channel groups reads; the rest keep the centre tap.
_SHIFT_TAPS = ((1, 2), (1, 0), (2, 1), (0, 1))
CONV_TYPES = ("fast-training-speed", "low-training-memory")


def shift_taps(kernel: Tensor, channel_dim: int) -> Tensor:
    """Write the one-hot taps of the five shift groups, split along ``channel_dim`` (0 or 1), into a zero 3x3 kernel."""
    g = kernel.shape[channel_dim] // SHIFT_GROUPS
    groups = [slice(i * g, (i + 1) * g) for i in range(4)] + [slice(4 * g, None)]
    for group, (row, col) in zip(groups, (*_SHIFT_TAPS, (1, 1)), strict=True):
        index = (group, slice(None)) if channel_dim == 0 else (slice(None), group)
        kernel[index + (row, col)] = 1.0
    return kernel


class ShiftConvDepthwise(DerivedBuffers):
    """'fast-training-speed' shift conv (official ``ShiftConv2d1``): fixed depthwise shift, then a 1x1 conv."""

    derived_buffers = ("weight",)

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(shift_taps(torch.zeros(in_channels, 1, 3, 3), 0), requires_grad=False)
        self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1x1(F.conv2d(x, self.weight, None, 1, 1, 1, x.shape[1]))


class ShiftConvMasked(DerivedBuffers):
    """'low-training-memory' shift conv (official ``ShiftConv2d0``): a 3x3 conv whose weight is masked to the shifts."""

    derived_buffers = ("m",)

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        conv3x3 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)  # default initialisation, as the official code
        self.w, self.b = conv3x3.weight, conv3x3.bias
        self.m = nn.Parameter(shift_taps(torch.zeros(out_channels, in_channels, 3, 3), 1), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.w * self.m, self.b, 1, 1)


class ShiftConv2d(nn.Module):
    """Wrapper holding ``shift_conv`` (one of the two forms), as in the official code."""

    def __init__(self, in_channels: int, out_channels: int, conv_type: str) -> None:
        super().__init__()
        form = ShiftConvDepthwise if conv_type == "fast-training-speed" else ShiftConvMasked
        self.shift_conv = form(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.shift_conv(x)


class LFE(nn.Module):
    """Local feature extraction: shift conv to ``exp_ratio`` x channels, ReLU, shift conv back."""

    def __init__(self, channels: int, exp_ratio: int, conv_type: str) -> None:
        super().__init__()
        self.conv0 = ShiftConv2d(channels, channels * exp_ratio, conv_type)
        self.conv1 = ShiftConv2d(channels * exp_ratio, channels, conv_type)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1(self.act(self.conv0(x)))


def _to_windows(x: Tensor, ws: int) -> Tensor:
    """(B, C, H, W) -> (B * nW, ws * ws, C)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // ws, ws, w // ws, ws).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b * (h // ws) * (w // ws), ws * ws, c)


def _from_windows(x: Tensor, b: int, h: int, w: int, ws: int) -> Tensor:
    """Inverse of :func:`_to_windows`."""
    c = x.shape[-1]
    x = x.view(b, h // ws, w // ws, ws, ws, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, h, w)


class GMSA(nn.Module):
    """Group-wise multi-scale self-attention; ``calc_attn`` computes the maps, otherwise they come from the caller."""

    def __init__(self, channels: int, shifts: int, window_sizes: Sequence[int], calc_attn: bool) -> None:
        super().__init__()
        self.shifts, self.window_sizes, self.calc_attn = shifts, tuple(window_sizes), calc_attn
        width = channels * 2 if calc_attn else channels  # queries and values, or values only
        self.split_chns = [width // 3] * 3
        self.project_inp = nn.Sequential(nn.Conv2d(channels, width, 1), nn.BatchNorm2d(width))
        self.project_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, prev_atns: list[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
        b, _, h, w = x.shape
        ys, atns = [], []
        for idx, x_ in enumerate(torch.split(self.project_inp(x), self.split_chns, dim=1)):
            ws = self.window_sizes[idx]
            if self.shifts > 0:
                x_ = torch.roll(x_, shifts=(-ws // 2, -ws // 2), dims=(2, 3))  # the official (-ws) // 2
            if prev_atns is None:
                q, v = _to_windows(x_, ws).chunk(2, dim=-1)
                atn = (q @ q.transpose(-2, -1)).softmax(dim=-1)
            else:
                v, atn = _to_windows(x_, ws), prev_atns[idx]
            y_ = _from_windows(atn @ v, b, h, w, ws)
            if self.shifts > 0:
                y_ = torch.roll(y_, shifts=(ws // 2, ws // 2), dims=(2, 3))
            ys.append(y_)
            atns.append(atn)
        return self.project_out(torch.cat(ys, dim=1)), atns if prev_atns is None else prev_atns


class ELAB(nn.Module):
    """Efficient long-range attention block: (LFE + GMSA) x (1 + shared_depth), the attention maps shared."""

    def __init__(self, channels: int, exp_ratio: int, shifts: int, window_sizes: Sequence[int], shared_depth: int,
                 conv_type: str) -> None:
        super().__init__()
        self.shared_depth = shared_depth
        self.modules_lfe = nn.ModuleDict(
            {f"lfe_{i}": LFE(channels, exp_ratio, conv_type) for i in range(1 + shared_depth)})
        self.modules_gmsa = nn.ModuleDict(
            {f"gmsa_{i}": GMSA(channels, shifts, window_sizes, calc_attn=i == 0) for i in range(1 + shared_depth)})

    def forward(self, x: Tensor) -> Tensor:
        atn = None
        for i in range(1 + self.shared_depth):
            x = self.modules_lfe[f"lfe_{i}"](x) + x
            y, atn = self.modules_gmsa[f"gmsa_{i}"](x, atn)
            x = y + x
        return x


def _rgb_range(sd: StateDict) -> float:
    """The pixel range the frozen mean shift was built for (its bias is -rgb_range * mean); 255 if unreadable."""
    bias = sd.get("sub_mean.bias")
    if bias is None or bias.is_meta:
        return 255.0
    value = float(-bias[0]) / 0.4488
    return 255.0 if abs(value - 255.0) < 1.0 else round(value, 4)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    lfe0 = "body.0.modules_lfe.lfe_0.conv0.shift_conv."
    if "head.0.weight" not in sd or "tail.0.weight" not in sd:
        return None
    if lfe0 + "conv1x1.weight" in sd:
        conv_type, expanded = "fast-training-speed", sd[lfe0 + "conv1x1.weight"].shape[0]
    elif lfe0 + "w" in sd:
        conv_type, expanded = "low-training-memory", sd[lfe0 + "w"].shape[0]
    else:
        return None
    c_elan, colors = sd["head.0.weight"].shape[:2]
    n_share = count_indexed(sd, r"body\.0\.modules_lfe\.lfe_(\d+)\.") - 1
    n_elab = count_indexed(sd, r"body\.(\d+)\.modules_lfe\.")
    return {
        "scale": math.isqrt(sd["tail.0.weight"].shape[0] // colors),
        "colors": int(colors),
        "c_elan": int(c_elan),
        "m_elan": n_elab * (1 + n_share),
        "n_share": n_share,
        "r_expand": int(expanded) // int(c_elan),
        "rgb_range": _rgb_range(sd),
        "conv_type": conv_type,
    }


@register_arch("elan", scales=(2, 3, 4), detect=_detect, paper="Zhang et al., ECCV 2022 (ELAN)",
               tiny={"c_elan": 12, "m_elan": 4, "n_share": 1})
class ELAN(SRModel):
    """ELAN: efficient long-range attention blocks (shift convs + shared multi-scale window attention); [0, 255] input.

    ``m_elan`` counts LFE/GMSA pairs: ``m_elan / (1 + n_share)`` ELABs. Defaults are ELAN-light. The window sizes are
    not stored in the weights (no tensor depends on them); the official configs use (4, 8, 16).
    """

    def __init__(self, scale: int = 4, colors: int = 3, c_elan: int = 60, m_elan: int = 24, n_share: int = 1,
                 r_expand: int = 2, window_sizes: Sequence[int] = (4, 8, 16), rgb_range: float = 255.0,
                 conv_type: str = "fast-training-speed") -> None:
        super().__init__()
        window_sizes = tuple(int(w) for w in window_sizes)
        if len(window_sizes) != 3:
            raise ConfigError(f"ELAN needs three window sizes (one per channel group), not {window_sizes}")
        if c_elan % 3 or c_elan < SHIFT_GROUPS:
            raise ConfigError(f"c_elan must be a multiple of 3 (three window groups) and >= 5, not {c_elan}")
        if m_elan % (1 + n_share):
            raise ConfigError(f"m_elan {m_elan} is not a multiple of 1 + n_share = {1 + n_share}")
        if conv_type not in CONV_TYPES:
            raise ConfigError(f"conv_type must be one of {', '.join(map(repr, CONV_TYPES))}, not {conv_type!r}")
        if colors != 3:
            raise ConfigError(f"ELAN subtracts an RGB mean: colors must be 3, not {colors}")
        self.scale, self.window_sizes = scale, window_sizes
        self.input_range = float(rgb_range)
        self.pad_to = math.lcm(*window_sizes)
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(nn.Conv2d(colors, c_elan, 3, 1, 1))
        self.body = nn.Sequential(*(
            ELAB(c_elan, r_expand, i % 2, window_sizes, n_share, conv_type) for i in range(m_elan // (1 + n_share))
        ))
        self.tail = nn.Sequential(nn.Conv2d(c_elan, colors * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = pad_to_multiple(x, self.pad_to)
        x = self.head(self.sub_mean(x))
        x = self.add_mean(self.tail(self.body(x) + x))
        return x[..., : h * self.scale, : w * self.scale]


def paper_parameter_count(model: nn.Module) -> int:
    """Trainable parameters (the papers' count): the frozen shift kernels and mean shifts are left out."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


register_variant("elan", "elan", {}, description="ELAN-light (60 channels, 24 LFE/GMSA pairs, attention shared by 2)",
                 paper_params={2: 582_000, 3: 590_000, 4: 601_000})
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_ELAN_LIGHT_PUBLISHED = {
    2: {"Set5": (38.17, 0.9611), "Set14": (33.94, 0.9207), "B100": (32.30, 0.9012), "Urban100": (32.76, 0.9340),
        "Manga109": (39.11, 0.9782)},
    3: {"Set5": (34.64, 0.9288), "Set14": (30.55, 0.8463), "B100": (29.21, 0.8081), "Urban100": (28.69, 0.8624),
        "Manga109": (34.00, 0.9478)},
    4: {"Set5": (32.43, 0.8975), "Set14": (28.78, 0.7858), "B100": (27.69, 0.7406), "Urban100": (26.54, 0.7982),
        "Manga109": (30.92, 0.9150)},
}
register_variant("elan_light", "elan", {}, description="ELAN-light (60 channels, 24 LFE/GMSA pairs, shared by 2)"
                 " [published: CATA, secondary]",
                 paper_params={2: 582_000, 3: 590_000, 4: 601_000},
                 paper_psnr=_ELAN_LIGHT_PUBLISHED)
register_variant("elan_full", "elan", {"c_elan": 180, "m_elan": 36, "n_share": 0},
                 description="ELAN (180 channels, 36 ELABs, no attention sharing; configs/elan_x4.yml)")
