"""CARN and CARN-M: Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network (Ahn et al.,
ECCV 2018).

State-dict names follow the official code (nmhkahn/CARN-pytorch, ``carn/model/carn.py``, ``carn_m.py``, ``ops.py``):
``sub_mean.shifter``/``add_mean.shifter`` (frozen mean shift, stored in the checkpoints), ``entry``, ``b1..b3``
(cascading blocks: ``b1..b3`` residual blocks for CARN, one shared efficient residual block ``b1`` for CARN-M, and
``c1..c3`` 1x1 fusions), ``c1..c3``, ``upsample.up2/up3/up4`` and ``exit``. The released models are multi-scale: one
network with an upsampler per scale, called as ``forward(x, scale)``. RGB in [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import MeanShift

CARN_MEAN = (0.4488, 0.4371, 0.4040)


class _MeanShifter(nn.Module):
    """CARN's ``MeanShift`` keeps its 1x1 conv one level down, under ``shifter``."""

    def __init__(self, sign: int) -> None:
        super().__init__()
        self.shifter = MeanShift(1.0, CARN_MEAN, sign=sign)

    def forward(self, x: Tensor) -> Tensor:
        return self.shifter(x)


class BasicBlock(nn.Module):
    """Conv + ReLU under ``body`` (CARN's 1x1 fusions)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2),
                                  nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class ResidualBlock(nn.Module):
    """CARN residual block: conv3x3, ReLU, conv3x3, add, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + x)


class EResidualBlock(nn.Module):
    """CARN-M efficient residual block: two grouped 3x3 convs with ReLU, a 1x1 conv, add, ReLU."""

    def __init__(self, channels: int, group: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, 1, 0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + x)


class CascadingBlock(nn.Module):
    """Three residual units, each followed by a 1x1 fusion of everything before it (local cascading).

    CARN-M shares one efficient residual block across the three units (``b1`` only), as the official code does.
    """

    def __init__(self, channels: int, mobile: bool, group: int) -> None:
        super().__init__()
        self.mobile = mobile
        if mobile:
            self.b1 = EResidualBlock(channels, group)
        else:
            self.b1 = ResidualBlock(channels)
            self.b2 = ResidualBlock(channels)
            self.b3 = ResidualBlock(channels)
        self.c1 = BasicBlock(channels * 2, channels)
        self.c2 = BasicBlock(channels * 3, channels)
        self.c3 = BasicBlock(channels * 4, channels)

    def forward(self, x: Tensor) -> Tensor:
        units = [self.b1] * 3 if self.mobile else [self.b1, self.b2, self.b3]
        return cascade(x, units, [self.c1, self.c2, self.c3])


def cascade(x: Tensor, units: list[nn.Module], fusions: list[nn.Module]) -> Tensor:
    """CARN's cascading: each unit's output is concatenated to all earlier features and fused by a 1x1 conv."""
    cat = out = x
    for unit, fusion in zip(units, fusions):
        cat = torch.cat([cat, unit(out)], dim=1)
        out = fusion(cat)
    return out


class _ScaleUpsampler(nn.Module):
    """(conv to 4C, ReLU, PixelShuffle(2)) per factor 2, or conv to 9C, ReLU, PixelShuffle(3); grouped for CARN-M."""

    def __init__(self, channels: int, scale: int, group: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        steps = [(3, 9)] if scale == 3 else [(2, 4)] * int(math.log2(scale))
        for factor, mult in steps:
            layers += [nn.Conv2d(channels, mult * channels, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
                       nn.PixelShuffle(factor)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class MultiScaleUpsampler(nn.Module):
    """One upsampler per scale (``up2``, ``up3``, ``up4``), picked at call time."""

    def __init__(self, channels: int, group: int, scales: tuple[int, ...] = (2, 3, 4)) -> None:
        super().__init__()
        for s in scales:
            setattr(self, f"up{s}", _ScaleUpsampler(channels, s, group))

    def forward(self, x: Tensor, scale: int) -> Tensor:
        return getattr(self, f"up{scale}")(x)


def _detect(sd: StateDict) -> dict | None:
    needed = ("sub_mean.shifter.weight", "entry.weight", "b1.c1.body.0.weight", "upsample.up2.body.0.weight")
    if any(k not in sd for k in needed):
        return None
    channels = sd["entry.weight"].shape[0]
    mobile = "b1.b1.body.4.weight" in sd
    # Grouped convs store in_channels / group input channels per filter.
    group = channels // sd["b1.b1.body.0.weight"].shape[1] if mobile else 1
    return {"scale": 2, "num_channels": channels, "mobile": mobile, "group": group}


@register_arch("carn", scales=(2, 3, 4), detect=_detect, paper="Ahn et al., ECCV 2018",
               tiny={"num_channels": 16, "mobile": True, "group": 4})
class CARN(SRModel):
    """CARN / CARN-M: cascading residual network, one multi-scale network for x2/x3/x4; RGB [0, 1]."""

    multi_scale = True

    def __init__(self, scale: int = 2, num_channels: int = 64, mobile: bool = False, group: int = 1) -> None:
        super().__init__()
        self.scale = scale
        self.sub_mean = _MeanShifter(sign=-1)
        self.add_mean = _MeanShifter(sign=1)
        self.entry = nn.Conv2d(3, num_channels, 3, 1, 1)
        self.b1 = CascadingBlock(num_channels, mobile, group)
        self.b2 = CascadingBlock(num_channels, mobile, group)
        self.b3 = CascadingBlock(num_channels, mobile, group)
        self.c1 = BasicBlock(num_channels * 2, num_channels)
        self.c2 = BasicBlock(num_channels * 3, num_channels)
        self.c3 = BasicBlock(num_channels * 4, num_channels)
        self.upsample = MultiScaleUpsampler(num_channels, group)
        self.exit = nn.Conv2d(num_channels, 3, 3, 1, 1)

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        scale = scale or self.scale
        if scale not in (2, 3, 4):
            raise ValueError(f"CARN has upsamplers for x2, x3 and x4, not x{scale}")
        feat = self.entry(self.sub_mean(x))
        out = cascade(feat, [self.b1, self.b2, self.b3], [self.c1, self.c2, self.c3])
        return self.add_mean(self.exit(self.upsample(out, scale)))


# CARN paper: 1,592K parameters (multi-scale CARN, as built here: 1,591,963). CARN-M is printed as 412K; the released
# carn_m.pth is a re-trained version (grouped upsampler, per the CARN-pytorch README) and holds 414,811, so no paper
# count is claimed for it.
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_CARN_PUBLISHED = {
    2: {"Set5": (37.76, 0.9590), "Set14": (33.52, 0.9166), "B100": (32.09, 0.8978), "Urban100": (31.92, 0.9256),
        "Manga109": (38.36, 0.9765)},
    3: {"Set5": (34.29, 0.9255), "Set14": (30.29, 0.8407), "B100": (29.06, 0.8034), "Urban100": (28.06, 0.8493),
        "Manga109": (33.50, 0.9440)},
    4: {"Set5": (32.13, 0.8937), "Set14": (28.60, 0.7806), "B100": (27.58, 0.7349), "Urban100": (26.07, 0.7837),
        "Manga109": (30.47, 0.9084)},
}
register_variant("carn", "carn", {}, description="CARN (64 channels, 3 cascading blocks of residual blocks)"
                 " [published: SwinIR T3/SSIU; Mult-Adds: SwinIR T3]",
                 paper_params={2: 1_592_000, 3: 1_592_000, 4: 1_592_000},
                 paper_psnr=_CARN_PUBLISHED, paper_macs={2: 222.8, 3: 118.8, 4: 90.9})
register_variant("carn_m", "carn", {"mobile": True, "group": 4},
                 description="CARN-M (efficient residual blocks, group 4, shared within each cascading block)")
