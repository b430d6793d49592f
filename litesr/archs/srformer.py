"""SRFormer: permuted self-attention (Zhou et al., ICCV 2023).

SwinIR's layout (``conv_first``, ``layers.i.residual_group.blocks.j``, ``layers.i.conv``, ``conv_after_body``, the
same four reconstruction heads) with two block changes: the attention (``attn.q``, ``attn.kv``) lets ws x ws queries
attend to keys/values whose channels were halved and whose 2x2 neighbourhoods were folded into channels (a
(ws/2)^2-token window: bias table ``(ws - 1)^2`` and ``aligned_relative_position_index``), and the MLP is a ConvFFN
(``mlp.dwconv.depthwise_conv``: a 5x5 depth-wise conv + GELU added after fc1). Names follow the official code
(HVision-NKU/SRFormer, ``basicsr/archs/srformer_arch.py``); spandrel reads it through spandrel-extra-arches.

Size rule: any size; ``forward`` reflect-pads to the window (16 for the released models) and crops, as the official
code does, and ``pad_multiple`` declares it. Shifted blocks store an ``attn_mask`` (nW, ws^2, (ws/2)^2) for the
training patch; a model whose patch is not larger than the window has no shifts (the official rule). Input [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .blocks import (
    DerivedBuffers,
    DropPath,
    count_indexed,
    drop_path_rates,
    relative_position_index,
    window_partition,
)
from .swinir import RSTB, SwinIR, SwinTransformerBlock, detect_swin_tail, image_to_tokens, tokens_to_image


def permuted_mask(h: int, w: int, window_size: int, shift: int, device: torch.device | str | None = None) -> Tensor:
    """(nW, ws^2, (ws/2)^2) additive mask between a window's tokens and its folded key/value tokens."""
    def ids(hh: int, ww: int, size: int, s: int) -> Tensor:
        def region(n: int) -> Tensor:
            pos = torch.arange(n, device=device)
            return (pos >= n - size).long() + (pos >= n - s).long()

        grid = (region(hh)[:, None] * 3 + region(ww)[None, :]).float()
        return window_partition(grid[None, :, :, None], size).reshape(-1, size * size)

    half = window_size // 2
    diff = ids(h, w, window_size, shift).unsqueeze(2) - ids(h // 2, w // 2, half, shift // 2).unsqueeze(1)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


def aligned_position_index(window_size: int) -> Tensor:
    """(ws^2, (ws/2)^2): each query of the full window indexes the bias of its 2x2 cell against the folded tokens."""
    half = window_size // 2
    index = relative_position_index(half)  # p^2, p^2
    return index.reshape(half, half, 1, 1, half * half).repeat(1, 1, 2, 2, 1).permute(0, 2, 1, 3, 4) \
        .reshape(4 * half * half, half * half)


class PSA(DerivedBuffers):
    derived_buffers = ("aligned_relative_position_index",)

    def __init__(self, dim: int, window_size: int, num_heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()
        self.window_size, self.half, self.num_heads = window_size, window_size // 2, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * self.half - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("aligned_relative_position_index", aligned_position_index(window_size))
        self.kv = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b_, n, c = x.shape
        p, heads = self.half, self.num_heads
        kv = self.kv(x).reshape(b_, p, 2, p, 2, 2, c // 4).permute(0, 1, 3, 5, 2, 4, 6)
        kv = kv.reshape(b_, n // 4, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        q = self.q(x).reshape(b_, n, heads, c // heads).transpose(1, 2) * self.scale
        attn = q @ kv[0].transpose(-2, -1)
        bias = self.relative_position_bias_table[self.aligned_relative_position_index.view(-1)].view(n, n // 4, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b_ // nw, nw, heads, n, n // 4) + mask.to(attn.dtype).unsqueeze(1)).view(-1, heads, n,
                                                                                                        n // 4)
        out = (attn.softmax(dim=-1) @ kv[1]).transpose(1, 2).reshape(b_, n, c)
        return self.proj(out)


class ConvFFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.dwconv = nn.Module()
        self.dwconv.depthwise_conv = nn.Sequential(nn.Conv2d(hidden, hidden, 5, 1, 2, groups=hidden), nn.GELU())
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = self.act(self.fc1(x))
        x = x + image_to_tokens(self.dwconv.depthwise_conv(tokens_to_image(x, h, w)))
        return self.fc2(x)


class PSABlock(SwinTransformerBlock):
    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, *, mlp_ratio: float,
                 qkv_bias: bool, drop_path: float, img_size: int) -> None:
        resolution = math.ceil(img_size / window_size) * window_size
        shift_size = shift_size if resolution > window_size else 0
        super().__init__(dim, num_heads, window_size, shift_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         drop_path=drop_path)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))
        if shift_size:
            self.register_buffer("attn_mask", permuted_mask(resolution, resolution, window_size, shift_size))

    def make_attention(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool) -> nn.Module:
        return PSA(dim, window_size, num_heads, qkv_bias=qkv_bias)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        x = x + self.drop_path(self.window_attention(self.norm1(x), h, w, mask))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


def _detect(sd: StateDict) -> dict[str, Any] | None:
    b0 = "layers.0.residual_group.blocks.0."
    if b0 + "attn.aligned_relative_position_index" not in sd or "conv_first.weight" not in sd:
        return None
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    n_layers = count_indexed(sd, r"layers\.(\d+)\.residual_group\.blocks\.0\.norm1\.weight")
    depths = tuple(count_indexed(sd, rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.norm1\.weight")
                   for i in range(n_layers))
    heads = tuple(sd[f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"].shape[1]
                  for i in range(n_layers))
    window_size = math.isqrt(sd[b0 + "attn.relative_position_bias_table"].shape[0]) + 1
    mask = sd.get("layers.0.residual_group.blocks.1.attn_mask")
    upsampler, scale = detect_swin_tail(sd, in_chans)
    return {
        "scale": scale, "in_chans": int(in_chans), "embed_dim": int(embed_dim), "depths": depths, "num_heads": heads,
        "window_size": window_size, "mlp_ratio": sd[b0 + "mlp.fc1.weight"].shape[0] / embed_dim,
        "qkv_bias": b0 + "attn.q.bias" in sd, "patch_norm": "patch_embed.norm.weight" in sd,
        "upsampler": upsampler, "resi_connection": "3conv" if "conv_after_body.0.weight" in sd else "1conv",
        # no stored mask: a patch no larger than the window (no shifts), as spandrel reads it
        "img_size": window_size if mask is None else _patch_size(math.isqrt(mask.shape[0]) * window_size, window_size),
    }


# The stored mask gives the patch rounded up to the window (64 -> 66 at window 22); the usual patch sizes that round
# to it are reported first, in spandrel's order, so both read the same img_size.
_NICE_PATCHES = (512, 256, 128, 96, 64, 48, 32, 24, 16)


def _patch_size(resolution: int, window_size: int) -> int:
    return next((n for n in _NICE_PATCHES if math.ceil(n / window_size) * window_size == resolution), resolution)


@register_arch(
    "srformer", scales=(2, 3, 4, 8, 1), paper="Zhou et al., ICCV 2023 (SRFormer)", detect=_detect,
    tiny={"embed_dim": 12, "depths": (2,), "num_heads": (2,), "window_size": 4, "img_size": 16},
)
class SRFormer(SwinIR):
    """SRFormer: SwinIR with permuted self-attention and ConvFFN. Defaults are SRFormer (classical, x2)."""

    def __init__(self, scale: int = 2, in_chans: int = 3, embed_dim: int = 180, depths: Sequence[int] = (6,) * 6,
                 num_heads: int | Sequence[int] = (6,) * 6, window_size: int = 22, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, patch_norm: bool = True, drop_path_rate: float = 0.1, img_range: float = 1.0,
                 upsampler: str = "pixelshuffle", resi_connection: str = "1conv", img_size: int = 64) -> None:
        if window_size % 2:
            raise ConfigError(f"window_size must be even (the keys fold 2x2 cells), not {window_size}")
        super().__init__(scale, in_chans, embed_dim, depths, num_heads, window_size, mlp_ratio, qkv_bias, patch_norm,
                         drop_path_rate, img_range, upsampler, resi_connection, img_size)
        self.pad_multiple = window_size

    def check_img_size(self, img_size: int | None, window_size: int) -> None:
        if img_size is None or img_size < 1:
            raise ConfigError(f"img_size must be a positive training patch size, not {img_size}")

    def make_layers(self, dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window_size: int,
                    mlp_ratio: float, qkv_bias: bool, drop_path_rate: float, resi_connection: str,
                    img_size: int | None) -> nn.ModuleList:
        rates = drop_path_rates(drop_path_rate, depths)
        return nn.ModuleList(
            RSTB(dim, [
                PSABlock(dim, heads[i], window_size, 0 if j % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio,
                         qkv_bias=qkv_bias, drop_path=rates[i][j], img_size=int(img_size or window_size))
                for j in range(depth)
            ], resi_connection)
            for i, depth in enumerate(depths)
        )

    def shift_mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        if not any(block.shift_size for layer in self.layers for block in layer.residual_group.blocks):
            return None
        return permuted_mask(h, w, self.window_size, self.window_size // 2, device=device)


register_variant("srformer_m", "srformer", {}, description="SRFormer (classical SR: embed 180, 6x6 blocks, window 22)")
register_variant("srformer_light", "srformer",
                 {"embed_dim": 60, "depths": (6,) * 4, "num_heads": (6,) * 4, "window_size": 16,
                  "upsampler": "pixelshuffledirect"},
                 paper_params={2: 853_000, 3: 861_000, 4: 873_000},
                 paper_psnr={2: {"Set5": (38.23, 0.9613), "Set14": (33.94, 0.9209), "B100": (32.36, 0.9019),
                                 "Urban100": (32.91, 0.9353), "Manga109": (39.28, 0.9785)},
                             3: {"Set5": (34.67, 0.9296), "Set14": (30.57, 0.8469), "B100": (29.26, 0.8099),
                                 "Urban100": (28.81, 0.8655), "Manga109": (34.19, 0.9489)},
                             4: {"Set5": (32.51, 0.8988), "Set14": (28.82, 0.7872), "B100": (27.73, 0.7422),
                                 "Urban100": (26.67, 0.8032), "Manga109": (31.17, 0.9165)}},
                 paper_macs={2: 236.0, 3: 105.0, 4: 63.0},
                 description="SRFormer-light (embed 60, 4x6 blocks, window 16, pixelshuffledirect)"
                 " [published: SSIU table]")
