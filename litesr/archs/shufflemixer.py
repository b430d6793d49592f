"""ShuffleMixer: An Efficient ConvNet for Image Super-Resolution (Sun, Pan, Tang, NeurIPS 2022).

State-dict names follow the official code (sunny2109/ShuffleMixer, ``basicsr/archs/shufflemixer_arch.py``):
``to_feat`` (bias-free conv3x3), ``blocks.N`` (feature mixing blocks: ``net.{0,1}`` shuffle mixer layers with
``norm1``/``norm2``/``spatial``/``mlp1``/``mlp2``, then ``conv`` a Fused-MBConv), ``upsapling`` (sic) and ``tail``.
The network adds a bilinear upscale of its input, works on RGB in [0, 1] and, being fully convolutional, takes any size.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import LayerNorm2d

SHUFFLE_GROUPS = 8  # the official channel shuffle is rearrange('b (g d) h w -> b (d g) h w', g=8)


class BiasFreeNorm(nn.Module):
    """Restormer's ``LayerNorm(dim, 'BiasFree')`` as ShuffleMixer uses it: channel LayerNorm, eps 1e-5, no bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = LayerNorm2d(channels, eps=1e-5, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class SplitPointMlp(nn.Module):
    """Point-wise MLP on the first half of the channels, the second half passed through, then a channel shuffle."""

    def __init__(self, dim: int, mlp_ratio: float = 2) -> None:
        super().__init__()
        hidden = int(dim // 2 * mlp_ratio)
        self.fc = nn.Sequential(nn.Conv2d(dim // 2, hidden, 1), nn.SiLU(inplace=True), nn.Conv2d(hidden, dim // 2, 1))

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1)
        x = torch.cat([self.fc(x1), x2], dim=1)
        b, c, h, w = x.shape
        return x.view(b, SHUFFLE_GROUPS, c // SHUFFLE_GROUPS, h, w).transpose(1, 2).reshape(b, c, h, w)


class SMLayer(nn.Module):
    """Shuffle mixer layer: split-MLP, large depth-wise convolution, split-MLP (pre-norm residuals)."""

    def __init__(self, dim: int, kernel_size: int, mlp_ratio: float = 2) -> None:
        super().__init__()
        self.norm1 = BiasFreeNorm(dim)
        self.norm2 = BiasFreeNorm(dim)
        self.spatial = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim)
        self.mlp1 = SplitPointMlp(dim, mlp_ratio)
        self.mlp2 = SplitPointMlp(dim, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        x = self.mlp1(self.norm1(x)) + x
        x = self.spatial(x)
        return self.mlp2(self.norm2(x)) + x


class FMBlock(nn.Module):
    """Feature mixing block: two shuffle mixer layers, then a Fused-MBConv (conv3x3 to dim+16, SiLU, conv1x1)."""

    def __init__(self, dim: int, kernel_size: int, mlp_ratio: float = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(SMLayer(dim, kernel_size, mlp_ratio), SMLayer(dim, kernel_size, mlp_ratio))
        self.conv = nn.Sequential(nn.Conv2d(dim, dim + 16, 3, 1, 1), nn.SiLU(inplace=True), nn.Conv2d(dim + 16, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.net(x) + x
        return self.conv(x) + x


def _upsampler(n_feats: int, scale: int) -> nn.Sequential:
    """x4 is two (1x1 conv, PixelShuffle(2), SiLU) stages; x2/x3 one stage of PixelShuffle(scale)."""
    stages = [2, 2] if scale == 4 else [scale]
    layers: list[nn.Module] = []
    for s in stages:
        layers += [nn.Conv2d(n_feats, n_feats * s * s, 1), nn.PixelShuffle(s), nn.SiLU(inplace=True)]
    return nn.Sequential(*layers)


def _detect(sd: StateDict) -> dict | None:
    if "to_feat.weight" not in sd or "blocks.0.net.0.spatial.weight" not in sd or "upsapling.0.weight" not in sd:
        return None
    n_feats = sd["to_feat.weight"].shape[0]
    kernel_size = sd["blocks.0.net.0.spatial.weight"].shape[-1]
    n_blocks = len({m.group(1) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    hidden = sd["blocks.0.net.0.mlp1.fc.0.weight"].shape[0]
    mlp_ratio = hidden / (n_feats // 2)
    if mlp_ratio == int(mlp_ratio):
        mlp_ratio = int(mlp_ratio)
    scale = 4 if "upsapling.3.weight" in sd else math.isqrt(sd["upsapling.0.weight"].shape[0] // n_feats)
    return {"scale": scale, "n_feats": n_feats, "kernel_size": kernel_size, "n_blocks": n_blocks,
            "mlp_ratio": mlp_ratio}


@register_arch("shufflemixer", scales=(2, 3, 4), detect=_detect, paper="Sun, Pan, Tang, NeurIPS 2022",
               tiny={"n_feats": 16, "kernel_size": 3, "n_blocks": 1})
class ShuffleMixer(SRModel):
    """ShuffleMixer: large depth-wise kernels and channel split-shuffle MLPs, plus Fused-MBConvs; bilinear skip."""

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1  # fully convolutional: any H, W
    # BasicSR's test (options/test/ShuffleMixer/*.yml, no param_key_g) loads ``params`` when ``params_ema`` also exists.
    preferred_param_key = "params"

    def __init__(self, scale: int = 4, n_feats: int = 64, kernel_size: int = 7, n_blocks: int = 5,
                 mlp_ratio: float = 2) -> None:
        super().__init__()
        if n_feats % SHUFFLE_GROUPS:
            raise ValueError(f"n_feats must be a multiple of {SHUFFLE_GROUPS} (channel shuffle), not {n_feats}")
        self.scale = scale
        self.to_feat = nn.Conv2d(3, n_feats, 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(*[FMBlock(n_feats, kernel_size, mlp_ratio) for _ in range(n_blocks)])
        self.upsapling = _upsampler(n_feats, scale)  # (sic) the official attribute name, kept for the state dict
        self.tail = nn.Conv2d(n_feats, 3, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.tail(self.upsapling(self.blocks(self.to_feat(x)))) + base


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_SHUFFLEMIXER_PUBLISHED = {
    2: {"Set5": (38.01, 0.9606), "Set14": (33.63, 0.9180), "B100": (32.17, 0.8995), "Urban100": (31.89, 0.9257),
        "Manga109": (38.83, 0.9774)},
    3: {"Set5": (34.40, 0.9272), "Set14": (30.37, 0.8423), "B100": (29.12, 0.8051), "Urban100": (28.08, 0.8498),
        "Manga109": (33.69, 0.9448)},
    4: {"Set5": (32.21, 0.8953), "Set14": (28.66, 0.7827), "B100": (27.61, 0.7366), "Urban100": (26.08, 0.7835),
        "Manga109": (30.65, 0.9093)},
}
register_variant("shufflemixer", "shufflemixer", {}, description="ShuffleMixer (64 channels, 7x7 depth-wise, 5 FMBs)"
                 " [published: SSIU/SAFMN; Mult-Adds: SSIU]",
                 paper_params={2: 394_000, 3: 415_000, 4: 411_000},
                 paper_psnr=_SHUFFLEMIXER_PUBLISHED, paper_macs={2: 91, 3: 43, 4: 28})
register_variant("shufflemixer_tiny", "shufflemixer", {"n_feats": 32, "kernel_size": 3},
                 description="ShuffleMixer-Tiny (32 channels, 3x3 depth-wise, 5 FMBs)")
