"""HNCT: A Hybrid Network of CNN and Transformer for Lightweight Image Super-Resolution (Fang et al., CVPRW 2022).

State-dict names follow the official code (lhjthp/HNCT, ``src/model/hnct.py``, ``block.py``, ``SwinT.py``):
``fea_conv``, ``B1..B4`` (HBCT: ``esa2``, ``swinT.transformer_body.0`` = ``patch_embed.norm`` and two Swin blocks
``blocks.j.{norm1,attn,norm2,mlp}``, ``c1_r``, ``esa``), ``c`` (1x1 + LeakyReLU 0.05 over the concatenated block
outputs), ``LR_conv``, ``upsampler.0``. An HBCT is ESA -> Swin Transformer layer (no outer residual) -> 3x3 conv ->
ESA; the ESAs are RFDN's full form. The official Swin blocks are built for 64 x 64 patches: the shifted block stores
that mask (``attn_mask``, 64 windows), kept here for strict loading; ``forward`` computes the mask for the actual
size.

Parameter counts (every tensor, the positional-bias tables included): 356,612 / 363,377 / 372,848 at x2 / x3 / x4;
the README's 356K / 363K / 372K truncate to thousands.

Input in [0, 1] (the EDSR-style code runs with ``--rgb_range 1``). Any size works: each Swin layer reflect-pads its
input to a multiple of the window and crops back (as the official ``check_image_size``), and inputs smaller than the
15 pixels the ESA needs are padded first and the output cropped.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import ESA, conv, count_indexed, pad_to_multiple, pixelshuffle_block, run_at_least, shifted_window_mask
from .swinir import PatchEmbed, SwinTransformerBlock, tokens_to_image


class SwinLayer(nn.Module):
    """Swin blocks (odd ones shifted) on an image: reflect-pad to the window, normalise tokens, attend, crop."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 img_size: int | None) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                 mlp_ratio=mlp_ratio, img_size=img_size)
            for i in range(depth)
        )
        self.patch_embed = PatchEmbed(dim, norm=True)

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = pad_to_multiple(x, self.window_size)
        hp, wp = x.shape[-2:]
        mask = shifted_window_mask(hp, wp, self.window_size, self.window_size // 2, x.device) if len(
            self.blocks) > 1 else None
        tokens = self.patch_embed(x)
        for block in self.blocks:
            tokens = block(tokens, hp, wp, mask)
        return tokens_to_image(tokens, hp, wp)[..., :h, :w]


class SwinT(nn.Module):
    """Wrapper holding the layer as ``transformer_body.0``, as in the official code."""

    def __init__(self, layer: SwinLayer) -> None:
        super().__init__()
        self.transformer_body = nn.Sequential(layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.transformer_body(x)


class HBCT(nn.Module):
    """Hybrid block of CNN and Transformer: ESA, Swin layer, 3x3 conv, ESA."""

    def __init__(self, channels: int, layer: SwinLayer) -> None:
        super().__init__()
        self.c1_r = conv(channels, channels, 3)
        self.esa = ESA(channels)
        self.esa2 = ESA(channels)
        self.swinT = SwinT(layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.esa(self.c1_r(self.swinT(self.esa2(x))))


def _detect(sd: StateDict) -> dict[str, Any] | None:
    block0 = "B1.swinT.transformer_body.0.blocks.0."
    if "fea_conv.weight" not in sd or block0 + "attn.relative_position_index" not in sd or "LR_conv.weight" not in sd:
        return None
    nf, in_nc = sd["fea_conv.weight"].shape[:2]
    window_size = math.isqrt(sd[block0 + "attn.relative_position_index"].shape[0])
    mask = sd.get("B1.swinT.transformer_body.0.blocks.1.attn_mask")
    return {
        "scale": math.isqrt(sd["upsampler.0.weight"].shape[0] // in_nc),
        "in_nc": int(in_nc),
        "nf": int(nf),
        "num_modules": count_indexed(sd, r"B(\d+)\."),
        "out_nc": int(in_nc),
        "depth": count_indexed(sd, r"B1\.swinT\.transformer_body\.0\.blocks\.(\d+)\."),
        "num_heads": int(sd[block0 + "attn.relative_position_bias_table"].shape[1]),
        "window_size": window_size,
        "mlp_ratio": sd[block0 + "mlp.fc1.weight"].shape[0] / nf,
        "img_size": 64 if mask is None else math.isqrt(mask.shape[0]) * window_size,
    }


@register_arch("hnct", scales=(2, 3, 4), detect=_detect, paper="Fang et al., CVPR Workshops 2022 (HNCT)",
               tiny={"nf": 8, "num_modules": 2, "num_heads": 2, "window_size": 4, "img_size": 16})
class HNCT(SRModel):
    """HNCT: hybrid blocks (ESA, Swin layer, conv, ESA), IMDN-style fusion of all block outputs, pixel shuffle.

    Defaults are the paper's model (50 channels, 4 blocks, 2 Swin blocks with 5 heads, window 8). ``img_size`` is
    the training patch the stored shifted-window masks were built for (64); ``None`` leaves them out.
    """

    def __init__(self, scale: int = 4, in_nc: int = 3, nf: int = 50, num_modules: int = 4, out_nc: int = 3,
                 depth: int = 2, num_heads: int = 5, window_size: int = 8, mlp_ratio: float = 2.0,
                 img_size: int | None = 64) -> None:
        super().__init__()
        if nf % num_heads:
            raise ConfigError(f"nf {nf} is not divisible by num_heads {num_heads}")
        if img_size is not None and (img_size <= window_size or img_size % window_size):
            raise ConfigError(f"img_size {img_size} must be a multiple of window_size {window_size} larger than it")
        self.scale, self.num_modules = scale, num_modules
        self.color_space = "rgb" if in_nc == 3 else "y"
        self.min_size = ESA.min_size
        self.fea_conv = conv(in_nc, nf, 3)
        for i in range(1, num_modules + 1):
            setattr(self, f"B{i}", HBCT(nf, SwinLayer(nf, depth, num_heads, window_size, mlp_ratio, img_size)))
        self.c = nn.Sequential(conv(nf * num_modules, nf, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv(nf, nf, 3)
        self.upsampler = pixelshuffle_block(nf, out_nc, scale)

    def _forward(self, x: Tensor) -> Tensor:
        fea = self.fea_conv(x)
        outs, out = [], fea
        for i in range(1, self.num_modules + 1):
            out = getattr(self, f"B{i}")(out)
            outs.append(out)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_HNCT_PUBLISHED = {
    2: {"Set5": (38.08, 0.9608), "Set14": (33.65, 0.9182), "B100": (32.22, 0.9001), "Urban100": (32.22, 0.9294),
        "Manga109": (38.87, 0.9774)},
    3: {"Set5": (34.47, 0.9275), "Set14": (30.44, 0.8439), "B100": (29.15, 0.8067), "Urban100": (28.28, 0.8557),
        "Manga109": (33.81, 0.9459)},
    4: {"Set5": (32.31, 0.8957), "Set14": (28.71, 0.7834), "B100": (27.63, 0.7381), "Urban100": (26.20, 0.7896),
        "Manga109": (30.70, 0.9112)},
}
register_variant("hnct", "hnct", {}, description="HNCT (50 channels, 4 HBCTs, 2 Swin blocks, window 8)"
                 " [published: HNCT README]",
                 paper_params={2: 356_000, 3: 363_000, 4: 372_000},
                 paper_psnr=_HNCT_PUBLISHED)
