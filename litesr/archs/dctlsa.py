"""DCTLSA: Densely connected Transformer with linear self-attention for lightweight image super-resolution
(Zeng et al., IEEE TIM 2023; zengkun301/DCTLSA), as spandrel 0.4.2 reads it.

A conv, six LSAB modules densely connected (the input of module k+1 is a 1x1 conv + LeakyReLU(0.05) of the
concatenation of all previous outputs, ``c1``..``c5``; ``c`` fuses the six outputs), a conv with a long skip, and a
PixelShuffle upsampler. An LSAB is two SwinT units; each is a patch embedding with LayerNorm and two window blocks
(window 16, the second shifted by 8, no attention mask) whose attention is linear (softmax of the keys over the
tokens, ``q (k^T v)``) and runs on features enriched by a local module (BN, 1x1, depthwise 3x3, BN, 1x1, plus input);
each block adds an MLP (ratio 2). BN makes the output depend on ``train()``/``eval()``.

State-dict names follow that code: ``fea_conv``, ``B{1..6}.body.{0,1}.transformer_body.0.{patch_embed.norm,
blocks.{0,1}.{attn.qkv,attn.proj,attn.local.*,mlp.fc1,mlp.fc2}}``, ``c``, ``c1``..``c5`` (``.0``), ``LR_conv``,
``upsampler.0``. The number of heads is not stored (5 in the paper and spandrel). Input and output are RGB in
[0, 1] (as spandrel feeds it). Each SwinT reflect-pads to a multiple of 16 and crops, so any size and tile works;
inputs under 9 pixels fall back to edge padding where reflection cannot reach.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import Mlp, conv, pad_to_multiple, pixelshuffle_block, window_partition, window_reverse

WINDOW = 16  # fixed in the official code
N_MODULES = 6  # B1..B6 and c1..c5 are named in the official code


class LocalModule(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.add_module("pointwise_prenorm_0", nn.BatchNorm2d(channels))
        self.add_module("pointwise_conv_0", nn.Conv2d(channels, channels, 1, bias=False))
        self.add_module("depthwise_conv", nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False))
        self.add_module("pointwise_prenorm_1", nn.BatchNorm2d(channels))
        self.add_module("pointwise_conv_1", nn.Conv2d(channels, channels, 1, bias=False))


class LinearWindowAttention(nn.Module):
    """Local module on the image, then per window linear attention ``q * scale @ (softmax_N(k)^T v)``, plus local."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.local = LocalModule(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        image = x.permute(0, 3, 1, 2).contiguous()
        local = (self.local(image) + image).permute(0, 2, 3, 1).contiguous()
        qkv = window_partition(self.qkv(local), WINDOW)
        b_, c3 = qkv.shape[0], qkv.shape[-1]
        n, c = WINDOW * WINDOW, c3 // 3
        qkv = qkv.reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1].softmax(dim=-2), qkv[2]
        out = ((q * self.scale) @ (k.transpose(-2, -1) @ v)).transpose(1, 2).reshape(b_, n, c)
        out = self.proj(out).view(-1, WINDOW, WINDOW, c)
        return window_reverse(out, WINDOW, h, w) + local


class LinearSwinBlock(nn.Module):
    """Cyclic shift, linear window attention (which carries its own residual), shift back, ``x + mlp(x)``."""

    def __init__(self, dim: int, num_heads: int, shift: int) -> None:
        super().__init__()
        self.shift = shift
        self.attn = LinearWindowAttention(dim, num_heads)
        self.mlp = Mlp(dim, dim * 2)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        x = self.attn(x, h, w)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x.reshape(b, h * w, c)
        return x + self.mlp(x)


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(LinearSwinBlock(dim, num_heads, 0 if i % 2 == 0 else WINDOW // 2) for i in (0, 1))
        self.patch_embed = PatchEmbed(dim)

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = pad_to_multiple(x, WINDOW)
        hp, wp = x.shape[-2:]
        tokens = self.patch_embed(x)
        for block in self.blocks:
            tokens = block(tokens, hp, wp)
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, hp, wp)[..., :h, :w]


class SwinT(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.transformer_body = nn.Sequential(BasicLayer(dim, num_heads))

    def forward(self, x: Tensor) -> Tensor:
        return self.transformer_body(x)


class LSAB(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.body = nn.Sequential(SwinT(dim, num_heads), SwinT(dim, num_heads))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def _fuse(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(conv(in_ch, out_ch, 1), nn.LeakyReLU(0.05, inplace=True))


def _detect(sd: StateDict) -> dict[str, Any] | None:
    local = "B1.body.0.transformer_body.0.blocks.0.attn.local.pointwise_conv_0.weight"
    if "fea_conv.weight" not in sd or local not in sd:
        return None
    nf, in_nc = sd["fea_conv.weight"].shape[:2]
    total = sd["upsampler.0.weight"].shape[0]
    scale = next((s for s in (1, 2, 3, 4, 8) if total == in_nc * s * s), None)
    if scale is None:
        return None
    return {"scale": scale, "in_nc": int(in_nc), "nf": int(nf)}


@register_arch("dctlsa", scales=(4, 2, 3, 1), detect=_detect, paper="Zeng et al., IEEE TIM 2023 (DCTLSA)",
               tiny={"nf": 10, "num_head": 2})
class DCTLSA(SRModel):
    """DCTLSA: six densely connected linear-attention Swin modules (paper: 55 channels, 5 heads)."""

    # spandrel 0.4.2 declares DCTLSA not fp16-safe (untested there); litesr follows it.
    safe_precisions = ("fp32", "bf16")

    def __init__(self, scale: int = 4, in_nc: int = 3, nf: int = 55, num_head: int = 5) -> None:
        super().__init__()
        self.scale = scale
        self.color_space = "rgb" if in_nc == 3 else "y"
        self.fea_conv = conv(in_nc, nf, 3)
        for i in range(1, N_MODULES + 1):
            setattr(self, f"B{i}", LSAB(nf, num_head))
        self.c = _fuse(nf * N_MODULES, nf)
        for i in range(1, N_MODULES):
            setattr(self, f"c{i}", _fuse(nf * (i + 1), nf))
        self.LR_conv = conv(nf, nf, 3)
        self.upsampler = pixelshuffle_block(nf, in_nc, scale)

    def forward(self, x: Tensor) -> Tensor:
        fea = self.fea_conv(x)
        dense, feed, outs = fea, fea, []
        for i in range(1, N_MODULES + 1):
            out = getattr(self, f"B{i}")(feed)
            outs.append(out)
            if i < N_MODULES:
                dense = torch.cat([dense, out], dim=1)
                feed = getattr(self, f"c{i}")(dense)
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea)


register_variant("dctlsa", "dctlsa", {}, description="DCTLSA (55 channels, 6 modules, 5 heads)")
