"""IMDN: Lightweight Image Super-Resolution with Information Multi-distillation Network (Hui et al., ACM MM 2019).

State-dict names follow the official code (Zheng222/IMDN, ``model/architecture.py``): ``fea_conv``, ``IMDB1..N``,
``c`` (1x1 fusion + LeakyReLU), ``LR_conv``, ``upsampler``.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import pixelshuffle_scale, register_swappable_tail, tail_upsampler
from .base import SRModel
from .blocks import CCALayer, conv


class IMDModule(nn.Module):
    """Information multi-distillation block: three progressive splits of 1/4 channels, CCA, 1x1 fusion, residual."""

    def __init__(self, channels: int, distillation_rate: float = 0.25) -> None:
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = conv(channels, channels, 3)
        self.c2 = conv(self.remaining, channels, 3)
        self.c3 = conv(self.remaining, channels, 3)
        self.c4 = conv(self.remaining, self.distilled, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = conv(self.distilled * 4, channels, 1)
        self.cca = CCALayer(self.distilled * 4)

    def forward(self, x: Tensor) -> Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        d4 = self.c4(r3)
        return self.c5(self.cca(torch.cat([d1, d2, d3, d4], dim=1))) + x


def _detect(sd: StateDict) -> dict | None:
    if "fea_conv.weight" not in sd or "IMDB1.c1.weight" not in sd:
        return None
    in_nc = sd["fea_conv.weight"].shape[1]
    nf = sd["fea_conv.weight"].shape[0]
    num_modules = len({m.group(1) for k in sd if (m := re.match(r"IMDB(\d+)\.", k))})
    out_nc = in_nc
    scale = pixelshuffle_scale(sd, "upsampler.0.weight", out_nc)
    return {"scale": scale, "in_nc": in_nc, "nf": nf, "num_modules": num_modules, "out_nc": out_nc}


@register_arch("imdn", scales=(2, 3, 4), detect=_detect, paper="Hui et al., ACM MM 2019",
               tiny={"nf": 16, "num_modules": 2})
class IMDN(SRModel):
    """IMDN: information multi-distillation blocks with contrast-aware channel attention."""

    def __init__(self, scale: int = 4, in_nc: int = 3, nf: int = 64, num_modules: int = 6, out_nc: int = 3,
                 upsampler: str = "pixelshuffle") -> None:
        super().__init__()
        self.scale = scale
        self.num_modules = num_modules
        self.fea_conv = conv(in_nc, nf, 3)
        for i in range(1, num_modules + 1):
            setattr(self, f"IMDB{i}", IMDModule(nf))
        self.c = nn.Sequential(conv(nf * num_modules, nf, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv(nf, nf, 3)
        self.upsampler = tail_upsampler("imdn", upsampler, nf, scale, out_nc)

    def forward(self, x: Tensor) -> Tensor:
        fea = self.fea_conv(x)
        outs = []
        out = fea
        for i in range(1, self.num_modules + 1):
            out = getattr(self, f"IMDB{i}")(out)
            outs.append(out)
        body = self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea
        return self.upsampler(body)


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_IMDN_PUBLISHED = {
    2: {"Set5": (38.00, 0.9605), "Set14": (33.63, 0.9177), "B100": (32.19, 0.8996), "Urban100": (32.17, 0.9283),
        "Manga109": (38.88, 0.9774)},
    3: {"Set5": (34.36, 0.9270), "Set14": (30.32, 0.8417), "B100": (29.09, 0.8046), "Urban100": (28.17, 0.8519),
        "Manga109": (33.61, 0.9445)},
    4: {"Set5": (32.21, 0.8948), "Set14": (28.58, 0.7811), "B100": (27.56, 0.7353), "Urban100": (26.04, 0.7838),
        "Manga109": (30.45, 0.9075)},
}
register_variant("imdn", "imdn", {}, description="IMDN (64 channels, 6 IMDBs)"
                 " [published: IMDN/SwinIR T3/SSIU; Mult-Adds: SwinIR T3]",
                 paper_params={2: 694_404, 3: 703_059, 4: 715_176},
                 paper_psnr=_IMDN_PUBLISHED, paper_macs={2: 158.8, 3: 71.5, 4: 40.9})

register_swappable_tail("imdn")  # --model-opt upsampler=NAME (litesr.upsamplers)
