"""RFDN: Residual Feature Distillation Network for Lightweight Image Super-Resolution (Liu et al., ECCVW 2020).

State-dict names follow the official code (njulj/RFDN, ``RFDN.py`` / ``block.py``): ``fea_conv``, ``B1..Bn`` (RFDB:
``c1_d``/``c1_r`` ... ``c4``, ``c5``, ``esa``), ``c.0`` (1x1 fusion + LeakyReLU), ``LR_conv``, ``upsampler.0``.
The official class hard-codes E-RFDN, the AIM 2020 winner: 50 channels, four blocks, ESA attention. The paper's RFDN and
RFDN-L (48 / 52 channels, six blocks) end each block with IMDN's contrast-aware channel attention (``cca``, reduction 4)
instead: that is what gives the paper's 534K / 541K / 550K parameters, so block count and attention are parameters here.
The released model was trained on pixels in [0, 255].
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import pixelshuffle_scale, register_swappable_tail, tail_upsampler
from .base import SRModel
from .blocks import ESA, CCALayer, conv, count_indexed, run_at_least


class RFDB(nn.Module):
    """Residual feature distillation block: three (1x1 distil, shallow residual 3x3) steps, a 3x3, 1x1 fusion, then
    ESA (E-RFDN) or contrast-aware channel attention (paper RFDN)."""

    def __init__(self, channels: int, attention: str = "esa") -> None:
        super().__init__()
        self.dc = channels // 2
        self.c1_d = conv(channels, self.dc, 1)
        self.c1_r = conv(channels, channels, 3)
        self.c2_d = conv(channels, self.dc, 1)
        self.c2_r = conv(channels, channels, 3)
        self.c3_d = conv(channels, self.dc, 1)
        self.c3_r = conv(channels, channels, 3)
        self.c4 = conv(channels, self.dc, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = conv(self.dc * 4, channels, 1)
        if attention == "esa":
            self.esa = ESA(channels, full=True)
        else:
            self.cca = CCALayer(channels, reduction=4)
        self.attention = attention

    def forward(self, x: Tensor) -> Tensor:
        fused = distill_and_fuse(self, x)
        return self.esa(fused) if self.attention == "esa" else self.cca(fused)


def distill_and_fuse(block: nn.Module, x: Tensor) -> Tensor:
    """The feature-distillation part of an RFDB (and of BSRN's ESDB, which keeps the names): three steps of a 1x1
    distillation ``c{i}_d`` beside a shallow residual 3x3 ``c{i}_r``, a last 3x3 ``c4``, concatenation, 1x1 ``c5``."""
    act = block.act
    d1 = act(block.c1_d(x))
    r1 = act(block.c1_r(x) + x)
    d2 = act(block.c2_d(r1))
    r2 = act(block.c2_r(r1) + r1)
    d3 = act(block.c3_d(r2))
    r3 = act(block.c3_r(r2) + r2)
    r4 = act(block.c4(r3))
    return block.c5(torch.cat([d1, d2, d3, r4], dim=1))


def _detect(sd: StateDict) -> dict | None:
    if "fea_conv.weight" not in sd or "B1.c1_d.weight" not in sd or "LR_conv.weight" not in sd:
        return None
    in_nc = sd["fea_conv.weight"].shape[1]
    nf = sd["fea_conv.weight"].shape[0]
    num_modules = count_indexed(sd, r"B(\d+)\.")
    out_nc = in_nc
    scale = pixelshuffle_scale(sd, "upsampler.0.weight", out_nc)
    attention = "esa" if "B1.esa.conv1.weight" in sd else "cca"
    return {"scale": scale, "in_nc": in_nc, "nf": nf, "num_modules": num_modules, "out_nc": out_nc,
            "attention": attention}


@register_arch("rfdn", scales=(2, 3, 4), detect=_detect, paper="Liu et al., ECCV Workshops (AIM) 2020",
               tiny={"nf": 16, "num_modules": 2})
class RFDN(SRModel):
    """RFDN: residual feature distillation blocks, channel (paper) or spatial (E-RFDN) attention; input in [0, 255]."""

    input_range = 255.0

    def __init__(self, scale: int = 4, in_nc: int = 3, nf: int = 48, num_modules: int = 6, out_nc: int = 3,
                 attention: Literal["esa", "cca"] = "cca", upsampler: str = "pixelshuffle") -> None:
        super().__init__()
        if attention not in ("esa", "cca"):
            raise ConfigError(f"rfdn: attention must be 'esa' or 'cca', not {attention!r}")
        self.scale = scale
        self.num_modules = num_modules
        self.min_size = ESA.min_size if attention == "esa" else 1  # ESA pools: smaller inputs are padded
        self.fea_conv = conv(in_nc, nf, 3)
        for i in range(1, num_modules + 1):
            setattr(self, f"B{i}", RFDB(nf, attention))
        self.c = nn.Sequential(conv(nf * num_modules, nf, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv(nf, nf, 3)
        self.upsampler = tail_upsampler("rfdn", upsampler, nf, scale, out_nc)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)

    def _forward(self, x: Tensor) -> Tensor:
        fea = self.fea_conv(x)
        outs = []
        out = fea
        for i in range(1, self.num_modules + 1):
            out = getattr(self, f"B{i}")(out)
            outs.append(out)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)


# Published counts are in thousands (RFDN paper Table 3, via a secondary transcription).
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_RFDN_PUBLISHED = {
    2: {"Set5": (38.05, 0.9606), "Set14": (33.68, 0.9184), "B100": (32.16, 0.8994), "Urban100": (32.12, 0.9278),
        "Manga109": (38.88, 0.9773)},
    3: {"Set5": (34.41, 0.9273), "Set14": (30.34, 0.8420), "B100": (29.09, 0.8050), "Urban100": (28.21, 0.8525),
        "Manga109": (33.67, 0.9449)},
    4: {"Set5": (32.24, 0.8952), "Set14": (28.61, 0.7819), "B100": (27.57, 0.7360), "Urban100": (26.11, 0.7858),
        "Manga109": (30.58, 0.9089)},
}
register_variant("rfdn", "rfdn", {}, description="RFDN (paper: 48 channels, 6 RFDBs with CCA)"
                 " [published: CATA, secondary: RFDN paper Table 3]",
                 paper_params={2: 534_000, 3: 541_000, 4: 550_000},
                 paper_psnr=_RFDN_PUBLISHED)
register_variant("rfdn_l", "rfdn", {"nf": 52}, description="RFDN-L (paper: 52 channels, 6 RFDBs with CCA)")
register_variant("e_rfdn", "rfdn", {"nf": 50, "num_modules": 4, "attention": "esa"},
                 description="E-RFDN, the AIM 2020 efficient-SR winner (50 channels, 4 RFDBs; RFDN_AIM.pth)",
                 paper_params={4: 433_448})

register_swappable_tail("rfdn")  # --model-opt upsampler=NAME (litesr.upsamplers)
