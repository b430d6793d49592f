"""MoESR: "Mamba out Excitation" super-resolution (umzi2 / rewaifu resselt, 2024), a community architecture that
spandrel loads.

A conv to ``dim`` channels, ``n_blocks`` groups (each ``n_block`` gated CNN blocks with an Inception depthwise conv
- identity / 3x3 / 1x11 / 11x1 branches on 1/8 of the channels each - and a learned ``gamma`` on the residual, then
an MSG unit: conv to dim/4, pixel-unshuffle 2, three gated blocks at half resolution, conv + PixelShuffle back,
plus input), a long skip, and the shared ``UniUpsample`` head, whose ``MetaUpsample`` buffer records the upsampler.

State-dict names follow that code: ``in_to_dim``, ``blocks.G.blocks.B.{norm,fc1,conv.dwconv_{hw,w,h},fc2,gamma}``,
``blocks.G.msg.{down.0,gated.K,up.0}``, ``upscale.*`` and ``upscale.MetaUpsample``. Input and output are RGB in
[0, 1]; the MSG unit halves the resolution, so odd sizes are reflect-padded to even inside ``forward`` (tiles of
any size work).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ._upsample import UPSAMPLE_MODES, UniUpsample
from .base import SRModel
from .blocks import LayerNorm2d, count_indexed, pad_to_multiple


class InceptionDWConv2d(nn.Module):
    """Inception depthwise conv: identity, square 3x3, 1 x 11 and 11 x 1 branches, each on 1/8 of the channels."""

    def __init__(self, channels: int, square_kernel: int = 3, band_kernel: int = 11,
                 branch_ratio: float = 0.125) -> None:
        super().__init__()
        gc = int(channels * branch_ratio)
        self.dwconv_hw = nn.Conv2d(gc, gc, square_kernel, padding=square_kernel // 2, groups=gc)
        self.dwconv_w = nn.Conv2d(gc, gc, (1, band_kernel), padding=(0, band_kernel // 2), groups=gc)
        self.dwconv_h = nn.Conv2d(gc, gc, (band_kernel, 1), padding=(band_kernel // 2, 0), groups=gc)
        self.split_indexes = [channels - 3 * gc, gc, gc, gc]

    def forward(self, x: Tensor) -> Tensor:
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_indexes, dim=1)
        return torch.cat((x_id, self.dwconv_hw(x_hw), self.dwconv_w(x_w), self.dwconv_h(x_h)), dim=1)


class GatedCNNBlock(nn.Module):
    """MambaOut's gated CNN unit with an Inception depthwise conv and a learned residual scale ``gamma``."""

    def __init__(self, dim: int, expansion_ratio: float) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        hidden = int(expansion_ratio * dim)
        self.split_indices = [hidden, hidden - dim, dim]
        self.fc1 = nn.Conv2d(dim, hidden * 2, 3, 1, 1)
        self.act = nn.Mish()
        self.conv = InceptionDWConv2d(dim)
        self.fc2 = nn.Conv2d(hidden, dim, 3, 1, 1)
        self.gamma = nn.Parameter(torch.ones(1, dim, 1, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        g, i, c = torch.split(self.fc1(self.norm(x)), self.split_indices, dim=1)
        out = self.act(self.fc2(self.act(g) * torch.cat((i, self.conv(c)), dim=1)))
        return out * self.gamma + x


class MSG(nn.Module):
    """Down (conv to dim/4, unshuffle 2, LeakyReLU 0.1), three gated blocks, up (conv to 4 dim, shuffle), plus input."""

    def __init__(self, dim: int, expansion_msg: float) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.PixelUnshuffle(2), nn.LeakyReLU(0.1, True))
        self.gated = nn.Sequential(*(GatedCNNBlock(dim, expansion_msg) for _ in range(3)))
        self.up = nn.Sequential(nn.Conv2d(dim, dim * 4, 3, 1, 1), nn.PixelShuffle(2), nn.LeakyReLU(0.1, True))

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.gated(self.down(x))) + x


class Blocks(nn.Module):
    def __init__(self, dim: int, n_block: int, expansion_factor: float, expansion_msg: float) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(GatedCNNBlock(dim, expansion_factor) for _ in range(n_block)))
        self.msg = MSG(dim, expansion_msg)

    def forward(self, x: Tensor) -> Tensor:
        return self.msg(self.blocks(x))


def _detect(sd: StateDict) -> dict[str, Any] | None:
    meta = sd.get("upscale.MetaUpsample")
    if meta is None or "in_to_dim.weight" not in sd or "blocks.0.msg.gated.0.fc1.weight" not in sd:
        return None
    _, index, scale, _, out_ch, mid_dim, _ = (int(v) for v in meta.tolist())
    dim, in_ch = sd["in_to_dim.weight"].shape[:2]
    fc1, msg_fc1 = sd["blocks.0.blocks.0.fc1.weight"], sd["blocks.0.msg.gated.0.fc1.weight"]
    return {
        "scale": scale, "in_ch": int(in_ch), "out_ch": out_ch, "dim": int(dim),
        "n_blocks": count_indexed(sd, r"blocks\.(\d+)\.msg\.down\.0\.weight$"),
        "n_block": count_indexed(sd, r"blocks\.0\.blocks\.(\d+)\.fc1\.weight$"),
        "expansion_factor": fc1.shape[0] / fc1.shape[1] / 2, "expansion_msg": msg_fc1.shape[0] / msg_fc1.shape[1] / 2,
        "upsampler": UPSAMPLE_MODES[index], "upsample_dim": mid_dim,
    }


@register_arch("moesr", scales=(4, 1, 2, 3, 8), detect=_detect, paper="resselt 2024 (MoESR, community architecture)",
               tiny={"dim": 16, "n_blocks": 1, "n_block": 1, "upsample_dim": 16})
class MoESR(SRModel):
    """MoESR (defaults: 9 groups of 4 gated blocks, 64 channels, pixelshuffledirect)."""

    def __init__(self, scale: int = 4, in_ch: int = 3, out_ch: int = 3, dim: int = 64, n_blocks: int = 9,
                 n_block: int = 4, expansion_factor: float = 2.65625, expansion_msg: float = 1.5,
                 upsampler: str = "pixelshuffledirect", upsample_dim: int = 64) -> None:
        super().__init__()
        if upsampler == "conv":
            scale = 1
        self.scale = scale
        self.color_space = "rgb" if in_ch == 3 else "y"
        self.in_to_dim = nn.Conv2d(in_ch, dim, 3, 1, 1)
        self.blocks = nn.Sequential(*(Blocks(dim, n_block, expansion_factor, expansion_msg) for _ in range(n_blocks)))
        self.upscale = UniUpsample(upsampler, scale, dim, out_ch, upsample_dim)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x, _, _ = pad_to_multiple(x, 2)
        x = self.in_to_dim(x)
        return self.upscale(self.blocks(x) + x)[..., : h * self.scale, : w * self.scale]


register_variant("moesr", "moesr", {}, description="MoESR (9 x 4 gated blocks, 64 channels, pixelshuffledirect)")
