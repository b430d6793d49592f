"""FDAT: Fast Dual Aggregation Transformer (stinkybread, 2025), a community simplification of DAT that spandrel
loads (its presets fdat_tiny / light / medium / large / xl).

``conv_first`` (or ``conv_first.1`` behind a pixel-unshuffle, for x1/x2 models that run the x4 body), residual
groups ``groups.i`` of blocks that alternate spatial window attention (``attn.qkv``, ``attn.proj`` and a learned
(heads, ws^2, ws^2) ``attn.bias``, windows zero-padded at the bottom/right) and channel attention (``attn.temp``:
cosine channel-to-channel attention over all tokens), each beside a depth-wise conv branch (``conv.0``) and fused by
``inter`` (``sg``: a 1x1 spatial gate; ``cg``: a pooled channel gate), then a depth-wise-mixed FFN (``ffn.fc1``,
``ffn.smix``, ``ffn.fc2``, no biases). Each group ends in a bias-free conv; ``conv_after`` closes the body; the head is
neosr's ``UniUpsample`` version 3 (``upsampler.*`` with its ``upsampler.MetaUpsample`` record). Names follow that
code (spandrel ``architectures/FDAT``).

Size rule: any size (the window attention pads itself); unshuffled models need multiples of their fold, declared
by ``pad_multiple`` (``forward`` also reflect-pads, as the original does). Input range [0, 1], RGB (or one channel).

Tiling: the channel attention and the pooled channel gate see the whole input, so tiled output is close to, not
equal to, the whole-image output.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from ._upsample import UPSAMPLE_MODES_V3, UniUpsample
from .base import SRModel
from .blocks import DropPath, count_indexed, drop_path_rates, pad_to_multiple
from .swinir import image_to_tokens, tokens_to_image, windowed_attention

BLOCK_PATTERN = ("spatial", "channel")


class SpatialWindowAttention(nn.Module):
    """Window self-attention with a free (heads, N, N) bias per window position pair; pads to whole windows."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.ws, self.num_heads = window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.zeros(num_heads, window_size**2, window_size**2))
        nn.init.trunc_normal_(self.bias, std=0.02)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        ws = self.ws
        pad_b, pad_r = (-h) % ws, (-w) % ws
        x = x.view(b, h, w, c)
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))  # zero tokens after the norm, as the original
        hp, wp = h + pad_b, w + pad_r
        windows = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        q, k, v = self.qkv(windows).view(-1, ws * ws, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = self.proj(windowed_attention(q, k, v, self.bias, None, self.scale))
        out = out.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        return out[:, :h, :w].reshape(b, n, c)


class ChannelAttention(nn.Module):
    """Cosine channel-to-channel attention per head over all tokens, with a learned temperature ``temp``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temp = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k = F.normalize(q.transpose(-2, -1), dim=-1), F.normalize(k.transpose(-2, -1), dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temp).softmax(dim=-1)  # b, heads, d, d
        return self.proj((attn @ v.transpose(-2, -1)).permute(0, 3, 1, 2).reshape(b, n, c))


class Interaction(nn.Module):
    """Fuses attention and conv branches: the spatial gate ``sg`` (from the attention) scales the conv branch in
    channel blocks; the channel gate ``cg`` (pooled from the conv branch) scales the attention in spatial blocks."""

    def __init__(self, dim: int, reduction_ratio: int) -> None:
        super().__init__()
        self.sg = nn.Sequential(nn.Conv2d(dim, 1, 1, bias=False), nn.Sigmoid())
        self.cg = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim // reduction_ratio, 1, bias=False), nn.GELU(),
            nn.Conv2d(dim // reduction_ratio, dim, 1, bias=False), nn.Sigmoid())

    def forward(self, attn: Tensor, conv: Tensor, spatial_block: bool, h: int, w: int) -> Tensor:
        if spatial_block:
            return attn * self.cg(tokens_to_image(conv, h, w)).flatten(2).transpose(1, 2) + conv
        return attn + conv * self.sg(tokens_to_image(attn, h, w)).flatten(2).transpose(1, 2)


class FFN(nn.Module):
    """fc1, GELU, a depth-wise 3x3 ``smix`` on the image form, fc2 (no biases)."""

    def __init__(self, dim: int, expansion_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * expansion_ratio)
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=False)
        self.smix = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = self.act(self.fc1(x))
        return self.fc2(image_to_tokens(self.smix(tokens_to_image(x, h, w))))


class FDATBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, ffn_expansion_ratio: float,
                 aim_reduction_ratio: int, kind: str, drop_path: float) -> None:
        super().__init__()
        self.spatial = kind == "spatial"
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SpatialWindowAttention(dim, window_size, num_heads) if self.spatial \
            else ChannelAttention(dim, num_heads)
        self.conv = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim, bias=False), nn.GELU())
        self.inter = Interaction(dim, aim_reduction_ratio)
        self.dp = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.ffn = FFN(dim, ffn_expansion_ratio)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        y = self.n1(x)
        conv = image_to_tokens(self.conv(tokens_to_image(y, h, w)))
        x = x + self.dp(self.inter(self.attn(y, h, w), conv, self.spatial, h, w))
        return x + self.dp(self.ffn(self.n2(x), h, w))


class ResidualGroup(nn.Module):
    def __init__(self, blocks: list[FDATBlock], dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        tokens = image_to_tokens(x)
        for block in self.blocks:
            tokens = block(tokens, h, w)
        return self.conv(tokens_to_image(tokens, h, w)) + x


def _detect(sd: StateDict) -> dict[str, Any] | None:
    meta = sd.get("upsampler.MetaUpsample")
    if meta is None or "groups.0.blocks.0.inter.cg.1.weight" not in sd or "conv_after.weight" not in sd:
        return None
    version, index, meta_scale, _, out_ch, mid_dim, _ = (int(v) for v in meta.tolist())
    if version != 3 or index >= len(UPSAMPLE_MODES_V3):
        return None
    upsampler = UPSAMPLE_MODES_V3[index]
    embed_dim = int(sd["conv_after.weight"].shape[0])
    unshuffle = "conv_first.1.weight" in sd
    if unshuffle:
        scale = 4 // math.isqrt(sd["conv_first.1.weight"].shape[1] // out_ch)
        in_ch = out_ch
    else:
        scale = 1 if upsampler == "conv" else meta_scale
        in_ch = int(sd["conv_first.weight"].shape[1])
    bias = sd["groups.0.blocks.0.attn.bias"]
    return {
        "scale": scale, "num_in_ch": in_ch, "num_out_ch": out_ch, "embed_dim": embed_dim,
        "num_groups": count_indexed(sd, r"groups\.(\d+)\.conv\.weight$"),
        "depth_per_group": count_indexed(sd, r"groups\.0\.blocks\.(\d+)\.n1\.weight$") // len(BLOCK_PATTERN),
        "num_heads": int(bias.shape[0]), "window_size": math.isqrt(bias.shape[2]),
        "ffn_expansion_ratio": sd["groups.0.blocks.0.ffn.fc1.weight"].shape[0] / embed_dim,
        "aim_reduction_ratio": embed_dim // int(sd["groups.0.blocks.0.inter.cg.1.weight"].shape[0]),
        "mid_dim": mid_dim, "upsampler_type": upsampler, "unshuffle_mod": unshuffle,
    }


@register_arch("fdat", scales=(4, 2, 3, 1, 8), detect=_detect, paper="stinkybread 2025 (FDAT, community architecture)",
               tiny={"embed_dim": 16, "num_groups": 1, "depth_per_group": 1, "num_heads": 2, "window_size": 4,
                     "mid_dim": 16})
class FDAT(SRModel):
    """FDAT (defaults: fdat_medium, x4: embed 120, 4 groups of 3 spatial + 3 channel blocks, 4 heads, window 8,
    transpose+conv head)."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, embed_dim: int = 120,
                 num_groups: int = 4, depth_per_group: int = 3, num_heads: int = 4, window_size: int = 8,
                 ffn_expansion_ratio: float = 2.0, aim_reduction_ratio: int = 8, drop_path_rate: float = 0.1,
                 mid_dim: int = 64, upsampler_type: str = "transpose+conv", unshuffle_mod: bool = False) -> None:
        super().__init__()
        if num_in_ch != num_out_ch or num_in_ch not in (1, 3):
            raise ConfigError(f"FDAT: litesr runs RGB or one-channel models, not {num_in_ch} -> {num_out_ch} channels")
        if upsampler_type == "conv" and scale != 1:
            raise ConfigError(f"upsampler 'conv' does not upscale: scale must be 1, not {scale}")
        if embed_dim % num_heads:
            raise ConfigError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.scale = scale
        self.color_space = "rgb" if num_in_ch == 3 else "y"
        body_scale = scale
        if unshuffle_mod:
            if scale not in (1, 2):
                raise ConfigError(f"unshuffle_mod folds x1/x2 inputs for the x4 body, not x{scale}")
            fold = 4 // scale
            self.pad_multiple, body_scale = fold, 4
            self.conv_first = nn.Sequential(nn.PixelUnshuffle(fold), nn.Conv2d(num_in_ch * fold**2, embed_dim, 3, 1, 1))
        else:
            self.conv_first = nn.Conv2d(num_in_ch, embed_dim, 3, 1, 1)
        depth = depth_per_group * len(BLOCK_PATTERN)
        rates = drop_path_rates(drop_path_rate, [depth] * num_groups)
        self.groups = nn.Sequential(*(
            ResidualGroup([FDATBlock(embed_dim, num_heads, window_size, ffn_expansion_ratio, aim_reduction_ratio,
                                     BLOCK_PATTERN[j % len(BLOCK_PATTERN)], rates[i][j]) for j in range(depth)],
                          embed_dim)
            for i in range(num_groups)))
        self.conv_after = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1, bias=False)
        self.upsampler = UniUpsample(upsampler_type, body_scale, embed_dim, num_out_ch, mid_dim, 4, version=3)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x, _, _ = pad_to_multiple(x, self.pad_multiple)
        shallow = self.conv_first(x)
        out = self.upsampler(self.conv_after(self.groups(shallow)) + shallow)
        return out[..., : h * self.scale, : w * self.scale]


def _init_weights(m: nn.Module) -> None:
    """The original initialisation: truncated-normal (0.02) Linear and Conv weights, zero biases, unit LayerNorms."""
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


_PRESETS = {
    "fdat_tiny": ({"embed_dim": 96, "num_groups": 2, "depth_per_group": 2, "num_heads": 3,
                   "ffn_expansion_ratio": 1.5, "upsampler_type": "pixelshuffle"},
                  "embed 96, 2 groups x 2 block pairs, 3 heads, ffn 1.5, pixelshuffle"),
    "fdat_light": ({"embed_dim": 108, "num_groups": 3, "depth_per_group": 2, "upsampler_type": "pixelshuffle"},
                   "embed 108, 3 groups x 2 block pairs, 4 heads, pixelshuffle"),
    "fdat_medium": ({}, "embed 120, 4 groups x 3 block pairs, 4 heads, transpose+conv"),
    "fdat_large": ({"embed_dim": 180, "num_groups": 4, "depth_per_group": 4, "num_heads": 6},
                   "embed 180, 4 groups x 4 block pairs, 6 heads, transpose+conv"),
    "fdat_xl": ({"embed_dim": 180, "num_groups": 6, "depth_per_group": 6, "num_heads": 6},
                "embed 180, 6 groups x 6 block pairs, 6 heads, transpose+conv"),
}
# The presets' drop-path rates (tiny 0.05, light 0.08) only matter for training and are not in the weights: left at
# the default so that detection reads each preset back as itself.
for _name, (_config, _text) in _PRESETS.items():
    register_variant(_name, "fdat", _config, description=f"FDAT {_name[5:]} preset ({_text}), window 8")
