"""QuickSRNet: Plain Single-Image Super-Resolution Architecture for Faster Inference on Mobile Platforms (Berger,
Siddiqui et al., Qualcomm, CVPRW 2023). Official code: quic/aimet-model-zoo, ``aimet_zoo_torch/quicksrnet/model/
models.py`` (state-dict names follow it).

A plain stack of 3x3 convolutions, each followed by a clipped ReLU (``Hardtanh(0, 1)``), a last 3x3 conv to
``3 * scale**2`` channels, an output clip to [0, 1] and PixelShuffle. The large variant adds an input-to-output
("ito") connection: a trainable 1x1 conv (``anchor.net``) initialised to nearest upsampling, added before the clip.
At construction the convolutions are initialised as the official code does: each body conv starts as ``conv(x) + x``
and, without the ito connection, the last conv starts as ``conv(x) + repeat_interleave(x, scale**2)``.

Variants (official ``QuickSRNetSmall/Medium/Large``): small 32 channels and 2 intermediate layers, medium 32 and 5,
large 64 and 11 with the ito connection. The official code also has a 1.5x form (space-to-depth before a 1x1 last
conv); litesr builds the integer scales. Published (AIMET model zoo QuickSRNet.md, DIV2K-trained, Set14 x2 FP32):
32.52 / 32.78 / 33.24 dB for small / medium / large (no SSIM, no other sets there, so not recorded as paper_psnr).
Weights are GitHub release assets of that repository, not files in it.

RGB in [0, 1]; any size.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel

_KEY = re.compile(r"^(cnn\.\d+|conv_last|anchor\.net)\.(weight|bias)$")


class Anchor(nn.Module):
    """The ito connection (official ``AnchorOp``): a 1x1 conv to ``3 * scale**2`` channels, initialised so that after
    PixelShuffle it is nearest upsampling (each input channel repeated ``scale**2`` times)."""

    def __init__(self, scale: int, in_channels: int = 3) -> None:
        super().__init__()
        self.net = nn.Conv2d(in_channels, in_channels * scale**2, 1)
        with torch.no_grad():
            self.net.weight.zero_()
            self.net.bias.zero_()
            for c in range(in_channels):
                self.net.weight[c * scale**2:(c + 1) * scale**2, c, 0, 0] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "cnn.0.weight" not in sd or "conv_last.weight" not in sd or not all(_KEY.match(k) for k in sd):
        return None
    convs = sorted(int(k.split(".")[1]) for k in sd if k.startswith("cnn.") and k.endswith(".weight"))
    if convs != list(range(0, 2 * len(convs), 2)):  # conv, Hardtanh, conv, Hardtanh ...
        return None
    in_channels = int(sd["cnn.0.weight"].shape[1])
    scale = math.isqrt(sd["conv_last.weight"].shape[0] // in_channels)
    return {"scale": scale, "num_channels": int(sd["cnn.0.weight"].shape[0]),
            "num_intermediate_layers": len(convs) - 1, "use_ito_connection": "anchor.net.weight" in sd,
            "in_channels": in_channels}


@register_arch("quicksrnet", scales=(2, 3, 4), detect=_detect, paper="Berger et al., CVPRW 2023 (Qualcomm)",
               tiny={"num_channels": 8, "num_intermediate_layers": 1})
class QuickSRNet(SRModel):
    """QuickSRNet: plain 3x3 convs with clipped ReLUs, an optional nearest-upsampling ito path, PixelShuffle."""

    def __init__(self, scale: int = 2, num_channels: int = 32, num_intermediate_layers: int = 2,
                 use_ito_connection: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        self.scale = scale
        # The intermediate layers are built before the first conv, as in the official code, so that a seed gives the
        # official initial weights.
        intermediate: list[nn.Module] = []
        for _ in range(num_intermediate_layers):
            intermediate += [nn.Conv2d(num_channels, num_channels, 3, padding=1), nn.Hardtanh(0.0, 1.0)]
        self.cnn = nn.Sequential(nn.Conv2d(in_channels, num_channels, 3, padding=1), nn.Hardtanh(0.0, 1.0),
                                 *intermediate)
        self.conv_last = nn.Conv2d(num_channels, in_channels * scale**2, 3, padding=1)
        self.anchor = Anchor(scale, in_channels) if use_ito_connection else None
        self.clip_output = nn.Hardtanh(0.0, 1.0)
        self.depth_to_space = nn.PixelShuffle(scale)
        self._init_as_residual(in_channels)

    @torch.no_grad()
    def _init_as_residual(self, in_channels: int) -> None:
        """The official initialisation: identity added to each body conv's centre tap; without the ito path, the last
        conv also starts as nearest upsampling of its first ``in_channels`` features."""
        for layer in self.cnn:
            if isinstance(layer, nn.Conv2d):
                for c in range(min(layer.in_channels, layer.out_channels)):
                    layer.weight[c, c, 1, 1] += 1.0
        if self.anchor is None:
            repeats = self.conv_last.out_channels // in_channels
            for out in range(self.conv_last.out_channels):
                self.conv_last.weight[out, out // repeats, 1, 1] += 1.0

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv_last(self.cnn(x))
        if self.anchor is not None:
            y = y + self.anchor(x)
        return self.depth_to_space(self.clip_output(y))


register_variant("quicksrnet_small", "quicksrnet", {},
                 description="QuickSRNet-Small (32 channels, 2 intermediate layers) [official QuickSRNetSmall]")
register_variant("quicksrnet_medium", "quicksrnet", {"num_intermediate_layers": 5},
                 description="QuickSRNet-Medium (32 channels, 5 intermediate layers) [official QuickSRNetMedium]")
register_variant("quicksrnet_large", "quicksrnet",
                 {"num_channels": 64, "num_intermediate_layers": 11, "use_ito_connection": True},
                 description="QuickSRNet-Large (64 channels, 11 intermediate layers, ito connection) "
                             "[official QuickSRNetLarge]")
