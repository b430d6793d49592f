"""Real-ESRGAN compact: SRVGGNetCompact (Wang et al., ICCVW 2021, ``realesrgan/archs/srvgg_arch.py``).

A plain VGG-style stack in LR space: a conv, then ``num_conv`` x (PReLU, conv), a PReLU, one conv to
``out * scale^2`` channels and PixelShuffle; the nearest-upsampled input is added (the network learns the residual).
No convolution runs in HR space, which makes it the fastest Real-ESRGAN model (realesr-general-x4v3: 32 convs of 64
channels, realesr-animevideov3: 16).

State-dict names follow the official code: one ``nn.ModuleList`` ``body`` holding convs and activations in turn
(``body.0`` conv, ``body.1`` PReLU with one weight per channel, ... ``body.{2n+2}`` the last conv). Only the PReLU
form stores its activations, so it is the one that can be recognised; ``act_type`` "relu" / "leakyrelu" (0.1) build
the other official forms. Input and output are RGB in [0, 1]; fully convolutional (any size, tiles freely).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import conv, count_indexed


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ConfigError(f"act_type must be 'prelu', 'relu' or 'leakyrelu', not {act_type!r}")


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "body.0.weight" not in sd or "body.1.weight" not in sd or sd["body.1.weight"].dim() != 1:
        return None
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("body.") and k.endswith(".weight"))
    num_feat, in_ch = sd["body.0.weight"].shape[:2]
    out_total = sd[f"body.{last}.weight"].shape[0]
    # The last conv has out * s^2 channels; out = in for all official models (spandrel's rule too).
    scale = next((s for s in (1, 2, 3, 4, 8) if out_total == in_ch * s * s), None)
    if scale is None:
        return None
    return {"scale": scale, "num_in_ch": int(in_ch), "num_out_ch": int(in_ch), "num_feat": int(num_feat),
            "num_conv": count_indexed(sd, r"body\.(\d+)\.weight$") // 2 - 1, "act_type": "prelu"}


@register_arch("compact", scales=(4, 1, 2, 3, 8), detect=_detect, paper="Wang et al., ICCVW 2021 (Real-ESRGAN)",
               tiny={"num_feat": 8, "num_conv": 2})
class SRVGGNetCompact(SRModel):
    """Real-ESRGAN's compact VGG-style network: LR-space convs, PixelShuffle, plus the nearest-upsampled input."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_conv: int = 16, act_type: str = "prelu") -> None:
        super().__init__()
        self.scale = scale
        self.color_space = "rgb" if num_in_ch == 3 else "y"
        layers: list[nn.Module] = [conv(num_in_ch, num_feat, 3), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [conv(num_feat, num_feat, 3), _activation(act_type, num_feat)]
        layers.append(conv(num_feat, num_out_ch * scale * scale, 3))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


register_variant("compact", "compact", {}, description="SRVGGNetCompact (64 channels, 16 convs, PReLU)")
register_variant("realesr_animevideov3", "compact", {"num_conv": 16},
                 description="Real-ESRGAN realesr-animevideov3 (64 channels, 16 convs)")
register_variant("realesr_general_x4v3", "compact", {"num_conv": 32},
                 description="Real-ESRGAN realesr-general-x4v3 / wdn (64 channels, 32 convs)")
