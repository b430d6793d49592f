"""SMFANet: A Lightweight Self-Modulation Feature Aggregation Network for Efficient Image Super-Resolution (Zheng,
Sun, Dong and Pan, ECCV 2024).

Feature modulation blocks: ``x + SMFA(l2norm(x))`` then ``x + PCFN(l2norm(x))``, the normalisation being
``F.normalize`` over channels (no parameters). SMFA splits a 1x1 projection into two halves: one goes through the
local detail estimation (``lde``: depthwise 3x3 to 2x, 1x1, GELU, 1x1 back), the other is modulated by a
non-local map (adaptive max-pool to H/8 x W/8, depthwise 3x3, plus ``belt`` times the per-channel variance of the
whole map, 1x1, GELU, nearest upsampling). PCFN is a feed-forward whose 3x3 conv touches only the first quarter of
its hidden channels. Long skip, conv + PixelShuffle head.

State-dict names follow the official code (``Zheng-MJ/SMFANet``, ``basicsr/archs/SMFANet_arch.py``): ``to_feat``,
``feats.i.smfa.{linear_0,linear_1,linear_2,lde.conv_0.{0,1},lde.conv_1,dw_conv,alpha,belt}``,
``feats.i.pcfn.{conv_0,conv_1,conv_2}``, ``to_img.0``. Variants: SMFANet (dim 36, 8 blocks) and SMFANet+ (dim 48,
12 blocks).

Size rule: RGB in [0, 1]; the pooled branch needs H and W of at least 8. The official test feeds whole images
without padding (pooling sizes floor(H / 8)), so litesr pads nothing (``pad_multiple = 1``) and only pads inputs
smaller than 8 inside ``forward``. The variance is a statistic of the whole map: tiled inference changes the result
slightly at tile borders and in flat tiles, as for any model with global pooling.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed, run_at_least


class LocalDetail(nn.Module):
    """Local detail estimation (official ``DMlp``): depthwise 3x3 to ``growth`` x channels, 1x1, GELU, 1x1 back."""

    def __init__(self, dim: int, growth_rate: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self.conv_0 = nn.Sequential(nn.Conv2d(dim, hidden, 3, 1, 1, groups=dim), nn.Conv2d(hidden, hidden, 1))
        self.act = nn.GELU()
        self.conv_1 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_1(self.act(self.conv_0(x)))


class PCFN(nn.Module):
    """Partial-convolution feed-forward: 1x1 up, GELU, a 3x3 + GELU on the first ``p_rate`` of the hidden channels,
    1x1 down."""

    def __init__(self, dim: int, growth_rate: float = 2.0, p_rate: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self.p_dim = int(hidden * p_rate)
        self.conv_0 = nn.Conv2d(dim, hidden, 1)
        self.conv_1 = nn.Conv2d(self.p_dim, self.p_dim, 3, 1, 1)
        self.act = nn.GELU()
        self.conv_2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv_0(x))
        head, rest = torch.split(x, [self.p_dim, x.size(1) - self.p_dim], dim=1)
        return self.conv_2(torch.cat([self.act(self.conv_1(head)), rest], dim=1))


class SMFA(nn.Module):
    """Self-modulation feature aggregation (see the module docstring)."""

    down_scale = 8

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear_0 = nn.Conv2d(dim, dim * 2, 1)
        self.linear_1 = nn.Conv2d(dim, dim, 1)
        self.linear_2 = nn.Conv2d(dim, dim, 1)
        self.lde = LocalDetail(dim, 2)
        self.dw_conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.gelu = nn.GELU()
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.belt = nn.Parameter(torch.zeros(1, dim, 1, 1))  # sic: the official name of the variance weight

    def forward(self, f: Tensor) -> Tensor:
        h, w = f.shape[-2:]
        y, x = self.linear_0(f).chunk(2, dim=1)
        pooled = self.dw_conv(F.adaptive_max_pool2d(x, (h // self.down_scale, w // self.down_scale)))
        variance = torch.var(x, dim=(-2, -1), keepdim=True)  # unbiased, as torch.var's default in the official code
        modulation = self.gelu(self.linear_1(pooled * self.alpha + variance * self.belt))
        return self.linear_2(x * F.interpolate(modulation, size=(h, w), mode="nearest") + self.lde(y))


class FMB(nn.Module):
    """Feature modulation block: SMFA and PCFN, each on the channel-L2-normalised input, with residuals."""

    def __init__(self, dim: int, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.smfa = SMFA(dim)
        self.pcfn = PCFN(dim, ffn_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.smfa(F.normalize(x)) + x
        return self.pcfn(F.normalize(x)) + x


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "to_feat.weight" not in sd or "feats.0.smfa.linear_0.weight" not in sd or "feats.0.pcfn.conv_0.weight" not in sd:
        return None
    dim = int(sd["to_feat.weight"].shape[0])
    ratio = sd["feats.0.pcfn.conv_0.weight"].shape[0] / dim
    return {"scale": math.isqrt(sd["to_img.0.weight"].shape[0] // 3), "dim": dim,
            "n_blocks": count_indexed(sd, r"feats\.(\d+)\."), "ffn_scale": int(ratio) if ratio.is_integer() else ratio}


@register_arch("smfanet", scales=(4, 2, 3), detect=_detect, paper="Zheng et al., ECCV 2024",
               tiny={"dim": 8, "n_blocks": 1})
class SMFANet(SRModel):
    """SMFANet: feature modulation blocks (SMFA + PCFN) on L2-normalised features, long skip, PixelShuffle."""

    pad_multiple = 1
    min_size = SMFA.down_scale

    def __init__(self, scale: int = 4, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.scale = scale
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*[FMB(dim, ffn_scale) for _ in range(n_blocks)])
        self.to_img = nn.Sequential(nn.Conv2d(dim, 3 * scale**2, 3, 1, 1), nn.PixelShuffle(scale))

    def _forward(self, x: Tensor) -> Tensor:
        x = self.to_feat(x)
        return self.to_img(self.feats(x) + x)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


# Published PSNR/SSIM (Y) of the DF2K-trained models, paper Tables 1 and 2 (the official README's figs/CNN_results.png
# and figs/ViT_results.png); parameters in K and FLOPs (G, 1280x720 output) from the same tables.
_SMFANET_DF2K = {
    2: {"Set5": (38.08, 0.9607), "Set14": (33.65, 0.9185), "B100": (32.22, 0.9002), "Urban100": (32.20, 0.9282),
        "Manga109": (39.11, 0.9779)},
    3: {"Set5": (34.42, 0.9274), "Set14": (30.41, 0.8430), "B100": (29.16, 0.8065), "Urban100": (28.22, 0.8523),
        "Manga109": (33.96, 0.9460)},
    4: {"Set5": (32.25, 0.8956), "Set14": (28.71, 0.7833), "B100": (27.64, 0.7377), "Urban100": (26.18, 0.7862),
        "Manga109": (30.82, 0.9104)},
}
_SMFANET_PLUS_DF2K = {
    2: {"Set5": (38.19, 0.9611), "Set14": (33.92, 0.9207), "B100": (32.32, 0.9015), "Urban100": (32.70, 0.9331),
        "Manga109": (39.46, 0.9787)},
    3: {"Set5": (34.66, 0.9292), "Set14": (30.57, 0.8461), "B100": (29.25, 0.8090), "Urban100": (28.67, 0.8611),
        "Manga109": (34.45, 0.9490)},
    4: {"Set5": (32.51, 0.8985), "Set14": (28.87, 0.7872), "B100": (27.74, 0.7412), "Urban100": (26.56, 0.7976),
        "Manga109": (31.29, 0.9163)},
}
register_variant("smfanet", "smfanet", {}, description="SMFANet (dim 36, 8 FMBs), DF2K [published: paper Table 1]",
                 paper_params={2: 186_000, 3: 191_000, 4: 197_000}, paper_psnr=_SMFANET_DF2K,
                 paper_macs={2: 41, 3: 19, 4: 11})
register_variant("smfanet_plus", "smfanet", {"dim": 48, "n_blocks": 12},
                 description="SMFANet+ (dim 48, 12 FMBs), DF2K [published: paper Table 2]",
                 paper_params={2: 480_000, 3: 487_000, 4: 496_000}, paper_psnr=_SMFANET_PLUS_DF2K,
                 paper_macs={2: 108, 3: 48, 4: 28})
