"""ESPCN: Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN (Shi et al., CVPR 2016).

State-dict names follow the ETDS authors' re-implementation (ECNUSR/ETDS, ``core/archs/ir/ESPCN/arch.py``), whose
RGB re-trainings litesr loads: ``conv1`` (5x5, 64), ``conv2`` (3x3, 32), ``conv3`` (3x3 to colours * s^2), tanh after
the first two, PixelShuffle, then a sigmoid. The paper's network works on the Y channel and has no output sigmoid:
``colors=1, output_activation="none"`` (variant ``espcn_y``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel

_KEYS = {f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}


def _detect(sd: StateDict) -> dict | None:
    if set(sd) != _KEYS:
        return None
    colors = sd["conv1.weight"].shape[1]
    scale = math.isqrt(sd["conv3.weight"].shape[0] // colors)
    if scale < 2 or colors * scale**2 != sd["conv3.weight"].shape[0]:
        return None  # conv3 of a sub-pixel net has colours * s^2 outputs; SRCNN's has colours
    # Key names cannot tell the output sigmoid apart: the RGB checkpoints (ETDS) have it, the paper's Y form does not.
    return {"scale": scale, "colors": colors, "output_activation": "sigmoid" if colors == 3 else "none"}


@register_arch("espcn", scales=(2, 3, 4), detect=_detect, paper="Shi et al., CVPR 2016")
class ESPCN(SRModel):
    """ESPCN: three convolutions in LR space with tanh, a sub-pixel (PixelShuffle) output; RGB [0, 1] or Y."""

    def __init__(self, scale: int = 4, colors: int = 3,
                 output_activation: Literal["sigmoid", "none"] = "sigmoid") -> None:
        super().__init__()
        if output_activation not in ("sigmoid", "none"):
            raise ConfigError(f"espcn: output_activation must be 'sigmoid' or 'none', not {output_activation!r}")
        self.scale = scale
        self.color_space = "y" if colors == 1 else "rgb"
        self.output_activation = output_activation
        self.conv1 = nn.Conv2d(colors, 64, 5, padding=2)
        self.conv2 = nn.Conv2d(64, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, colors * scale**2, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.tanh(self.conv1(x))
        x = torch.tanh(self.conv2(x))
        x = self.pixel_shuffle(self.conv3(x))
        return torch.sigmoid(x) if self.output_activation == "sigmoid" else x


# Counts of the ETDS authors' RGB re-trainings (ESPCN/ESPCN_x{2,3,4}.pth, ETDS paper Table 2 models).
register_variant("espcn", "espcn", {}, description="ESPCN, RGB re-training of the ETDS authors (tanh, output sigmoid)",
                 paper_params={2: 26_796, 3: 31_131, 4: 37_200})
register_variant("espcn_y", "espcn", {"colors": 1, "output_activation": "none"},
                 description="ESPCN as in the paper: Y channel, (5-64)-(3-32)-(3-s^2), tanh, linear sub-pixel output")
