"""BSRN: Blueprint Separable Residual Network for Efficient Image Super-Resolution (Li et al., CVPR Workshops 2022).

State-dict names follow the official code (xiaom233/BSRN, ``basicsr/archs/BSRN_arch.py``): ``fea_conv`` (BSConvU on the
input repeated four times), ``B1..Bn`` (ESDB: ``c1_d``/``c1_r`` ... ``c4``, ``c5``, ``esa``, ``cca``), ``c1`` (1x1
fusion), ``c2`` (BSConvU), ``upsampler.upsampleOneStep.0``. RGB in [0, 1].

The released BSRN-S (``net_g_BSRN-S.pth``) and the NTIRE 2022 submission (``team18_bsrn.pth``) were built with another
class, ``rfdnfinalB5_arch.RFDNFINALB5``: every 1x1 conv is an ``nn.Linear`` (2-D weights, and BSConvU's pointwise part
gains a bias), ESA's strided conv is a plain conv, and each block ends with a learned channel weight ``cw`` and a 1x1
``conv_out`` instead of CCA. ``block_type="rfdb_linear"`` builds that form, so those files load strictly.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import ESA, BSConvU, CCALayer, UpsampleOneStep, count_indexed, run_at_least
from .rfdn import distill_and_fuse

BlockType = Literal["esdb", "rfdb_linear"]


class PointwiseLinear(nn.Linear):
    """A 1x1 convolution stored as ``nn.Linear`` (2-D weight), applied to NCHW tensors; as RFDNFINALB5 stores them."""

    def forward(self, x: Tensor) -> Tensor:
        # Channels-last matmul, as the official code computes it (a 1x1 conv rounds differently).
        return F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, 1)


class ESDB(nn.Module):
    """Efficient separable distillation block (BSRN) or its RFDNFINALB5 ancestor (``block_type="rfdb_linear"``).

    Three (1x1 distil, BSConvU residual) steps, a BSConvU, 1x1 fusion, ESA with BSConvU convs, then CCA (ESDB) or a
    channel weight and 1x1 projection (RFDNFINALB5); GELU throughout; a residual around the block.
    """

    def __init__(self, channels: int, block_type: BlockType = "esdb") -> None:
        super().__init__()
        linear = block_type == "rfdb_linear"
        pointwise = PointwiseLinear if linear else _conv1x1
        bsconv = functools.partial(BSConvU, pointwise=PointwiseLinear) if linear else BSConvU
        self.block_type = block_type
        if linear:  # a learned per-channel weight, initialised N(1, 0.2) as in the official code
            self.cw = nn.Parameter(torch.normal(mean=1.0, std=0.2, size=(1, channels)))
        self.dc = channels // 2
        self.c1_d = pointwise(channels, self.dc)
        self.c1_r = bsconv(channels, channels, 3, padding=1)
        self.c2_d = pointwise(channels, self.dc)
        self.c2_r = bsconv(channels, channels, 3, padding=1)
        self.c3_d = pointwise(channels, self.dc)
        self.c3_r = bsconv(channels, channels, 3, padding=1)
        self.c4 = bsconv(channels, self.dc, 3, padding=1)
        self.act = nn.GELU()
        self.c5 = pointwise(self.dc * 4, channels)
        self.esa = ESA(channels, full=True, conv=bsconv, down_conv=nn.Conv2d if linear else None, pointwise=pointwise,
                       act=nn.GELU)
        if linear:
            self.conv_out = PointwiseLinear(channels, channels)
        else:
            self.cca = CCALayer(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.esa(distill_and_fuse(self, x))
        if self.block_type == "rfdb_linear":
            out = self.conv_out(out * self.cw.view(1, -1, 1, 1))
        else:
            out = self.cca(out)
        return out + x


class PixelShuffleDirect(nn.Module):
    """BSRN's ``pixelshuffledirect`` upsampler: SwinIR's one-step conv + PixelShuffle, one level deeper in the keys."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__()
        self.upsampleOneStep = UpsampleOneStep(scale, num_feat, num_out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.upsampleOneStep(x)


def _detect(sd: StateDict) -> dict | None:
    needed = ("fea_conv.pw.weight", "B1.c1_r.pw.weight", "upsampler.upsampleOneStep.0.weight")
    if any(k not in sd for k in needed):
        return None
    pw = sd["fea_conv.pw.weight"]
    num_in_ch = pw.shape[1] // 4
    return {
        "scale": math.isqrt(sd["upsampler.upsampleOneStep.0.weight"].shape[0] // num_in_ch),
        "num_in_ch": num_in_ch,
        "num_feat": pw.shape[0],
        "num_block": count_indexed(sd, r"B(\d+)\."),
        "num_out_ch": num_in_ch,
        "block_type": "rfdb_linear" if pw.ndim == 2 else "esdb",
    }


@register_arch("bsrn", scales=(2, 3, 4), detect=_detect, paper="Li et al., CVPR Workshops (NTIRE) 2022",
               tiny={"num_feat": 16, "num_block": 2})
class BSRN(SRModel):
    """BSRN: blueprint-separable (BSConvU) distillation blocks with ESA and CCA, one-step pixel-shuffle; RGB [0, 1]."""

    min_size = ESA.min_size  # smaller inputs are padded

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_feat: int = 64, num_block: int = 8, num_out_ch: int = 3,
                 block_type: BlockType = "esdb") -> None:
        super().__init__()
        if block_type not in ("esdb", "rfdb_linear"):
            raise ConfigError(f"bsrn: block_type must be 'esdb' or 'rfdb_linear', not {block_type!r}")
        linear = block_type == "rfdb_linear"
        bsconv = functools.partial(BSConvU, pointwise=PointwiseLinear) if linear else BSConvU
        self.scale = scale
        self.num_block = num_block
        self.fea_conv = bsconv(num_in_ch * 4, num_feat, 3, padding=1)
        for i in range(1, num_block + 1):
            setattr(self, f"B{i}", ESDB(num_feat, block_type))
        self.c1 = (PointwiseLinear if linear else _conv1x1)(num_feat * num_block, num_feat)
        self.GELU = nn.GELU()
        self.c2 = bsconv(num_feat, num_feat, 3, padding=1)
        self.upsampler = PixelShuffleDirect(scale, num_feat, num_out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)

    def _forward(self, x: Tensor) -> Tensor:
        fea = self.fea_conv(torch.cat([x, x, x, x], dim=1))
        outs = []
        out = fea
        for i in range(1, self.num_block + 1):
            out = getattr(self, f"B{i}")(out)
            outs.append(out)
        trunk = self.GELU(self.c1(torch.cat(outs, dim=1)))
        return self.upsampler(self.c2(trunk) + fea)


# The released checkpoints hold these counts; the BSRN paper prints 352K (x4) and 156K (BSRN-S, x4).
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_BSRN_PUBLISHED = {
    4: {"Set5": (32.35, 0.8966), "Set14": (28.73, 0.7847), "B100": (27.65, 0.7387), "Urban100": (26.27, 0.7908),
        "Manga109": (30.84, 0.9123)},
}
register_variant("bsrn", "bsrn", {}, description="BSRN (64 channels, 8 ESDBs)"
                 " [published: LKDN, secondary: BSRN paper; Mult-Adds: LKDN]",
                 paper_params={2: 331_628, 3: 340_283, 4: 352_400},
                 paper_psnr=_BSRN_PUBLISHED, paper_macs={4: 19.4})
register_variant("bsrn_s", "bsrn", {"num_feat": 48, "num_block": 5, "block_type": "rfdb_linear"},
                 description="BSRN-S as released (48 channels, 5 blocks, RFDNFINALB5 form)", paper_params={4: 156_288})
