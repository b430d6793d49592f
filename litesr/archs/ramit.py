"""RAMiT: Reciprocal Attention Mixing Transformer for Lightweight Image Restoration (Choi, Lee, Yoon and Kim, CVPR
Workshops 2024; arXiv 2023). Official code: github.com/rami0205/RAMiT (``my_model/ramit.py``; state-dict names follow
it; the SR configurations of ``my_model/specs/lightweight_sr``).

A four-stage U-shaped encoder: stages 1-3 at H, H/2, H/4 (a 2x2 space-to-depth "Downsizing" between them), a
bottleneck that pixel-shuffles their outputs back to H, stage 4 at H. Each block (D-RAMiT) splits its heads between
window spatial self-attention (cosine attention, learned logit scale, relative position bias; odd blocks roll the
windows by half a window, without a mask) and channel self-attention over the whole map, each "helped" by the other
branch's output of the previous block (spatial values times the channel output, channel values times the spatial
output's channel mean). A MobileNet-style mixer (``mobivari``) merges the heads; post-norm LayerNorms. The
hierarchical attention mixer (HRAMi) gates stage 4 with all stages' attention maps. Tail: two mixers, conv,
PixelShuffle, 3x3 conv.

Input handling follows the official forward: zero-pad right/bottom to a multiple of 2^(stages - 2) x window (32),
normalise with the per-scale DIV2K mean/std, crop the output. ``exp_factor``/``expand_groups`` set every MobiVari2
mixer (the official code passes them only to the tail, the others using the same defaults 1.2/4 in every released
configuration).

Variants: ``ramit`` (RAMiT) and ``ramit_1`` (RAMiT-1: MobileNet-v1 mixers). MobiVari2 mixers need widths that
their 4 groups divide, so ``mv_ver=2`` needs dim + dim/4 + dim/16 divisible by 4 (dim 64 does). RAMiT-slimSR has
its own model file upstream (``ramit_slimsr.py``) and is not covered. The official repository ships RAMiT-1 weights
in ``pretrained/``; the RAMiT_X* files are in the repository's tree but not stored with the mirror read here.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import LayerNorm2d, count_indexed, relative_position_index

_MEAN = (0.4485, 0.4375, 0.4045)
_STD = {2: (0.2397, 0.2290, 0.2389), 3: (0.2373, 0.2265, 0.2367), 4: (0.2352, 0.2244, 0.2349)}
_MAX_LOGIT = math.log(1.0 / 0.01)


class ReshapeLayerNorm(nn.Module):
    """Channel LayerNorm (nn.LayerNorm over C, eps 1e-5) under the official name ``norm``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class MobiVari1(nn.Module):
    """MobileNet-v1-style mixer: depthwise 3x3 + residual, LeakyReLU, pointwise; residual when widths match."""

    def __init__(self, dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.out_dim = out_dim or dim
        self.residual = self.out_dim == dim
        self.dw_conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.pw_conv = nn.Conv2d(dim, self.out_dim, 1)
        self.act = nn.LeakyReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.pw_conv(self.act(self.dw_conv(x)) + x))
        return out + x if self.residual else out


class MobiVari2(nn.Module):
    """MobileNet-v2-style mixer: grouped 1x1 expansion, depthwise 3x3 + residual, pointwise."""

    def __init__(self, dim: int, out_dim: int | None = None, exp_factor: float = 1.2, expand_groups: int = 4) -> None:
        super().__init__()
        self.out_dim = out_dim or dim
        self.residual = self.out_dim == dim
        expand = int(dim * exp_factor)
        expand += expand_groups - expand % expand_groups  # sic: the official rounding adds a group even when divisible
        self.exp_conv = nn.Conv2d(dim, expand, 1, groups=expand_groups)
        self.dw_conv = nn.Conv2d(expand, expand, 3, 1, 1, groups=expand)
        self.pw_conv = nn.Conv2d(expand, self.out_dim, 1)
        self.act = nn.LeakyReLU()

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.act(self.exp_conv(x))
        out = self.pw_conv(self.act(self.dw_conv(x1) + x1))
        return out + x if self.residual else out


def _mixer(mv: tuple[int, float, int], dim: int, out_dim: int | None = None) -> nn.Module:
    version, exp_factor, groups = mv
    return MobiVari1(dim, out_dim) if version == 1 else MobiVari2(dim, out_dim, exp_factor, groups)


class QKVProjection(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)

    def forward(self, x: Tensor, heads: int) -> Tensor:
        b, c, h, w = x.shape
        return self.qkv(x).view(b, heads, 3 * c // heads, h, w)  # head-major: each head's [q | k | v]


def _cosine_logits(q: Tensor, k: Tensor, logit_scale: Tensor) -> Tensor:
    attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    return attn * torch.clamp(logit_scale, max=_MAX_LOGIT).exp()


class SpatialSelfAttention(nn.Module):
    """Cosine window attention with relative position bias; values scaled by the previous channel-branch output."""

    def __init__(self, head_dim: int, heads: int, window_size: int, shift: int) -> None:
        super().__init__()
        self.window_size, self.shift = window_size, shift
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.proj = nn.Conv2d(head_dim * heads, head_dim * heads, 1)

    def _windows(self, x: Tensor) -> Tensor:
        """(B, L, C, H, W) -> (B * nW, L, ws * ws, C)."""
        b, l, c, h, w = x.shape
        s = self.window_size
        x = x.view(b, l, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 4, 6, 2)
        return x.reshape(-1, l, s * s, c)

    def forward(self, qkv: Tensor, helper: Tensor | None) -> Tensor:
        b, heads, c3, h, w = qkv.shape
        if self.shift:
            qkv = torch.roll(qkv, (-self.shift, -self.shift), dims=(-2, -1))
        q, k, v = self._windows(qkv).chunk(3, dim=-1)
        if helper is not None:
            if self.shift:
                helper = torch.roll(helper, (-self.shift, -self.shift), dims=(-2, -1))
            channel_heads = helper.shape[1] // (c3 // 3)
            helper = self._windows(helper.view(b, channel_heads, c3 // 3, h, w))
            v = v * helper.mean(dim=1, keepdim=True)
        area = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(area, area, -1)
        attn = _cosine_logits(q, k, self.logit_scale) + bias.permute(2, 0, 1).unsqueeze(0)
        x = F.softmax(attn, dim=-1) @ v  # (B * nW, L, ws * ws, C)
        s = self.window_size
        x = x.view(b, h // s, w // s, heads, s, s, c3 // 3).permute(0, 3, 6, 1, 4, 2, 5).reshape(b, -1, h, w)
        x = self.proj(x)
        return torch.roll(x, (self.shift, self.shift), dims=(-2, -1)) if self.shift else x


class ChannelSelfAttention(nn.Module):
    """Cosine attention between channels over the whole map; values scaled by the previous spatial output's mean."""

    def __init__(self, head_dim: int, heads: int) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
        self.proj = nn.Conv2d(head_dim * heads, head_dim * heads, 1)

    def forward(self, qkv: Tensor, helper: Tensor | None) -> Tensor:
        b, heads, c3, h, w = qkv.shape
        q, k, v = qkv.reshape(b, heads, c3, h * w).chunk(3, dim=-2)
        if helper is not None:
            v = v * helper.mean(dim=1, keepdim=True).view(b, 1, 1, h * w)
        x = F.softmax(_cosine_logits(q, k, self.logit_scale), dim=-1) @ v
        return self.proj(x.reshape(b, -1, h, w))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_ratio: float) -> None:
        super().__init__()
        self.hidden = nn.Conv2d(dim, int(dim * hidden_ratio), 1)
        self.out = nn.Conv2d(int(dim * hidden_ratio), dim, 1)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.act(self.hidden(x)))


class DRAMiTransformer(nn.Module):
    """One D-RAMiT block; returns the output, both branch outputs (the next block's helpers) and the mixed map."""

    def __init__(self, dim: int, heads: int, channel_heads: int, window_size: int, shift: int, hidden_ratio: float,
                 mv: tuple[int, float, int]) -> None:
        super().__init__()
        self.heads, self.spatial_heads = heads, heads - channel_heads
        self.qkv_proj = QKVProjection(dim)
        self.sp_attn = SpatialSelfAttention(dim // heads, self.spatial_heads, window_size, shift)
        self.ch_attn = ChannelSelfAttention(dim // heads, channel_heads)
        self.mobivari = _mixer(mv, dim)
        self.norm1 = ReshapeLayerNorm(dim)
        self.ffn = FeedForward(dim, hidden_ratio)
        self.norm2 = ReshapeLayerNorm(dim)

    def forward(self, x: Tensor, sp_prev: Tensor | None, ch_prev: Tensor | None) -> tuple[Tensor, ...]:
        qkv = self.qkv_proj(x, self.heads)
        sp = self.sp_attn(qkv[:, :self.spatial_heads], ch_prev)
        ch = self.ch_attn(qkv[:, self.spatial_heads:], sp_prev)
        mixed = self.mobivari(torch.cat([sp, ch], dim=1))
        x = self.norm1(mixed) + x
        return self.norm2(self.ffn(x)) + x, sp, ch, mixed


class EncoderStage(nn.Module):
    def __init__(self, depth: int, dim: int, heads: int, channel_heads: int, window_size: int, hidden_ratio: float,
                 mv: tuple[int, float, int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        for d in range(depth):
            self.blocks.add_module(f"block{d}", DRAMiTransformer(dim, heads, channel_heads, window_size,
                                                                 0 if d % 2 == 0 else window_size // 2,
                                                                 hidden_ratio, mv))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        sp = ch = None
        for block in self.blocks:
            x, sp, ch, mixed = block(x, sp, ch)
        return x, mixed


class Downsizing(nn.Module):
    """2x2 space-to-depth (top-left, top-right, bottom-left, bottom-right), LayerNorm, mixer back to ``dim``."""

    def __init__(self, dim: int, mv: tuple[int, float, int]) -> None:
        super().__init__()
        self.norm = ReshapeLayerNorm(4 * dim)
        self.reduction = _mixer(mv, 4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]], dim=1)
        return self.reduction(self.norm(x))


class Bottleneck(nn.Module):
    """Stage outputs plus max-pooled shallow features, pixel-shuffled back to full size, mixed and normalised."""

    def __init__(self, dim: int, stages: int, mv: tuple[int, float, int]) -> None:
        super().__init__()
        self.mobivari = _mixer(mv, sum(dim // 4**i for i in range(stages)), dim)
        self.norm = ReshapeLayerNorm(dim)

    def forward(self, shallow: Tensor, outputs: list[Tensor]) -> Tensor:
        merged, pooled = [], shallow
        for i, out in enumerate(outputs):
            if i:
                pooled = F.max_pool2d(pooled, 2)
            merged.append(F.pixel_shuffle(out + F.leaky_relu(pooled), 2**i))
        return self.norm(self.mobivari(torch.cat(merged, dim=1)))


class HRAMi(nn.Module):
    """Hierarchical reciprocal attention mixer: every stage's mixed attention map, shuffled to full size."""

    def __init__(self, dim: int, mv: tuple[int, float, int]) -> None:
        super().__init__()
        self.mobivari = _mixer(mv, dim + dim // 4 + dim // 16 + dim, dim)

    def forward(self, maps: list[Tensor]) -> Tensor:
        shuffled = [F.pixel_shuffle(m, 2**i) for i, m in enumerate(maps[:-1])]
        return self.mobivari(torch.cat([*shuffled, maps[-1]], dim=1))


class Reconstruction(nn.Module):
    def __init__(self, dim: int, scale: int, num_mv: int, mv: tuple[int, float, int]) -> None:
        super().__init__()
        self.mobivari = nn.ModuleList()
        for i in range(num_mv):
            self.mobivari.add_module(f"mobivari{i}", _mixer(mv, dim))
        self.conv = nn.Conv2d(dim, 3 * scale**2, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(scale)
        self.final_conv = nn.Conv2d(3, 3, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        for mixer in self.mobivari:
            x = mixer(x)
        return self.final_conv(self.shuffle(self.conv(x)))


def _detect(sd: StateDict) -> dict[str, Any] | None:
    block = "stage1.blocks.block0."
    needed = ("shallow.conv.weight", f"{block}sp_attn.logit_scale", "attn_mix.mobivari.pw_conv.weight")
    if any(key not in sd for key in needed):
        return None
    dim = int(sd["shallow.conv.weight"].shape[0])
    depths, heads = [], []
    for s in range(1, 5):
        depths.append(count_indexed(sd, rf"stage{s}\.blocks\.block(\d+)\."))
        heads.append(int(sd[f"stage{s}.blocks.block0.sp_attn.logit_scale"].shape[0]
                         + sd[f"stage{s}.blocks.block0.ch_attn.logit_scale"].shape[0]))
    channel_heads = int(sd[f"{block}ch_attn.logit_scale"].shape[0])
    config: dict[str, Any] = {
        "scale": math.isqrt(sd["to_target.conv.weight"].shape[0] // 3), "dim": dim, "depths": tuple(depths),
        "num_heads": tuple(heads), "chsa_head_ratio": channel_heads / heads[0],
        "window_size": (math.isqrt(sd[f"{block}sp_attn.relative_position_bias_table"].shape[0]) + 1) // 2,
        "hidden_ratio": sd[f"{block}ffn.hidden.weight"].shape[0] / dim,
        "mv_ver": 2 if f"{block}mobivari.exp_conv.weight" in sd else 1,
        "tail_mv": count_indexed(sd, r"to_target\.mobivari\.mobivari(\d+)\."),
    }
    if config["mv_ver"] == 2:
        config["expand_groups"] = dim // int(sd[f"{block}mobivari.exp_conv.weight"].shape[1])
    return config


@register_arch("ramit", scales=(2, 3, 4), detect=_detect, paper="Choi et al., CVPRW 2024",
               tiny={"dim": 16, "depths": (2, 1, 1, 1), "num_heads": (4, 4, 4, 4), "window_size": 4,
                     "hidden_ratio": 1.0, "mv_ver": 1, "tail_mv": 1})
class RAMiT(SRModel):
    """RAMiT: reciprocal spatial/channel attention blocks in a four-stage U-shape, hierarchical attention mixing."""

    pad_multiple = 1  # pads itself (zeros, as the official forward) to 2^(stages - 2) x window

    def __init__(self, scale: int = 2, dim: int = 64, depths: tuple[int, ...] = (6, 4, 4, 6),
                 num_heads: tuple[int, ...] = (4, 4, 4, 4), chsa_head_ratio: float = 0.25, window_size: int = 8,
                 hidden_ratio: float = 2.0, mv_ver: int = 2, exp_factor: float = 1.2, expand_groups: int = 4,
                 tail_mv: int = 2) -> None:
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError("RAMiT has four stages: depths and num_heads need four entries each")
        if mv_ver not in (1, 2):
            raise ValueError(f"mv_ver must be 1 or 2, not {mv_ver}")
        self.scale = scale
        self.unit = 2 ** (len(depths) - 2) * window_size
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD.get(scale, _STD[4])).view(1, 3, 1, 1), persistent=False)
        mv = (mv_ver, exp_factor, expand_groups)

        def stage(i: int) -> EncoderStage:
            channel_heads = int(num_heads[i] * chsa_head_ratio)
            if not 0 < channel_heads < num_heads[i]:
                raise ValueError("chsa_head_ratio must leave both spatial and channel heads in every stage")
            return EncoderStage(depths[i], dim, num_heads[i], channel_heads, window_size, hidden_ratio, mv)

        self.shallow = nn.Module()
        self.shallow.conv = nn.Conv2d(3, dim, 3, 1, 1)
        self.stage1, self.down1 = stage(0), Downsizing(dim, mv)
        self.stage2, self.down2 = stage(1), Downsizing(dim, mv)
        self.stage3 = stage(2)
        self.bottleneck = Bottleneck(dim, len(depths) - 1, mv)
        self.stage4 = stage(3)
        self.attn_mix = HRAMi(dim, mv)
        self.to_target = Reconstruction(dim, scale, tail_mv, mv)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % self.unit, 0, (-h) % self.unit))  # zeros, then normalised: the official order
        mean, std = self.mean.to(x.dtype), self.std.to(x.dtype)
        x = (x - mean) / std
        shallow = self.shallow.conv(x)
        o1, attn1 = self.stage1(shallow)
        o2, attn2 = self.stage2(self.down1(o1))
        o3, attn3 = self.stage3(self.down2(o2))
        o4, attn4 = self.stage4(self.bottleneck(shallow, [o1, o2, o3]))
        out = self.to_target(o4 * self.attn_mix([attn1, attn2, attn3, attn4]) + shallow)
        return (out * std + mean)[..., : h * self.scale, : w * self.scale]


register_variant("ramit", "ramit", {}, description="RAMiT (64 channels, depths 6/4/4/6)")
register_variant("ramit_1", "ramit", {"mv_ver": 1}, description="RAMiT-1 (MobileNet-v1 mixers; official weights)")
