"""DAT: Dual Aggregation Transformer (Chen et al., ICCV 2023).

Blocks alternate spatial attention (``attn.attns.{0,1}``: half the channels in H_sp x W_sp rectangles, the other half
in W_sp x H_sp ones, with a dynamic position bias MLP ``pos``) and channel attention (``attn.temperature``); both mix
in a depth-wise conv branch through ``channel_interaction`` / ``spatial_interaction`` (BatchNorm layers, so the state
dict carries running statistics), and the FFN is the spatial-gate SGFN (``ffn.sg``). Some spatial blocks shift their
rectangles by half (every fourth from block 2 in even groups, from block 0 in odd ones) and store ``attn_mask_0/1``
for the training patch (``img_size``). Names follow the official code (zhengchen1999/DAT,
``basicsr/archs/dat_arch.py``).

Size rule: any input size (the attention zero-pads to a multiple of the larger split size internally, as the official
code does); ``pad_multiple`` stays 1 because padding the image first would change the result at the borders.
Input range [0, 1]. Index tables, bias coordinates and masks are derived buffers: loading keeps the recomputed values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import DerivedBuffers, DropPath, count_indexed, drop_path_rates, upsample_scale
from .swinir import (
    RGB_MEAN,
    _as_tuple,
    build_swin_tail,
    image_to_tokens,
    residual_conv,
    run_swin_tail,
    tokens_to_image,
    windowed_attention,
)


def img2windows(img: Tensor, hs: int, ws: int) -> Tensor:
    """(B, C, H, W) -> (B * nW, hs * ws, C) rectangles in row-major order."""
    b, c, h, w = img.shape
    return img.view(b, c, h // hs, hs, w // ws, ws).permute(0, 2, 4, 3, 5, 1).reshape(-1, hs * ws, c)


def windows2img(windows: Tensor, hs: int, ws: int, h: int, w: int) -> Tensor:
    """(B * nW, hs * ws, C) -> (B, H, W, C)."""
    b = windows.shape[0] // ((h // hs) * (w // ws))
    return windows.view(b, h // hs, w // ws, hs, ws, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def rect_shift_mask(h: int, w: int, window: tuple[int, int], shift: tuple[int, int],
                    device: torch.device | str | None = None) -> Tensor:
    """Additive mask (nW, hs*ws, hs*ws) of shifted rectangular windows (-100 between tokens of different regions)."""
    def region(n: int, size: int, s: int) -> Tensor:
        pos = torch.arange(n, device=device)
        return (pos >= n - size).long() + (pos >= n - s).long()

    ids = (region(h, window[0], shift[0])[:, None] * 3 + region(w, window[1], shift[1])[None, :]).float()
    windows = img2windows(ids[None, None], *window).squeeze(-1)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class DynamicPosBias(nn.Module):
    """An MLP from (dy, dx) offsets to per-head biases (``pos_proj``, ``pos1..3``); DAT uses the non-residual form."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.pos_dim = dim // 4
        self.pos_proj = nn.Linear(2, self.pos_dim)
        for i, out in ((1, self.pos_dim), (2, self.pos_dim), (3, num_heads)):
            setattr(self, f"pos{i}", nn.Sequential(nn.LayerNorm(self.pos_dim), nn.ReLU(inplace=True),
                                                   nn.Linear(self.pos_dim, out)))

    def forward(self, biases: Tensor) -> Tensor:
        return self.pos3(self.pos2(self.pos1(self.pos_proj(biases))))


class SpatialAttention(DerivedBuffers):
    """Attention inside hs x ws rectangles (branch 0: split_size, branch 1: transposed) with a dynamic bias."""

    derived_buffers = ("rpe_biases", "relative_position_index")

    def __init__(self, dim: int, idx: int, split_size: tuple[int, int], num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.hs, self.ws = split_size if idx == 0 else split_size[::-1]
        hs, ws = self.hs, self.ws
        self.pos = DynamicPosBias(dim // 4, num_heads)
        offsets = torch.stack(torch.meshgrid(torch.arange(1 - hs, hs), torch.arange(1 - ws, ws), indexing="ij"))
        self.register_buffer("rpe_biases", offsets.flatten(1).transpose(0, 1).float())
        coords = torch.stack(torch.meshgrid(torch.arange(hs), torch.arange(ws), indexing="ij")).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :]
        self.register_buffer("relative_position_index", (rel[0] + hs - 1) * (2 * ws - 1) + rel[1] + ws - 1)

    def forward(self, qkv: Tensor, h: int, w: int, mask: Tensor | None = None) -> Tensor:
        """qkv: (3, B, H*W, C) of a padded map; returns (B, H, W, C)."""
        c, heads, n = qkv.shape[-1], self.num_heads, self.hs * self.ws
        q, k, v = (img2windows(tokens_to_image(t, h, w), self.hs, self.ws).view(-1, n, heads, c // heads)
                   .transpose(1, 2) for t in qkv)
        bias = self.pos(self.rpe_biases)[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        return windows2img(windowed_attention(q, k, v, bias, mask, self.scale), self.hs, self.ws, h, w)


def interactions(dim: int) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    """The conv branch and the two gates mixing it with the attention (``dwconv``, ``channel_/spatial_interaction``)."""
    dwconv = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), nn.BatchNorm2d(dim), nn.GELU())
    channel = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, dim // 8, 1), nn.BatchNorm2d(dim // 8), nn.GELU(),
                            nn.Conv2d(dim // 8, dim, 1))
    spatial = nn.Sequential(nn.Conv2d(dim, dim // 16, 1), nn.BatchNorm2d(dim // 16), nn.GELU(),
                            nn.Conv2d(dim // 16, 1, 1))
    return dwconv, channel, spatial


def is_shifted(group: int, block: int) -> bool:
    """Which spatial blocks shift (the official rule, by group and block index)."""
    return (group % 2 == 0 and block > 0 and (block - 2) % 4 == 0) or (group % 2 != 0 and block % 4 == 0)


class RectangleWindowAttention(DerivedBuffers):
    """Half the channels attend in split_size rectangles, the other half in transposed ones (``attns.0/1``); some
    blocks shift them by half. DAT's spatial attention and RGT's L-SA build on it (they differ in the conv branch)."""

    derived_buffers = ("attn_mask_0", "attn_mask_1")

    def __init__(self, dim: int, num_heads: int, split_size: tuple[int, int], *, qkv_bias: bool, shifted: bool,
                 img_size: int) -> None:
        super().__init__()
        self.split_size, self.shift_size, self.shifted = split_size, (split_size[0] // 2, split_size[1] // 2), shifted
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attns = nn.ModuleList(SpatialAttention(dim // 2, i, split_size, num_heads // 2) for i in range(2))
        if shifted:  # official layout only: masks for the training patch; forward computes its own
            for i, mask in enumerate(self.masks(img_size, img_size)):
                self.register_buffer(f"attn_mask_{i}", mask)

    def masks(self, h: int, w: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        (s0, s1), (t0, t1) = self.split_size, self.shift_size
        return rect_shift_mask(h, w, (s0, s1), (t0, t1), device), rect_shift_mask(h, w, (s1, s0), (t1, t0), device)

    def attend(self, x: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
        """(attended tokens (B, N, C), v as an image (B, C, H, W)) of the normalised tokens ``x``."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, -1, 3, c).permute(2, 0, 1, 3)  # 3, B, N, C
        v = tokens_to_image(qkv[2], h, w)
        size = max(self.split_size)
        ph, pw = (-h) % size, (-w) % size
        hp, wp = h + ph, w + pw
        qkv = F.pad(qkv.reshape(3 * b, h, w, c).permute(0, 3, 1, 2), (0, pw, 0, ph))
        qkv = qkv.reshape(3, b, c, -1).transpose(-2, -1)  # 3, B, Hp*Wp, C
        half = c // 2
        if self.shifted:
            (t0, t1), grid = self.shift_size, qkv.view(3, b, hp, wp, c)
            mask0, mask1 = (m.to(x.dtype) for m in self.masks(hp, wp, x.device))
            q0 = torch.roll(grid[..., :half], shifts=(-t0, -t1), dims=(2, 3)).reshape(3, b, -1, half)
            q1 = torch.roll(grid[..., half:], shifts=(-t1, -t0), dims=(2, 3)).reshape(3, b, -1, half)
            x1 = torch.roll(self.attns[0](q0, hp, wp, mask0), shifts=(t0, t1), dims=(1, 2))
            x2 = torch.roll(self.attns[1](q1, hp, wp, mask1), shifts=(t1, t0), dims=(1, 2))
        else:
            x1 = self.attns[0](qkv[..., :half], hp, wp)
            x2 = self.attns[1](qkv[..., half:], hp, wp)
        attended = torch.cat([x1[:, :h, :w].reshape(b, n, half), x2[:, :h, :w].reshape(b, n, half)], dim=2)
        return attended, v


class AdaptiveSpatialAttention(RectangleWindowAttention):
    def __init__(self, dim: int, num_heads: int, split_size: tuple[int, int], *, qkv_bias: bool, shifted: bool,
                 img_size: int) -> None:
        super().__init__(dim, num_heads, split_size, qkv_bias=qkv_bias, shifted=shifted, img_size=img_size)
        self.dwconv, self.channel_interaction, self.spatial_interaction = interactions(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        attended, v = self.attend(x, h, w)
        conv_x = self.dwconv(v)
        channel_map = self.channel_interaction(conv_x).permute(0, 2, 3, 1).reshape(b, 1, c)
        spatial_map = self.spatial_interaction(tokens_to_image(attended, h, w))
        attended = attended * torch.sigmoid(channel_map)
        conv_x = image_to_tokens(torch.sigmoid(spatial_map) * conv_x)
        return self.proj(attended + conv_x)


class AdaptiveChannelAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.dwconv, self.channel_interaction, self.spatial_interaction = interactions(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 4, 1)
        q, k, v = F.normalize(qkv[0], dim=-1), F.normalize(qkv[1], dim=-1), qkv[2]  # B, heads, d, N
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        attended = (attn @ v).permute(0, 3, 1, 2).reshape(b, n, c)
        conv_x = self.dwconv(v.reshape(b, c, h, w))
        channel_map = self.channel_interaction(tokens_to_image(attended, h, w))
        spatial_map = self.spatial_interaction(conv_x).permute(0, 2, 3, 1).reshape(b, n, 1)
        attended = attended * torch.sigmoid(spatial_map)
        return self.proj(attended + image_to_tokens(conv_x * torch.sigmoid(channel_map)))


class SGFN(nn.Module):
    """Spatial-gate FFN: fc1, GELU, half the channels gate the other half after LayerNorm + depth-wise conv, fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.sg = nn.Module()
        self.sg.norm = nn.LayerNorm(hidden // 2)
        self.sg.conv = nn.Conv2d(hidden // 2, hidden // 2, 3, 1, 1, groups=hidden // 2)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x1, x2 = self.act(self.fc1(x)).chunk(2, dim=-1)
        return self.fc2(x1 * image_to_tokens(self.sg.conv(tokens_to_image(self.sg.norm(x2), h, w))))


class DATB(nn.Module):
    def __init__(self, dim: int, num_heads: int, split_size: tuple[int, int], *, expansion_factor: float,
                 qkv_bias: bool, drop_path: float, group: int, block: int, img_size: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if block % 2 == 0:
            self.attn: nn.Module = AdaptiveSpatialAttention(dim, num_heads, split_size, qkv_bias=qkv_bias,
                                                            shifted=is_shifted(group, block), img_size=img_size)
        else:
            self.attn = AdaptiveChannelAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.ffn = SGFN(dim, int(dim * expansion_factor))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.ffn(self.norm2(x), h, w))


class ResidualGroup(nn.Module):
    def __init__(self, blocks: list[nn.Module], dim: int, resi_connection: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        y = x
        for block in self.blocks:
            y = block(y, h, w)
        return x + image_to_tokens(self.conv(tokens_to_image(y, h, w)))


def _split_size(sd: StateDict, key: str, index_key: str | None = None) -> tuple[int, int]:
    """(H_sp, W_sp) of branch 0: from the stored offsets when they hold values, else from the shapes (the product
    and the sum of the sides are known; the smaller side is taken as H_sp, as in every released model).
    ``index_key``: the stored index table beside the offsets (default: DAT's name for it)."""
    biases = sd[key]
    if biases.device.type != "meta":
        top = biases[-1] + 1
        return int(top[0]), int(top[1])
    prod = sd[index_key or key.replace("rpe_biases", "relative_position_index")].shape[0]
    total = (4 * prod + 1 - biases.shape[0]) // 2
    small = (total - math.isqrt(total * total - 4 * prod)) // 2
    return small, prod // small


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "before_RG.1.weight" not in sd or "layers.0.blocks.0.attn.attns.0.rpe_biases" not in sd:
        return None
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    n_layers = count_indexed(sd, r"layers\.(\d+)\.blocks\.0\.norm1\.weight")
    depth = tuple(count_indexed(sd, rf"layers\.{i}\.blocks\.(\d+)\.norm1\.weight") for i in range(n_layers))
    heads = tuple(sd[f"layers.{i}.blocks.1.attn.temperature"].shape[0] if depth[i] >= 2
                  else sd[f"layers.{i}.blocks.0.attn.attns.0.pos.pos3.2.weight"].shape[0] * 2
                  for i in range(n_layers))
    mask = next((v for k, v in sd.items() if re.match(r"layers\.\d+\.blocks\.\d+\.attn\.attn_mask_0$", k)), None)
    if "conv_last.weight" in sd:
        upsampler, scale = "pixelshuffle", upsample_scale(sd, "upsample")
    else:
        upsampler, scale = "pixelshuffledirect", math.isqrt(sd["upsample.0.weight"].shape[0] // in_chans)
    return {
        "scale": scale, "in_chans": int(in_chans), "embed_dim": int(embed_dim),
        "split_size": _split_size(sd, "layers.0.blocks.0.attn.attns.0.rpe_biases"), "depth": depth,
        "num_heads": heads, "expansion_factor": float(sd["layers.0.blocks.0.ffn.fc1.weight"].shape[0] / embed_dim),
        "qkv_bias": "layers.0.blocks.0.attn.qkv.bias" in sd,
        "img_size": math.isqrt(mask.shape[0] * mask.shape[1]) if mask is not None else 64,
        "resi_connection": "1conv" if "conv_after_body.weight" in sd else "3conv", "upsampler": upsampler,
    }


@register_arch(
    "dat", scales=(2, 3, 4, 8, 1), paper="Chen et al., ICCV 2023 (DAT)", detect=_detect,
    tiny={"embed_dim": 16, "split_size": (2, 4), "depth": (2,), "num_heads": (2,), "expansion_factor": 2.0,
          "img_size": 16},
)
class DAT(SRModel):
    """DAT: residual groups of alternating spatial-window / channel attention blocks. Defaults are DAT (x2)."""

    def __init__(self, scale: int = 2, in_chans: int = 3, embed_dim: int = 180, split_size: Sequence[int] = (8, 32),
                 depth: Sequence[int] = (6,) * 6, num_heads: int | Sequence[int] = (6,) * 6,
                 expansion_factor: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.1,
                 img_size: int = 64, img_range: float = 1.0, resi_connection: str = "1conv",
                 upsampler: str = "pixelshuffle") -> None:
        super().__init__()
        depth = tuple(int(d) for d in depth)
        heads = _as_tuple(num_heads, len(depth), "num_heads")
        split = (int(split_size[0]), int(split_size[1]))
        if max(split) % min(split):
            raise ConfigError(f"split_size {split}: the larger side must be a multiple of the smaller")
        if upsampler not in ("pixelshuffle", "pixelshuffledirect"):
            raise ConfigError(f"upsampler must be 'pixelshuffle' or 'pixelshuffledirect', not {upsampler!r}")
        self.scale, self.img_range, self.upsampler = scale, img_range, upsampler
        self.color_space = "rgb" if in_chans == 3 else "y"
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.before_RG = nn.Sequential(nn.Identity(), nn.LayerNorm(embed_dim))  # official: Rearrange, LayerNorm
        rates = drop_path_rates(drop_path_rate, depth)
        self.layers = nn.ModuleList(
            ResidualGroup([
                DATB(embed_dim, heads[i], split, expansion_factor=expansion_factor, qkv_bias=qkv_bias,
                     drop_path=rates[i][j], group=i, block=j, img_size=img_size)
                for j in range(d)
            ], embed_dim, resi_connection)
            for i, d in enumerate(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        build_swin_tail(self, embed_dim, in_chans, scale, upsampler)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = self.conv_first((x - mean) * self.img_range)
        h, w = x.shape[-2:]
        tokens = self.before_RG(image_to_tokens(x))
        for layer in self.layers:
            tokens = layer(tokens, h, w)
        x = self.conv_after_body(tokens_to_image(self.norm(tokens), h, w)) + x
        x = run_swin_tail(self, x, x, self.scale)
        return x / self.img_range + mean


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


_BIG = {"embed_dim": 180, "depth": (6,) * 6, "num_heads": (6,) * 6}
register_variant("dat_s", "dat", {**_BIG, "split_size": (8, 16), "expansion_factor": 2.0},
                 paper_params={4: 11_210_000},
                 description="DAT-S (split 8x16, expansion 2), 11.21M; x4 Urban100 27.68/0.8300 (DAT README)")
register_variant("dat_m", "dat", _BIG, paper_params={4: 14_800_000},
                 description="DAT (split 8x32, expansion 4), 14.80M; x4 Urban100 27.87/0.8343 (DAT README)")
register_variant("dat_2", "dat", {**_BIG, "expansion_factor": 2.0}, paper_params={4: 11_210_000},
                 description="DAT-2 (split 8x32, expansion 2), 11.21M; x4 Urban100 27.86/0.8341 (DAT README)")
register_variant("dat_light", "dat", {"embed_dim": 60, "depth": (18,), "num_heads": (6,), "expansion_factor": 2.0,
                                      "resi_connection": "3conv", "upsampler": "pixelshuffledirect"},
                 paper_params={4: 573_000},
                 description="DAT-light (embed 60, one group of 18 blocks, 3conv, pixelshuffledirect), 573K; x4"
                 " Urban100 26.64/0.8033 (DAT README)")
