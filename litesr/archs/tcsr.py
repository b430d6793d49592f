"""TCSR: Incorporating Transformer Designs into Convolutions for Lightweight Image Super-Resolution (Wu, Jiang, Bai and
Liu, arXiv 2303.14324, 2023). Built from the paper: github.com/Aitical/TCSR holds only a README (commit 1d55bf6,
2023-05-11), no code and no weights, so there are no official state-dict names to follow.

What the paper fixes (its abstract, the only part of the text readable here): a neighborhood attention (NA) module
that "upgrades the standard convolution with a self-attention mechanism" in a sliding-window pattern, and an enhanced
feed-forward network (EFFN) built on a parameter-free spatial shift. What the README fixes: TCSR-B has 682K and
TCSR-L 1,030K parameters at x4, and their x4 PSNR/SSIM (registered below).

Everything else is litesr's choice, made because the paper's method section (layer order, widths, depths, kernel
size, heads) could not be read here:

- Layout: that of the authors' contemporaneous NTIRE 2023 entry (Aitical/NTIRE23_ESR_AIIASR,
  ``models/team38_RepConvFormer.py``, March 2023): ``conv_first`` 3x3, residual layers of blocks each closed by a
  1x1 ``conv``, channel LayerNorm, ``conv_after_body`` 3x3 plus the long skip, a one-step pixel-shuffle tail
  (``upsample.0``), RGB mean subtracted and added back. No layer scale.
- Block: ``x + NA(LN(x))`` then ``x + EFFN(LN(x))``, each LayerNorm inside its module (``attn.norm``, ``mlp.norm``).
- NA: 1x1 ``qkv``, each pixel attends to its ``kernel_size`` x ``kernel_size`` neighbourhood per head, the window
  clamped at the borders so every query sees k*k real pixels (NAT's definition of neighborhood attention), a learned
  relative position bias ``rpb`` (heads, 2k-1, 2k-1) as in NAT, 1x1 ``proj``. Kernel 7, 4 heads by default.
- EFFN: 1x1 ``fc1`` to ``mlp_ratio`` x channels, GELU, ``h + shift(h)`` with SCNet's eight-direction shift (the same
  authors' parameter-free shift, :class:`~litesr.archs.scnet.Shift8`), 1x1 ``fc2``.
- Widths: TCSR-B dim 64, three layers of six blocks; TCSR-L dim 80, three layers of six blocks, 5 heads. These give
  693,688 and 1,066,778 parameters at x4: +1.7% and +3.6% over the published 682K and 1,030K. The totals are
  close by choice of width, not evidence that the layers are the paper's.

Inputs smaller than the attention kernel are reflect-padded to it and the output cropped (NA needs k x k pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import UpsampleOneStep, pixelshuffle_scale
from .base import SRModel
from .blocks import LayerNorm2d, count_indexed, run_at_least
from .scnet import Shift8

_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def window_starts(length: int, kernel_size: int, device: torch.device) -> Tensor:
    """First row (or column) of each position's neighbourhood: centred, clamped to stay inside the map."""
    return (torch.arange(length, device=device) - kernel_size // 2).clamp(0, length - kernel_size)


def neighborhood_bias(rpb: Tensor, h: int, w: int, kernel_size: int) -> Tensor:
    """(heads, k*k, H, W) relative position bias of every query's neighbours: ``rpb[offset + k - 1]``."""
    k = kernel_size
    taps = torch.arange(k, device=rpb.device)
    rows = torch.arange(h, device=rpb.device)
    cols = torch.arange(w, device=rpb.device)
    # offset of neighbour a of query i is start(i) + a - i, in [-(k-1), k-1]
    dy = window_starts(h, k, rpb.device)[None, :] + taps[:, None] - rows[None, :] + k - 1  # (k, H)
    dx = window_starts(w, k, rpb.device)[None, :] + taps[:, None] - cols[None, :] + k - 1  # (k, W)
    bias = rpb[:, dy[:, None, :, None], dx[None, :, None, :]]  # (heads, k, k, H, W)
    return bias.reshape(rpb.shape[0], k * k, h, w)


def neighbourhoods(x: Tensor, kernel_size: int) -> Tensor:
    """(N, C, H, W) -> (N, C, k*k, H, W): every pixel's clamped k x k neighbourhood, row-major."""
    n, c, h, w = x.shape
    k = kernel_size
    windows = F.unfold(x, k).view(n, c, k * k, h - k + 1, w - k + 1)
    windows = windows.index_select(3, window_starts(h, k, x.device))
    return windows.index_select(4, window_starts(w, k, x.device))


class NeighborhoodAttention(nn.Module):
    """NA (choices in the module docstring): LayerNorm, 1x1 qkv, per-head softmax over each pixel's clamped k x k
    neighbourhood plus a relative position bias, 1x1 projection."""

    def __init__(self, dim: int, num_heads: int, kernel_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"TCSR: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.kernel_size = kernel_size
        self.scale = (dim // num_heads) ** -0.5
        self.norm = LayerNorm2d(dim)
        self.qkv = nn.Conv2d(dim, dim * 3, 1)
        self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
        nn.init.trunc_normal_(self.rpb, std=0.02)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        heads, k = self.num_heads, self.kernel_size
        # channels of qkv: [q | k | v], each split into heads (the timm/NAT order)
        q, key, value = self.qkv(self.norm(x)).reshape(b, 3, c, h, w).unbind(1)
        q, key, value = (t.reshape(b * heads, c // heads, h, w) for t in (q, key, value))
        logits = torch.einsum("ndhw,ndthw->nthw", q * self.scale, neighbourhoods(key, k))
        logits = logits.view(b, heads, k * k, h, w) + neighborhood_bias(self.rpb, h, w, k).unsqueeze(0)
        attn = logits.softmax(dim=2).view(b * heads, k * k, h, w)
        out = torch.einsum("nthw,ndthw->ndhw", attn, neighbourhoods(value, k))
        return self.proj(out.reshape(b, c, h, w))


class EFFN(nn.Module):
    """Enhanced feed-forward network: LayerNorm, 1x1 up, GELU, ``h + shift(h)`` (parameter-free), 1x1 down."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        if hidden % 8:
            raise ValueError(f"TCSR: the EFFN shift needs dim * mlp_ratio divisible by 8, got {hidden}")
        self.norm = LayerNorm2d(dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.shift = Shift8(hidden // 8)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.act(self.fc1(self.norm(x)))
        return self.fc2(hidden + self.shift(hidden))


class TCSRBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, kernel_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.attn = NeighborhoodAttention(dim, num_heads, kernel_size)
        self.mlp = EFFN(dim, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class TCSRLayer(nn.Module):
    """Blocks, then a 1x1 conv, with a residual around the whole layer."""

    def __init__(self, dim: int, depth: int, num_heads: int, kernel_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[TCSRBlock(dim, num_heads, kernel_size, mlp_ratio) for _ in range(depth)])
        self.conv = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.blocks(x)) + x


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "layers.0.blocks.0.attn.rpb" not in sd or "layers.0.blocks.0.mlp.fc1.weight" not in sd:
        return None
    if "conv_first.weight" not in sd or "upsample.0.weight" not in sd:
        return None
    dim = int(sd["conv_first.weight"].shape[0])
    rpb = sd["layers.0.blocks.0.attn.rpb"]
    depths = tuple(count_indexed(sd, rf"layers\.{i}\.blocks\.(\d+)\.attn\.rpb$")
                   for i in range(count_indexed(sd, r"layers\.(\d+)\.conv\.weight$")))
    return {"scale": pixelshuffle_scale(sd, "upsample.0.weight", 3), "dim": dim, "depths": depths,
            "num_heads": int(rpb.shape[0]), "kernel_size": (int(rpb.shape[1]) + 1) // 2,
            "mlp_ratio": sd["layers.0.blocks.0.mlp.fc1.weight"].shape[0] / dim}


@register_arch("tcsr", scales=(4, 2, 3), detect=_detect, paper="Wu et al., arXiv 2303.14324 (2023)",
               tiny={"dim": 8, "depths": (1,), "num_heads": 2, "kernel_size": 3, "mlp_ratio": 2})
class TCSR(SRModel):
    """TCSR, from the paper: neighborhood-attention + shift-EFFN blocks in residual layers, one-step pixel shuffle."""

    def __init__(self, scale: int = 4, dim: int = 64, depths: Sequence[int] = (6, 6, 6), num_heads: int = 4,
                 kernel_size: int = 7, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"TCSR: kernel_size must be odd, got {kernel_size}")
        self.scale = scale
        self.kernel_size = kernel_size
        self.register_buffer("mean", torch.tensor(_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, dim, 3, 1, 1)
        self.layers = nn.Sequential(*[TCSRLayer(dim, int(d), num_heads, kernel_size, mlp_ratio) for d in depths])
        self.norm = LayerNorm2d(dim)
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1)
        self.upsample = UpsampleOneStep(scale, dim, 3)

    def _forward(self, x: Tensor) -> Tensor:
        x = x - self.mean
        first = self.conv_first(x)
        body = self.conv_after_body(self.norm(self.layers(first))) + first
        return self.upsample(body) + self.mean

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.kernel_size, self.scale)


# Published x4 PSNR/SSIM (Y channel) and parameters: the official README's results table (Aitical/TCSR @ 1d55bf6),
# which repeats the paper's; no x2/x3 figures or MACs could be read here.
register_variant("tcsr", "tcsr", {}, description="TCSR-B, from the paper (widths are litesr's choice, see module "
                 "docstring) [published: Aitical/TCSR README table]", paper_params={4: 682_000},
                 paper_psnr={4: {"Set5": (32.43, 0.8977), "Set14": (28.84, 0.7871), "B100": (27.72, 0.7412),
                                 "Urban100": (26.51, 0.7994), "Manga109": (31.01, 0.9153)}})
register_variant("tcsr_l", "tcsr", {"dim": 80, "num_heads": 5},
                 description="TCSR-L, from the paper (widths are litesr's choice, see module docstring) "
                 "[published: Aitical/TCSR README table]", paper_params={4: 1_030_000},
                 paper_psnr={4: {"Set5": (32.55, 0.8992), "Set14": (28.89, 0.7886), "B100": (27.75, 0.7423),
                                 "Urban100": (26.67, 0.8039), "Manga109": (31.17, 0.9170)}})
