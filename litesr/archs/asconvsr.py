"""AsConvSR: Fast and Lightweight Super-Resolution Network with Assembled Convolutions (Guo, Zou, Chen, Liu, Hao, Liu
and Yan, CVPRW 2023, arXiv 2305.03387; first place of NTIRE 2023 Real-Time SR track 1, x2). Built from the paper's
abstract: the official code is announced at gitee.com/mindspore/models (research/cv/AsConvSR), outside what can be
read here, and no GitHub copy of it was found; the paper's body (widths, depths, tables) was not readable either.

What the abstract fixes, and litesr follows: pixel-unshuffle at the input (the body runs at half resolution), "repeat
upscaling" (the input repeated over the sub-pixels, i.e. nearest upsampling, added to the output), no local skip
connections, and assembled convolutions, "which can adapt convolution kernels according to the input features"
(divide and conquer: one kernel per image, assembled from a bank).

Everything else is litesr's choice, not the paper's: the assembled convolution mixes ``num_kernels`` 3x3 kernels and
biases with per-image softmax coefficients (logits divided by ``temperature``) predicted by a control module (global
average pool, linear to channels / 4, ReLU, linear to ``num_kernels``); the body is ``num_blocks`` assembled
convolutions each followed by ReLU; ``head`` is a 3x3 conv from the 12 unshuffled channels, ``tail`` a 3x3 conv to
3 * (2s)^2 channels and PixelShuffle(2s). Defaults: 32 channels, 3 blocks, 4 kernels, temperature 30. There is no
published parameter count or PSNR registered: none could be read here.

Size rule: odd H or W are reflect-padded to even inside ``forward`` and the output cropped. The control module
pools the whole feature map, so tiled inference assembles a kernel per tile and differs slightly from whole-image
inference.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed, pad_to_multiple


class AssembledConv(nn.Module):
    """A kxk convolution whose kernel and bias are, per image, a softmax-weighted sum of a bank of ``num_kernels``."""

    def __init__(self, in_channels: int, out_channels: int, num_kernels: int = 4, kernel_size: int = 3,
                 temperature: float = 30.0) -> None:
        super().__init__()
        self.temperature = temperature
        self.padding = kernel_size // 2
        hidden = max(in_channels // 4, 1)
        self.control = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, hidden),
                                     nn.ReLU(inplace=True), nn.Linear(hidden, num_kernels))
        self.weight_bank = nn.Parameter(torch.empty(num_kernels, out_channels, in_channels, kernel_size, kernel_size))
        self.bias_bank = nn.Parameter(torch.zeros(num_kernels, out_channels))
        for kernel in self.weight_bank:
            nn.init.kaiming_uniform_(kernel, a=math.sqrt(5))

    def coefficients(self, x: Tensor) -> Tensor:
        """(B, num_kernels) mixing weights of each image's kernel."""
        return (self.control(x) / self.temperature).softmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        mix = self.coefficients(x)
        weight = torch.einsum("be,eoikl->boikl", mix, self.weight_bank)
        bias = mix @ self.bias_bank
        # one grouped convolution: image i of the batch is group i, with its own assembled kernel
        out = F.conv2d(x.reshape(1, b * c, h, w), weight.flatten(0, 1), bias.flatten(), padding=self.padding,
                       groups=b)
        return out.view(b, -1, h, w)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "body.0.weight_bank" not in sd or "head.weight" not in sd or "tail.weight" not in sd:
        return None
    if sd["head.weight"].shape[1] != 12:  # RGB after a 2x pixel-unshuffle
        return None
    bank = sd["body.0.weight_bank"]
    scale = math.isqrt(sd["tail.weight"].shape[0] // 3) // 2
    blocks = count_indexed(sd, r"body\.(\d+)\.weight_bank")
    return {"scale": scale, "num_feat": int(bank.shape[1]), "num_blocks": blocks, "num_kernels": int(bank.shape[0])}


@register_arch("asconvsr", scales=(2, 3, 4), detect=_detect, paper="Guo et al., CVPRW 2023 (arXiv 2305.03387)",
               tiny={"num_feat": 8, "num_blocks": 1, "num_kernels": 2})
class AsConvSR(SRModel):
    """AsConvSR, from the paper's abstract: pixel-unshuffle, assembled convolutions, repeat-upscaled input skip."""

    def __init__(self, scale: int = 2, num_feat: int = 32, num_blocks: int = 3, num_kernels: int = 4,
                 temperature: float = 30.0) -> None:
        super().__init__()
        self.scale = scale
        self.unshuffle = nn.PixelUnshuffle(2)
        self.head = nn.Conv2d(12, num_feat, 3, 1, 1)
        self.body = nn.ModuleList(
            [AssembledConv(num_feat, num_feat, num_kernels, temperature=temperature) for _ in range(num_blocks)])
        self.tail = nn.Conv2d(num_feat, 3 * (2 * scale) ** 2, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(2 * scale)

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = pad_to_multiple(x, 2)  # the 2x pixel-unshuffle needs even sides
        feat = self.head(self.unshuffle(x))
        for block in self.body:
            feat = F.relu(block(feat))
        repeated = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        out = self.shuffle(self.tail(feat)) + repeated
        return out[..., : h * self.scale, : w * self.scale]


register_variant("asconvsr", "asconvsr", {}, description="AsConvSR, from the paper's abstract (widths, depth, kernel "
                 "bank are litesr's choice; no published figures registered)")
