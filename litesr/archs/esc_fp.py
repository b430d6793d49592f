"""ESC-FP: the decomposed-kernel form of ESC (Lee, Yun and Ro, ICCV 2025; official ``dslisleedh/ESC``,
``esc/archs/esc_fp_arch.py``, ``ESCFP``; state-dict names follow it).

ESC's layout (:mod:`litesr.archs.esc`: one window attention per block, then ConvAttn layers on the first ``pdim``
channels) with the shared large kernel decomposed: a shared 1x1 channel mix (``lk_channel``) followed by a shared
depthwise ``kernel_size`` kernel (``lk_spatial``) to which each image's dynamic 3x3 kernel (predicted from the pooled
features through a pdim/4 bottleneck, ``plk.proj``) is added at its centre, so one depthwise conv applies both. No
geometric re-parameterisation; LayerNorms before every ConvAttn; ConvFFN ratio 1.5 in each block's projection; a
LayerNorm before the last conv; a PixelShuffle tail added to a bicubic upsampling of the input (PyTorch's bicubic,
as the official code).

Differences from the official code, without effect on the output: the attention is plain PyTorch (its "Naive" mode;
Flex/SDPA compute the same function), and the kernel size is a parameter (the official forward hard-codes 13, the
size of every released configuration).

Size rule: RGB in [0, 1]; the attention reflect-pads to a window multiple inside each block (``pad_multiple = 1``);
inputs under half a window are padded up first.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import LayerNorm2d, count_indexed, run_at_least
from .esc import ConvFFN, WindowAttention


class DecomposedConvAttention(nn.Module):
    """ConvAttn on the first ``pdim`` channels: shared 1x1 mix, then shared depthwise kernel + per-image 3x3 one."""

    dynamic_size = 3

    def __init__(self, dim: int, pdim: int) -> None:
        super().__init__()
        self.pdim = pdim
        self.proj = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(pdim, pdim // 4, 1), nn.GELU(),
                                  nn.Conv2d(pdim // 4, pdim * self.dynamic_size**2, 1))

    def forward(self, x: Tensor, lk_channel: Tensor, lk_spatial: Tensor) -> Tensor:
        head, rest = torch.split(x, [self.pdim, x.shape[1] - self.pdim], dim=1)
        b, c, h, w = head.shape
        k, size = self.dynamic_size, lk_spatial.shape[-1]
        dynamic = self.proj(head).reshape(b * c, 1, k, k)
        pad = (size - k) // 2
        kernel = F.pad(dynamic, (pad, pad, pad, pad)) + lk_spatial.repeat(b, 1, 1, 1)
        head = F.conv2d(head, lk_channel).reshape(1, b * c, h, w)
        # one grouped conv over (batch x channel) applies each image's own kernels
        head = F.conv2d(head, kernel, padding=size // 2, groups=b * c).reshape(b, c, h, w)
        return torch.cat([head, rest], dim=1)


class DecomposedConvAttnWrapper(nn.Module):
    def __init__(self, dim: int, pdim: int) -> None:
        super().__init__()
        self.plk = DecomposedConvAttention(dim, pdim)
        self.aggr = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, lk_channel: Tensor, lk_spatial: Tensor) -> Tensor:
        return self.aggr(self.plk(x, lk_channel, lk_spatial))


class FPBlock(nn.Module):
    """ConvFFN (ratio 1.5) projection, one window attention, ``conv_blocks`` x (LN -> ConvFFN -> ConvAttn), LN + 3x3."""

    def __init__(self, dim: int, pdim: int, conv_blocks: int, window_size: int, num_heads: int,
                 exp_ratio: float) -> None:
        super().__init__()
        self.ln_proj = LayerNorm2d(dim)
        self.proj = ConvFFN(dim, 3, 1.5)
        self.ln_attn = LayerNorm2d(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.lns = nn.ModuleList([LayerNorm2d(dim) for _ in range(conv_blocks)])
        self.pconvs = nn.ModuleList([DecomposedConvAttnWrapper(dim, pdim) for _ in range(conv_blocks)])
        self.convffns = nn.ModuleList([ConvFFN(dim, 3, exp_ratio) for _ in range(conv_blocks)])
        self.ln_out = LayerNorm2d(dim)
        self.conv_out = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, lk_channel: Tensor, lk_spatial: Tensor) -> Tensor:
        skip = x
        x = self.proj(self.ln_proj(x))
        x = x + self.attn(self.ln_attn(x))
        for ln, pconv, convffn in zip(self.lns, self.pconvs, self.convffns):
            x = x + pconv(convffn(ln(x)), lk_channel, lk_spatial)
        return self.conv_out(self.ln_out(x)) + skip


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "lk_channel" not in sd or "lk_spatial" not in sd or "blocks.0.pconvs.0.plk.proj.1.weight" not in sd:
        return None
    if "to_img.weight" not in sd or "ln_last.weight" not in sd:
        return None
    dim = int(sd["proj.weight"].shape[0])
    heads, table = sd["blocks.0.attn.relative_position_bias"].shape
    ratio = sd["blocks.0.convffns.0.proj.weight"].shape[0] / dim
    return {"scale": math.isqrt(sd["to_img.weight"].shape[0] // 3), "dim": dim,
            "pdim": int(sd["lk_channel"].shape[0]), "kernel_size": int(sd["lk_spatial"].shape[-1]),
            "n_blocks": count_indexed(sd, r"blocks\.(\d+)\."),
            "conv_blocks": count_indexed(sd, r"blocks\.0\.pconvs\.(\d+)\."),
            "window_size": (math.isqrt(int(table)) + 1) // 2, "num_heads": int(heads),
            "exp_ratio": int(ratio) if ratio.is_integer() else ratio}


@register_arch("esc_fp", scales=(4, 2, 3), detect=_detect, paper="Lee, Yun and Ro, ICCV 2025 (ESC-FP)",
               tiny={"dim": 8, "pdim": 4, "kernel_size": 5, "n_blocks": 1, "conv_blocks": 1, "window_size": 4,
                     "num_heads": 2})
class ESCFP(SRModel):
    """ESC-FP: ESC with the shared large kernel decomposed into a 1x1 mix and a depthwise kernel; bicubic base."""

    pad_multiple = 1

    def __init__(self, scale: int = 4, dim: int = 48, pdim: int = 16, kernel_size: int = 13, n_blocks: int = 5,
                 conv_blocks: int = 5, window_size: int = 32, num_heads: int = 3, exp_ratio: float = 1.25) -> None:
        super().__init__()
        self.scale = scale
        self.min_size = window_size // 2 + 1  # reflect padding up to a window needs a side over half a window
        self.lk_channel = nn.Parameter(torch.randn(pdim, pdim, 1, 1))
        self.lk_spatial = nn.Parameter(torch.empty(pdim, 1, kernel_size, kernel_size))
        nn.init.orthogonal_(self.lk_spatial)  # the official initialisation
        self.proj = nn.Conv2d(3, dim, 3, 1, 1)
        self.blocks = nn.ModuleList([FPBlock(dim, pdim, conv_blocks, window_size, num_heads, exp_ratio)
                                     for _ in range(n_blocks)])
        self.ln_last = LayerNorm2d(dim)
        self.last = nn.Conv2d(dim, dim, 3, 1, 1)
        self.to_img = nn.Conv2d(dim, 3 * scale**2, 3, 1, 1)

    def _forward(self, x: Tensor) -> Tensor:
        feat = self.proj(x)
        skip = feat
        for block in self.blocks:
            feat = block(feat, self.lk_channel, self.lk_spatial)
        feat = self.last(self.ln_last(feat)) + skip
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic")
        return F.pixel_shuffle(self.to_img(feat), self.scale) + base

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


# Published figures of the DIV2K-trained ESC-FP: paper Table 2, the official README's figs/MainDIV2K.png (read in
# dslisleedh/ESC at e7e6938). PSNR/SSIM on Y; #Params in K; #FLOPs in G for a 1280x720 output (the official
# esc_fp_arch.py __main__ builds its input as 720/s x 1280/s). Two SSIMs are printed as they stand although they look
# like typesetting slips: x3 Manga109 0.8706 (the same as its x3 Urban100 cell) and x4 Set5 0.8897.
_ESC_FP_DIV2K = {
    2: {"Set5": (38.27, 0.9617), "Set14": (34.09, 0.9219), "B100": (32.37, 0.9022), "Urban100": (33.22, 0.9375),
        "Manga109": (39.40, 0.9784)},
    3: {"Set5": (34.72, 0.9300), "Set14": (30.67, 0.8483), "B100": (29.30, 0.8107), "Urban100": (29.12, 0.8706),
        "Manga109": (34.56, 0.8706)},
    4: {"Set5": (32.56, 0.8897), "Set14": (28.87, 0.7889), "B100": (27.75, 0.7435), "Urban100": (26.90, 0.8098),
        "Manga109": (31.40, 0.9192)},
}
register_variant("esc_fp", "esc_fp", {}, description="ESC-FP (dim 48, 5 blocks, decomposed 13x13 kernel), DIV2K "
                 "[official options/test/ESC_FP_X*.yaml; published: paper Table 2 (official README "
                 "figs/MainDIV2K.png)]",
                 paper_params={2: 524_000, 3: 530_000, 4: 539_000}, paper_psnr=_ESC_FP_DIV2K,
                 paper_macs={2: 239.8, 3: 110.0, 4: 60.8})
