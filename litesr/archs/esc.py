"""ESC: Emulating Self-attention with Convolution for Efficient Image Super-Resolution (Lee, Yun and Ro, ICCV 2025).

Each block runs one window self-attention (32 x 32 windows, relative position bias) followed by ``conv_blocks``
ConvAttn layers: a large kernel (13 x 13) shared by every layer of the network, plus a 3 x 3 depthwise kernel
predicted per image from the pooled features, both applied to the first ``pdim`` channels only. The shared kernel is
symmetrised over the eight flips/rotations (the official "feature-level geometric re-parameterisation") every
forward. Long skip, conv + PixelShuffle tail with the input repeated over the sub-pixels as a nearest-neighbour base.

State-dict names follow the official code (``dslisleedh/ESC``, ``esc/archs/esc_arch.py``): ``plk_filter``, ``proj``,
``blocks.i.{ln_proj,proj.{proj,dwc,aggr},ln_attn,attn.{to_qkv,to_out,relative_position_bias},lns.j,
pconvs.j.{plk.dwc_proj.{1,3},aggr},convffns.j.{proj,dwc,aggr},ln_out,conv_out}``, ``last``, ``to_img``.
Variants: ESC-light (3 blocks), ESC (5 blocks) and ESC-XL (dim 192, 8 blocks, 48 x 48 windows, LayerNorms before
each ConvAttn). ESC-Real (``esc_real_arch.py``, ``ESCReal``, the released real-world x4 model): the same blocks
(10, with LayerNorms, ConvFFN ratio 2) with ``real_world=True``: an input branch (1x1 up to 2 x dim, 7x7
reflect-padded depthwise, LeakyReLU, 1x1 down; ``skip.{0,1,3}``) added to the long skip, and Real-ESRGAN's tail
(nearest x2, conv, LeakyReLU, twice, then two convs; ``to_img.{1,4,6,8}``) in place of PixelShuffle with its nearest
base; x4 only. Its DySample tail and ESC-Real-M are not built. ESC-FP (a decomposed large kernel,
``esc_fp_arch.py``) has other layers and names: :mod:`litesr.archs.esc_fp`.

Differences from the official code, all without effect on the output: the attention is computed in plain PyTorch
(the official "Naive" mode; its Flex/SDPA modes compute the same function), the dynamic 3 x 3 kernel is applied per
image for any batch size (the official inference path reshapes it for batch 1 only), and nothing is written in place.

Size rule: RGB in [0, 1]. The attention reflect-pads each map to a multiple of the window inside the block, as the
official code does, so whole images run without outer padding (``pad_multiple = 1``); reflect padding needs a side
longer than half a window, so smaller inputs are padded up to that first.
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
from .blocks import LayerNorm2d, count_indexed, run_at_least


class ConvFFN(nn.Module):
    """1x1 up, GELU, depthwise ``kernel_size`` conv + GELU with a residual, 1x1 down (official ``ConvFFN``)."""

    def __init__(self, dim: int, kernel_size: int, exp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * exp_ratio)
        self.proj = nn.Conv2d(dim, hidden, 1)
        self.dwc = nn.Conv2d(hidden, hidden, kernel_size, 1, kernel_size // 2, groups=hidden)
        self.aggr = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.proj(x))
        return self.aggr(F.gelu(self.dwc(x)) + x)


class ConvolutionalAttention(nn.Module):
    """ConvAttn on the first ``pdim`` channels: the shared large kernel plus a per-image dynamic 3x3 depthwise one."""

    dynamic_size = 3

    def __init__(self, pdim: int) -> None:
        super().__init__()
        self.pdim = pdim
        self.dwc_proj = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(pdim, pdim // 2, 1), nn.GELU(),
                                      nn.Conv2d(pdim // 2, pdim * self.dynamic_size**2, 1))
        nn.init.zeros_(self.dwc_proj[-1].weight)  # the official start: no dynamic part until it is learned
        nn.init.zeros_(self.dwc_proj[-1].bias)

    def forward(self, x: Tensor, lk_filter: Tensor) -> Tensor:
        head, rest = torch.split(x, [self.pdim, x.shape[1] - self.pdim], dim=1)
        b, _, h, w = head.shape
        k = self.dynamic_size
        dynamic = self.dwc_proj(head).reshape(b * self.pdim, 1, k, k)
        # one grouped conv over (batch x channel) applies each image's own kernels
        local = F.conv2d(head.reshape(1, b * self.pdim, h, w), dynamic, padding=k // 2, groups=b * self.pdim)
        head = F.conv2d(head, lk_filter, padding=lk_filter.shape[-1] // 2) + local.reshape(b, self.pdim, h, w)
        return torch.cat([head, rest], dim=1)


class ConvAttnWrapper(nn.Module):
    def __init__(self, dim: int, pdim: int) -> None:
        super().__init__()
        self.plk = ConvolutionalAttention(pdim)
        self.aggr = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor, lk_filter: Tensor) -> Tensor:
        return self.aggr(self.plk(x, lk_filter))


def _relative_index(window: int) -> Tensor:
    """Index into the (2w-1)^2 bias table for every (query, key) pair of a window, in the official order
    (key minus query offsets, row-major), as a (w^2, w^2) tensor."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = coords[:, None, :] - coords[:, :, None] + window - 1  # [2, query, key]: key - query
    return rel[0] * (2 * window - 1) + rel[1]


class WindowAttention(nn.Module):
    """Non-overlapping window self-attention on NCHW maps with a learned relative position bias per head."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.to_out = nn.Conv2d(dim, dim, 1)
        self.relative_position_bias = nn.Parameter(torch.randn(num_heads, (2 * window_size - 1) ** 2) * 0.001)
        self.register_buffer("rpe_index", _relative_index(window_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        ws, heads = self.window_size, self.num_heads
        x = F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), mode="reflect")
        b, c, hp, wp = x.shape
        nh, nw = hp // ws, wp // ws
        # (qkv heads c) channels -> qkv, (b nh nw) windows, heads, ws*ws tokens, head dim
        qkv = self.to_qkv(x).reshape(b, 3, heads, c // heads, nh, ws, nw, ws)
        qkv = qkv.permute(1, 0, 4, 6, 2, 5, 7, 3).reshape(3, b * nh * nw, heads, ws * ws, c // heads)
        q, k, v = qkv[0], qkv[1], qkv[2]
        score = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        score = score + self.relative_position_bias[:, self.rpe_index].unsqueeze(0)
        out = F.softmax(score, dim=-1) @ v
        out = out.reshape(b, nh, nw, heads, ws, ws, c // heads).permute(0, 3, 6, 1, 4, 2, 5).reshape(b, c, hp, wp)
        return self.to_out(out[:, :, :h, :w])


class Block(nn.Module):
    """ConvFFN projection, one window attention, ``conv_blocks`` x (ConvFFN -> ConvAttn), LayerNorm + 3x3 out."""

    def __init__(self, dim: int, pdim: int, conv_blocks: int, window_size: int, num_heads: int, exp_ratio: float,
                 use_ln: bool) -> None:
        super().__init__()
        self.ln_proj = LayerNorm2d(dim)
        self.proj = ConvFFN(dim, 3, 2)
        self.ln_attn = LayerNorm2d(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.lns = nn.ModuleList([LayerNorm2d(dim) if use_ln else nn.Identity() for _ in range(conv_blocks)])
        self.pconvs = nn.ModuleList([ConvAttnWrapper(dim, pdim) for _ in range(conv_blocks)])
        self.convffns = nn.ModuleList([ConvFFN(dim, 3, exp_ratio) for _ in range(conv_blocks)])
        self.ln_out = LayerNorm2d(dim)
        self.conv_out = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, lk_filter: Tensor) -> Tensor:
        skip = x
        x = self.proj(self.ln_proj(x))
        x = x + self.attn(self.ln_attn(x))
        for ln, pconv, convffn in zip(self.lns, self.pconvs, self.convffns):
            x = x + pconv(convffn(ln(x)), lk_filter)
        return self.conv_out(self.ln_out(x)) + skip


def geometric_ensemble(kernel: Tensor) -> Tensor:
    """The mean of a kernel over its eight flips and 90-degree rotations (the dihedral group of the square)."""
    rotated = torch.rot90(kernel, -1, [2, 3])
    views = [kernel, rotated]
    return sum(v.flip(dims) if dims else v for v in views for dims in ((), (3,), (2,), (2, 3))) / 8


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "plk_filter" not in sd or "blocks.0.pconvs.0.plk.dwc_proj.1.weight" not in sd:
        return None
    if "to_img.weight" in sd:
        scale, real_world = math.isqrt(sd["to_img.weight"].shape[0] // 3), False
    elif ("skip.3.weight" in sd and "to_img.1.weight" in sd and "to_img.8.weight" in sd
          and not any(k in sd for k in ("to_img.0.weight", "to_img.9.weight", "to_img.MetaUpsample"))):
        scale, real_world = 4, True  # ESC-Real: (nearest x2, conv) twice; ESC-Real-M's tail starts with a conv
    else:
        return None  # ESC-Real's DySample tail, ESC-Real-M: not built here
    dim = int(sd["proj.weight"].shape[0])
    heads, table = sd["blocks.0.attn.relative_position_bias"].shape
    ratio = sd["blocks.0.convffns.0.proj.weight"].shape[0] / dim
    config = {"scale": scale, "dim": dim,
              "pdim": int(sd["plk_filter"].shape[0]), "kernel_size": int(sd["plk_filter"].shape[-1]),
              "n_blocks": count_indexed(sd, r"blocks\.(\d+)\."),
              "conv_blocks": count_indexed(sd, r"blocks\.0\.pconvs\.(\d+)\."),
              "window_size": (math.isqrt(int(table)) + 1) // 2, "num_heads": int(heads),
              "exp_ratio": int(ratio) if ratio.is_integer() else ratio, "use_ln": "blocks.0.lns.0.weight" in sd}
    return {**config, "real_world": True} if real_world else config


def _real_world_tail(dim: int) -> nn.Sequential:
    """Real-ESRGAN / SwinIR-Real's x4 tail (official ``ESCReal.to_img``): (nearest x2, conv, LeakyReLU) twice, then a
    conv + LeakyReLU and a conv to RGB."""
    return nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2), nn.Conv2d(dim, dim, 3, 1, 1), nn.LeakyReLU(0.2),
                         nn.UpsamplingNearest2d(scale_factor=2), nn.Conv2d(dim, dim, 3, 1, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(dim, dim, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(dim, 3, 3, 1, 1))


def _input_branch(dim: int) -> nn.Sequential:
    """ESC-Real's input branch (official ``ESCReal.skip``), added to the long skip."""
    return nn.Sequential(nn.Conv2d(3, dim * 2, 1), nn.Conv2d(dim * 2, dim * 2, 7, 1, 3, groups=dim * 2,
                                                              padding_mode="reflect"),
                         nn.LeakyReLU(0.2), nn.Conv2d(dim * 2, dim, 1))


@register_arch("esc", scales=(4, 2, 3), detect=_detect, paper="Lee, Yun and Ro, ICCV 2025",
               tiny={"dim": 8, "pdim": 4, "kernel_size": 5, "n_blocks": 1, "conv_blocks": 1, "window_size": 4,
                     "num_heads": 2})
class ESC(SRModel):
    """ESC: window attention once per block, shared-large-kernel ConvAttn everywhere else, PixelShuffle tail."""

    pad_multiple = 1

    def __init__(self, scale: int = 4, dim: int = 64, pdim: int = 16, kernel_size: int = 13, n_blocks: int = 5,
                 conv_blocks: int = 5, window_size: int = 32, num_heads: int = 4, exp_ratio: float = 1.25,
                 use_ln: bool = False, real_world: bool = False) -> None:
        super().__init__()
        if real_world and scale != 4:
            raise ConfigError(f"esc: real_world=True (ESC-Real's nearest+conv tail) is x4 only, not x{scale}")
        self.scale = scale
        self.real_world = real_world
        self.min_size = window_size // 2 + 1  # reflect padding up to a window needs a side over half a window
        self.plk_filter = nn.Parameter(torch.empty(pdim, pdim, kernel_size, kernel_size))
        nn.init.orthogonal_(self.plk_filter)  # the official initialisation, which steadies early training
        self.proj = nn.Conv2d(3, dim, 3, 1, 1)
        self.blocks = nn.ModuleList([Block(dim, pdim, conv_blocks, window_size, num_heads, exp_ratio, use_ln)
                                     for _ in range(n_blocks)])
        self.last = nn.Conv2d(dim, dim, 3, 1, 1)
        if real_world:
            self.to_img = _real_world_tail(dim)
            self.skip = _input_branch(dim)
        else:
            self.to_img = nn.Conv2d(dim, 3 * scale**2, 3, 1, 1)

    def _forward(self, x: Tensor) -> Tensor:
        feat = self.proj(x)
        skip = feat
        lk_filter = geometric_ensemble(self.plk_filter)
        for block in self.blocks:
            feat = block(feat, lk_filter)
        feat = self.last(feat) + skip
        if self.real_world:
            return self.to_img(feat + self.skip(x))
        out = self.to_img(feat) + torch.repeat_interleave(x, self.scale**2, dim=1)
        return F.pixel_shuffle(out, self.scale)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


# Published figures of the DIV2K-trained models: paper Table 2, the official README's figs/MainDIV2K.png (read in
# dslisleedh/ESC at e7e6938). PSNR/SSIM on Y; #Params in K; #FLOPs in G "as detailed in Section 4.2": the official
# esc_arch.py __main__ counts them (fvcore) on a 1280x720 HD output (input 720/s x 1280/s), litesr's rule.
_ESC_DIV2K = {
    2: {"Set5": (38.35, 0.9619), "Set14": (34.11, 0.9223), "B100": (32.41, 0.9027), "Urban100": (33.46, 0.9395),
        "Manga109": (39.54, 0.9790)},
    3: {"Set5": (34.84, 0.9308), "Set14": (30.74, 0.8493), "B100": (29.34, 0.8118), "Urban100": (29.28, 0.8739),
        "Manga109": (34.66, 0.9512)},
    4: {"Set5": (32.68, 0.9011), "Set14": (28.93, 0.7902), "B100": (27.80, 0.7447), "Urban100": (27.07, 0.8144),
        "Manga109": (31.54, 0.9207)},
}
_ESC_LIGHT_DIV2K = {
    2: {"Set5": (38.24, 0.9615), "Set14": (33.98, 0.9211), "B100": (32.35, 0.9020), "Urban100": (33.05, 0.9363),
        "Manga109": (39.33, 0.9786)},
    3: {"Set5": (34.61, 0.9295), "Set14": (30.52, 0.8475), "B100": (29.26, 0.8102), "Urban100": (28.93, 0.8679),
        "Manga109": (34.33, 0.9495)},
    4: {"Set5": (32.52, 0.8995), "Set14": (28.87, 0.7878), "B100": (27.72, 0.7423), "Urban100": (26.76, 0.8058),
        "Manga109": (31.26, 0.9173)},
}
_LIGHT = dict(dim=64, pdim=16, kernel_size=13, n_blocks=3, conv_blocks=5, window_size=32, num_heads=4, exp_ratio=1.25)
register_variant("esc", "esc", {}, description="ESC (dim 64, 5 blocks, 32x32 windows), DIV2K [official options/test; "
                 "published: paper Table 2 (official README figs/MainDIV2K.png)]",
                 paper_params={2: 947_000, 3: 955_000, 4: 968_000}, paper_psnr=_ESC_DIV2K,
                 paper_macs={2: 592.0, 3: 267.6, 4: 149.2})
register_variant("esc_light", "esc", _LIGHT, description="ESC-light (dim 64, 3 blocks), DIV2K [official options/test; "
                 "published: paper Table 2 (official README figs/MainDIV2K.png)]",
                 paper_params={2: 603_000, 3: 612_000, 4: 624_000}, paper_psnr=_ESC_LIGHT_DIV2K,
                 paper_macs={2: 359.4, 3: 162.8, 4: 91.0})
# ESC-XL (DF2K): its table is not in the official README's figures (Tables 2 and 4 only), so nothing is registered.
register_variant("esc_xl", "esc", {"dim": 192, "pdim": 48, "n_blocks": 8, "window_size": 48, "num_heads": 12,
                                   "use_ln": True},
                 description="ESC-XL (dim 192, 8 blocks, 48x48 windows), DF2K [official options/test]")
# ESC-Real (official options/test/ESC_Real_X4.yaml, network_g ESCReal; released as ESC_Real_X4_GAN.pth): real-world SR,
# no bicubic benchmark (its README table, figs/RealWorldQuantitative.png, is of no-reference metrics).
register_variant("esc_real", "esc", {"dim": 64, "pdim": 16, "n_blocks": 10, "exp_ratio": 2, "use_ln": True,
                                     "real_world": True},
                 description="ESC-Real (dim 64, 10 blocks, input branch, nearest+conv tail), real-world x4 "
                             "[official options/test/ESC_Real_X4.yaml]")
