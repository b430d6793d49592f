"""DLGSANet: Lightweight Dynamic Local and Global Self-Attention Networks for Image Super-Resolution (Li, Pan, Tang
and Dong, ICCV 2023). Official code: github.com/NeonLeexiang/DLGSANet (``basicsr/archs/dlgsanet_arch.py``).

Residual hybrid dynamic-Transformer groups (RHDTG, official ``BuildBlock``) of ``blocks`` hybrid blocks, each a
multi-head dynamic local self-attention layer (MHDLSA, ``IDynamicLayerBlock``) then a sparse global self-attention
layer (SparseGSA, ``SparseAttentionLayerBlock``), both pre-norm with Restormer's 'WithBias' LayerNorm (eps 1e-5) and
Restormer's gated depthwise feed-forward. MHDLSA is a dynamic depthwise convolution: a small hyper-network predicts a
``window_size``^2 kernel per pixel and per head, shared by the head's channels. SparseGSA is Restormer's channel
("transposed") attention with ReLU in place of softmax. Mean shift, a bias-free 3x3 head, a long skip and a one-step
PixelShuffle tail.

Faithful to the official evaluation:

- The official dynamic convolution is a CuPy CUDA kernel; litesr computes the same sum in PyTorch (one shifted
  product per kernel tap), so it runs on any device.
- In eval mode the official SparseGSA uses TLC (test-time local converter): the attention runs on overlapping
  ``tlc_kernel`` x ``tlc_kernel`` crops of the map and the crop outputs are averaged; in training it is global.
  litesr does the same. The official configurations use 96 / 72 / 48 at x2 / x3 / x4 (``tlc_kernel=None``).

State-dict names follow the official code: ``overlap_embed.0.proj``, ``deep_feature_extraction.{g}.body.{i}``
(``norm1``, ``IDynamicDWConv.{conv0, conv.conv1.{0,1}, conv.conv2.0, conv1}``, ``norm2``, ``IDynamic_ffn`` for the
even blocks; ``norm3``, ``restormer_attn.{temperature, qkv, qkv_dwconv, project_out}``, ``norm4``,
``restormer_ffn`` for the odd ones; the group's last index its 3x3 conv), ``deep_feature_extraction.{groups}`` and
``upsample.0``. The lightweight models' official weights were lost (README); only the retrained classic x4 model is
published, on Google Drive, not in the repository.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import BodyLayerNorm, UpsampleOneStep, count_indexed
from .ditn import FeedForward  # Restormer's GDFN with the same names (project_in, dwconv, project_out)

_LN_EPS = 1e-5  # Restormer's WithBias_LayerNorm
# Official TLC crop sizes of the released configurations, by scale.
_TLC_KERNEL = {2: 96, 3: 72, 4: 48}


def dynamic_depthwise_conv(x: Tensor, weight: Tensor) -> Tensor:
    """Per-pixel depthwise convolution: ``weight`` (B, G, k, k, H, W) holds one k x k kernel per pixel and group, the
    channels of a group sharing it (group = channel // (C / G)); zero padding (k - 1) // 2, stride 1."""
    b, c, h, w = x.shape
    groups, k = weight.shape[1], weight.shape[2]
    pad = (k - 1) // 2
    padded = F.pad(x, (pad, pad, pad, pad)).view(b, groups, c // groups, h + 2 * pad, w + 2 * pad)
    out = x.new_zeros(b, groups, c // groups, h, w)
    for i in range(k):
        for j in range(k):
            out = out + padded[..., i:i + h, j:j + w] * weight[:, :, i, j].unsqueeze(2)
    return out.view(b, c, h, w)


class IDynamicDWConv(nn.Module):
    """The hyper-network (1x1 down by 4, depthwise k x k, 1x1 to k^2 per group) and its dynamic convolution."""

    def __init__(self, channels: int, kernel_size: int, group_channels: int, bias: bool = True) -> None:
        super().__init__()
        reduced = channels // 4
        self.kernel_size = kernel_size
        self.groups = channels // group_channels
        self.conv1 = nn.Sequential(nn.Conv2d(channels, reduced, 1, bias=bias),
                                   nn.Conv2d(reduced, reduced, kernel_size, padding=kernel_size // 2, groups=reduced,
                                             bias=bias))
        self.conv2 = nn.Sequential(nn.Conv2d(reduced, kernel_size**2 * self.groups, 1, bias=bias))

    def forward(self, x: Tensor) -> Tensor:
        weight = self.conv2(self.conv1(x))
        b, _, h, w = weight.shape
        return dynamic_depthwise_conv(x, weight.view(b, self.groups, self.kernel_size, self.kernel_size, h, w))


class IDynamicDWConvBlock(nn.Module):
    """MHDLSA: bias-free 1x1, dynamic depthwise convolution, bias-free 1x1."""

    def __init__(self, dim: int, window_size: int, heads: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.conv = IDynamicDWConv(dim, window_size, heads)
        self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1(self.conv(self.conv0(x)))


def tlc_starts(size: int, kernel: int) -> list[int]:
    """Start offsets of the TLC crops along one side (megvii-research/TLC's ``grids``): evenly spread, overlapping,
    the last one flush with the border."""
    kernel = min(size, kernel)
    count = (size - 1) // kernel + 1
    step = kernel if count == 1 else math.ceil((size - kernel) / (count - 1) - 1e-8)
    starts, i = [], 0
    while True:
        if i + kernel >= size:
            starts.append(size - kernel)
            return starts
        starts.append(i)
        i += step


class SparseAttention(nn.Module):
    """SparseGSA: channel attention between L2-normalised q and k per head, scaled by a learned temperature, ReLU
    instead of softmax; TLC crops in eval mode (see the module docstring)."""

    def __init__(self, dim: int, num_heads: int, tlc_kernel: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.tlc_kernel = tlc_kernel
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def _attend(self, qkv: Tensor) -> Tensor:
        b, c3, h, w = qkv.shape
        q, k, v = qkv.reshape(b, 3, self.num_heads, c3 // (3 * self.num_heads), h * w).unbind(1)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * self.temperature
        return (torch.relu(attn) @ v).reshape(b, c3 // 3, h, w)

    def forward(self, x: Tensor) -> Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))
        if self.training or self.tlc_kernel <= 0:
            return self.project_out(self._attend(qkv))
        h, w = qkv.shape[-2:]
        kh, kw = min(h, self.tlc_kernel), min(w, self.tlc_kernel)
        out = qkv.new_zeros(qkv.shape[0], qkv.shape[1] // 3, h, w)
        count = qkv.new_zeros(1, 1, h, w)
        for i in tlc_starts(h, self.tlc_kernel):
            for j in tlc_starts(w, self.tlc_kernel):
                out[..., i:i + kh, j:j + kw] += self._attend(qkv[..., i:i + kh, j:j + kw])
                count[..., i:i + kh, j:j + kw] += 1
        return self.project_out(out / count)


class IDynamicLayerBlock(nn.Module):
    """Pre-norm MHDLSA and GDFN, each with a residual."""

    def __init__(self, dim: int, window_size: int, heads: int, ffn_expansion: float) -> None:
        super().__init__()
        self.norm1 = BodyLayerNorm(dim, eps=_LN_EPS)
        self.IDynamicDWConv = IDynamicDWConvBlock(dim, window_size, heads)
        self.norm2 = BodyLayerNorm(dim, eps=_LN_EPS)
        self.IDynamic_ffn = FeedForward(dim, ffn_expansion, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.IDynamicDWConv(self.norm1(x)) + x
        return self.IDynamic_ffn(self.norm2(x)) + x


class SparseAttentionLayerBlock(nn.Module):
    """Pre-norm SparseGSA and GDFN, each with a residual."""

    def __init__(self, dim: int, heads: int, ffn_expansion: float, tlc_kernel: int) -> None:
        super().__init__()
        self.norm3 = BodyLayerNorm(dim, eps=_LN_EPS)
        self.restormer_attn = SparseAttention(dim, heads, tlc_kernel)
        self.norm4 = BodyLayerNorm(dim, eps=_LN_EPS)
        self.restormer_ffn = FeedForward(dim, ffn_expansion, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.restormer_attn(self.norm3(x)) + x
        return self.restormer_ffn(self.norm4(x)) + x


class BuildBlock(nn.Module):
    """RHDTG: ``blocks`` (MHDLSA layer, SparseGSA layer) pairs, a 3x3 conv, a residual."""

    def __init__(self, dim: int, blocks: int, window_size: int, idynamic_heads: int, attn_heads: int,
                 ffn_expansion: float, tlc_kernel: int) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for _ in range(blocks):
            body.append(IDynamicLayerBlock(dim, window_size, idynamic_heads, ffn_expansion))
            body.append(SparseAttentionLayerBlock(dim, attn_heads, ffn_expansion, tlc_kernel))
        body.append(nn.Conv2d(dim, dim, 3, 1, 1))
        self.body = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class OverlapPatchEmbed(nn.Module):
    """The bias-free 3x3 head (official name ``proj``)."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, 3, 1, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    first = "deep_feature_extraction.0.body.0."
    if "overlap_embed.0.proj.weight" not in sd or f"{first}IDynamicDWConv.conv.conv2.0.weight" not in sd:
        return None
    dim = int(sd["overlap_embed.0.proj.weight"].shape[0])
    window = int(sd[f"{first}IDynamicDWConv.conv.conv1.1.weight"].shape[-1])
    dynamic_groups = sd[f"{first}IDynamicDWConv.conv.conv2.0.weight"].shape[0] // window**2
    expansion = sd[f"{first}IDynamic_ffn.project_in.weight"].shape[0] / (2 * dim)
    return {
        "scale": math.isqrt(sd["upsample.0.weight"].shape[0] // 3),
        "dim": dim,
        "groups": count_indexed(sd, r"deep_feature_extraction\.(\d+)\.body\."),
        "blocks": (count_indexed(sd, r"deep_feature_extraction\.0\.body\.(\d+)\.") - 1) // 2,
        "window_size": window,
        "idynamic_num_heads": dim // dynamic_groups,
        "restormer_num_heads": int(sd["deep_feature_extraction.0.body.1.restormer_attn.temperature"].shape[0]),
        "ffn_expansion_factor": int(expansion) if expansion.is_integer() else expansion,
    }


@register_arch("dlgsanet", scales=(4, 2, 3), detect=_detect, paper="Li et al., ICCV 2023",
               tiny={"dim": 12, "groups": 1, "blocks": 1, "window_size": 3, "idynamic_num_heads": 6,
                     "restormer_num_heads": 2})
class DLGSANet(SRModel):
    """DLGSANet: hybrid blocks of dynamic local (per-pixel depthwise kernels) and sparse global (ReLU channel)
    self-attention in residual groups, one-step PixelShuffle tail."""

    pad_multiple = 1

    def __init__(self, scale: int = 4, dim: int = 48, groups: int = 4, blocks: int = 3, window_size: int = 7,
                 idynamic_num_heads: int = 6, restormer_num_heads: int = 6, ffn_expansion_factor: float = 2.0,
                 tlc_kernel: int | None = None) -> None:
        super().__init__()
        self.scale = scale
        if dim % idynamic_num_heads or dim % restormer_num_heads:
            raise ValueError(f"dim {dim} must be a multiple of both head counts")
        tlc = _TLC_KERNEL.get(scale, 48) if tlc_kernel is None else tlc_kernel
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1), persistent=False)
        self.overlap_embed = nn.Sequential(OverlapPatchEmbed(3, dim))
        self.deep_feature_extraction = nn.Sequential(
            *[BuildBlock(dim, blocks, window_size, idynamic_num_heads, restormer_num_heads, ffn_expansion_factor, tlc)
              for _ in range(groups)],
            nn.Conv2d(dim, dim, 3, 1, 1))
        self.upsample = UpsampleOneStep(scale, dim, 3)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = self.overlap_embed(x - mean)
        return self.upsample(self.deep_feature_extraction(x) + x) + mean


# Published PSNR/SSIM (Y) of DLGSANet-light (DIV2K), paper Table 2 as repeated in the official README.
_LIGHT_PSNR = {
    2: {"Set5": (38.20, 0.9612), "Set14": (33.89, 0.9203), "B100": (32.30, 0.9012), "Urban100": (32.94, 0.9355),
        "Manga109": (39.29, 0.9780)},
    3: {"Set5": (34.70, 0.9295), "Set14": (30.58, 0.8465), "B100": (29.24, 0.8089), "Urban100": (28.83, 0.8653),
        "Manga109": (34.16, 0.9483)},
    4: {"Set5": (32.54, 0.8993), "Set14": (28.84, 0.7871), "B100": (27.73, 0.7415), "Urban100": (26.66, 0.8033),
        "Manga109": (31.13, 0.9161)},
}
register_variant("dlgsanet", "dlgsanet", {}, description="DLGSANet-light (48 channels, 4 RHDTGs of 3 HDTBs), DIV2K "
                 "[published: paper Table 2 / official README]", paper_psnr=_LIGHT_PSNR)
# DLGSANet-Tiny (DIV2K): the official README's `Tiny-x*(paper)` rows (read in NeonLeexiang/DLGSANet); its training
# options (train_SISR_ClassicDIV2K_Tiny_48C3G*B_*.yml) build 48 channels, 3 groups of 3 blocks at every scale, the x3
# file's "48C3G4B" name notwithstanding. No parameter or FLOP count is printed there.
_TINY_PSNR = {
    2: {"Set5": (38.16, 0.9611), "Set14": (33.92, 0.9202), "B100": (32.26, 0.9007), "Urban100": (32.82, 0.9343),
        "Manga109": (39.14, 0.9777)},
    3: {"Set5": (34.63, 0.9288), "Set14": (30.57, 0.8459), "B100": (29.21, 0.8083), "Urban100": (28.69, 0.8630),
        "Manga109": (34.10, 0.9480)},
    4: {"Set5": (32.46, 0.8984), "Set14": (28.79, 0.7861), "B100": (27.70, 0.7408), "Urban100": (26.55, 0.8002),
        "Manga109": (30.98, 0.9137)},
}
register_variant("dlgsanet_tiny", "dlgsanet", {"groups": 3}, description="DLGSANet-Tiny (48 channels, 3 RHDTGs of 3 "
                 "HDTBs), DIV2K [official options; published: official README (paper rows)]", paper_psnr=_TINY_PSNR)
register_variant("dlgsanet_large", "dlgsanet", {"dim": 90, "groups": 6, "blocks": 4},
                 description="DLGSANet (classic SR: 90 channels, 6 RHDTGs of 4 HDTBs), DIV2K [official options]")
