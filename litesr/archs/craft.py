"""CRAFT: Cross-Refinement Adaptive Fusion Transformer (Li et al., ICCV 2023, "Feature Modulation Transformer:
Cross-Refinement and Spatial Attention for Lightweight Image Super-Resolution").

Each residual group (``layers.i``: ``residual_group`` then a 3x3 ``conv``) repeats, ``depth`` times: two shift
rectangle-window attention blocks (SRWAB, ``srwa_blocks``: half the channels in s0 x s1 rectangles, half in s1 x s0,
with a dynamic position bias MLP ``pos`` and a depth-wise ``get_v`` branch) on the low-frequency path, a
high-frequency enhancement residual block (HFERB, ``hfer_blocks``: conv branch + max-pool branch), and a hybrid
fusion block (HFB, ``hf_blocks``) whose channel attention takes queries from the HFERB output and keys/values from
the SRWAB output, with Restormer's gated-dconv FFN. The rectangle index tables and offsets are shared at the top
level (``relative_position_index_h/v``, ``biases_h/v``). Names follow the official code (AVC2-UESTC/CRAFT-SR,
``basicsr/archs/craft_arch.py``).

The official shifted SRWABs roll the map but apply no mask (``attn_mask`` is ``(None, None)``); litesr does the same.

Size rule: any input size. As the official inference (``inference_CRAFT.py``), ``forward`` mirrors the input by a
further 1 to ``window_size`` rows and columns (always at least one: the official formula ``(h // ws + 1) * ws``) and
crops the output; inputs smaller than the pad are mirrored repeatedly (the official code fails there).
``pad_multiple`` stays 1 because padding first would change the result. The window size is not stored in a
checkpoint; every released model uses 16, which detection assumes, as spandrel does. Input range [0, 1].
Tiling: channel attention in HFB spans the whole (tile) map, so tiles should be large.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import BodyLayerNorm, DerivedBuffers, Mlp, UpsampleOneStep, count_indexed
from .dat import DynamicPosBias, _split_size, img2windows, windows2img
from .swinir import RGB_MEAN, _as_tuple, _init_weights, image_to_tokens, tokens_to_image, windowed_attention


def rectangle_tables(hs: int, ws: int) -> tuple[Tensor, Tensor]:
    """(offsets ((2hs-1)(2ws-1), 2) float, index (hs*ws, hs*ws)) of an hs x ws rectangle's dynamic position bias."""
    offsets = torch.stack(torch.meshgrid(torch.arange(1 - hs, hs), torch.arange(1 - ws, ws), indexing="ij"))
    coords = torch.stack(torch.meshgrid(torch.arange(hs), torch.arange(ws), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    return offsets.flatten(1).transpose(0, 1).float(), (rel[0] + hs - 1) * (2 * ws - 1) + rel[1] + ws - 1


class RectangleAttention(nn.Module):
    """Attention inside hs x ws rectangles with a dynamic bias from the shared offsets and index (``pos`` only)."""

    def __init__(self, dim: int, num_heads: int, hs: int, ws: int) -> None:
        super().__init__()
        self.num_heads, self.scale, self.hs, self.ws = num_heads, (dim // num_heads) ** -0.5, hs, ws
        self.pos = DynamicPosBias(dim // 4, num_heads)

    def forward(self, qkv: Tensor, h: int, w: int, offsets: Tensor, index: Tensor) -> Tensor:
        """qkv: (3, B, H*W, C); returns (B, H, W, C)."""
        c, heads, n = qkv.shape[-1], self.num_heads, self.hs * self.ws
        q, k, v = (img2windows(tokens_to_image(t, h, w), self.hs, self.ws).view(-1, n, heads, c // heads)
                   .transpose(1, 2) for t in qkv)
        bias = self.pos(offsets)[index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        return windows2img(windowed_attention(q, k, v, bias, None, self.scale), self.hs, self.ws, h, w)


class SRWAB(nn.Module):
    """Shift rectangle-window attention block (no mask on shifted blocks, as the official code runs)."""

    def __init__(self, dim: int, num_heads: int, split_size: tuple[int, int], *, shifted: bool, mlp_ratio: float,
                 qkv_bias: bool) -> None:
        super().__init__()
        s0, s1 = split_size
        self.shift = (s0 // 2, s1 // 2) if shifted else (0, 0)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.get_v = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.attns = nn.ModuleList([RectangleAttention(dim // 2, num_heads // 2, s0, s1),
                                    RectangleAttention(dim // 2, num_heads // 2, s1, s0)])
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, h: int, w: int, tables: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
        b, _, c = x.shape
        offsets_h, index_h, offsets_v, index_v = tables
        qkv = self.qkv(self.norm1(x)).reshape(b, -1, 3, c).permute(2, 0, 1, 3)  # 3, B, N, C
        v = tokens_to_image(qkv[2], h, w)
        half, (t0, t1) = c // 2, self.shift
        if t0 or t1:
            grid = qkv.view(3, b, h, w, c)
            q0 = torch.roll(grid[..., :half], shifts=(-t0, -t1), dims=(2, 3)).reshape(3, b, -1, half)
            q1 = torch.roll(grid[..., half:], shifts=(-t1, -t0), dims=(2, 3)).reshape(3, b, -1, half)
            x1 = torch.roll(self.attns[0](q0, h, w, offsets_h, index_h), shifts=(t0, t1), dims=(1, 2))
            x2 = torch.roll(self.attns[1](q1, h, w, offsets_v, index_v), shifts=(t1, t0), dims=(1, 2))
        else:
            x1 = self.attns[0](qkv[..., :half], h, w, offsets_h, index_h)
            x2 = self.attns[1](qkv[..., half:], h, w, offsets_v, index_v)
        attended = torch.cat([x1, x2], dim=-1).reshape(b, -1, c) + image_to_tokens(self.get_v(v))
        x = x + self.proj(attended)
        return x + self.mlp(self.norm2(x))


class HFERB(nn.Module):
    """High-frequency enhancement residual block: 3x3 conv on half the channels, max-pool + 1x1 on the other half."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mid_dim = dim // 2
        self.act = nn.GELU()
        self.last_fc = nn.Conv2d(dim, dim, 1)
        self.fc = nn.Conv2d(self.mid_dim, self.mid_dim, 1)
        self.max_pool = nn.MaxPool2d(3, 1, 1)
        self.conv = nn.Conv2d(self.mid_dim, self.mid_dim, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        local = self.act(self.conv(x[:, : self.mid_dim]))
        high = self.act(self.fc(self.max_pool(x[:, self.mid_dim :])))
        return x + self.last_fc(torch.cat([local, high], dim=1))


class CrossChannelAttention(nn.Module):
    """HFB attention: transposed (channel) attention, queries from the high-frequency map, keys/values from the low."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim, bias=False)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=False)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 3, 1, 1, groups=dim * 2, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        b, c, h, w = low.shape
        heads = self.num_heads
        q = self.q_dwconv(self.q(high)).reshape(b, heads, c // heads, h * w)
        k, v = (t.reshape(b, heads, c // heads, h * w) for t in self.kv_dwconv(self.kv(low)).chunk(2, dim=1))
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * self.temperature).softmax(-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class GatedDconvFFN(nn.Module):
    """Restormer's FFN: 1x1 to 2 x hidden, depth-wise 3x3, GELU gate, 1x1 back (no biases)."""

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class HFB(nn.Module):
    """Hybrid fusion block (``ffn_expansion_factor`` 2.66 and bias-free convs are fixed in the official code)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = BodyLayerNorm(dim, eps=1e-5)
        self.attn = CrossChannelAttention(dim, num_heads)
        self.norm2 = BodyLayerNorm(dim, eps=1e-5)
        self.ffn = GatedDconvFFN(dim, 2.66)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        x = low + self.attn(self.norm1(low), high)
        return x + self.ffn(self.norm2(x))


class CRFB(nn.Module):
    """Cross-refinement fusion block: ``depth`` rounds of (SRWAB, shifted SRWAB) | HFERB, fused by an HFB."""

    def __init__(self, dim: int, depth: int, num_heads: int, split_size: tuple[int, int], *, mlp_ratio: float,
                 qkv_bias: bool) -> None:
        super().__init__()
        self.srwa_blocks = nn.ModuleList(
            SRWAB(dim, num_heads, split_size, shifted=i % 2 == 1, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias)
            for i in range(2 * depth)
        )
        self.hfer_blocks = nn.ModuleList(HFERB(dim) for _ in range(depth))
        self.hf_blocks = nn.ModuleList(HFB(dim, num_heads) for _ in range(depth))

    def forward(self, x: Tensor, tables: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
        h, w = x.shape[-2:]
        for i, (hfer, hfb) in enumerate(zip(self.hfer_blocks, self.hf_blocks, strict=True)):
            low = self.srwa_blocks[2 * i](image_to_tokens(x), h, w, tables)
            low = tokens_to_image(self.srwa_blocks[2 * i + 1](low, h, w, tables), h, w)
            x = hfb(low, hfer(x))
        return x


class RCRFG(nn.Module):
    def __init__(self, residual_group: CRFB, dim: int) -> None:
        super().__init__()
        self.residual_group = residual_group
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor, tables: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
        return self.conv(self.residual_group(x, tables)) + x


def mirror_pad(x: Tensor, multiple: int) -> Tensor:
    """The official padding: append the flipped image below and to the right until the sides reach
    ``(side // multiple + 1) * multiple`` (one flip when the pad is no longer than the side, as there)."""
    h, w = x.shape[-2:]
    target_h, target_w = (h // multiple + 1) * multiple, (w // multiple + 1) * multiple
    while x.shape[-2] < target_h:
        x = torch.cat([x, torch.flip(x, [2])], 2)
    while x.shape[-1] < target_w:
        x = torch.cat([x, torch.flip(x, [3])], 3)
    return x[..., :target_h, :target_w]


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "layers.0.residual_group.hf_blocks.0.attn.temperature" not in sd or "biases_h" not in sd:
        return None
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    n_layers = count_indexed(sd, r"layers\.(\d+)\.residual_group\.hf_blocks\.0\.attn\.temperature")
    g = "layers.{}.residual_group."
    return {
        "scale": math.isqrt(sd["upsample.0.weight"].shape[0] // in_chans), "in_chans": int(in_chans),
        "embed_dim": int(embed_dim),
        "depths": tuple(count_indexed(sd, rf"layers\.{i}\.residual_group\.hf_blocks\.(\d+)\.attn\.temperature")
                        for i in range(n_layers)),
        "num_heads": tuple(sd[g.format(i) + "hf_blocks.0.attn.temperature"].shape[0] for i in range(n_layers)),
        "split_size": _split_size(sd, "biases_h", "relative_position_index_h"),
        "mlp_ratio": sd[g.format(0) + "srwa_blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        "qkv_bias": g.format(0) + "srwa_blocks.0.qkv.bias" in sd,
        "resi_connection": "1conv" if "conv_after_body.weight" in sd else "identity",
    }


@register_arch(
    "craft", scales=(2, 3, 4), paper="Li et al., ICCV 2023 (CRAFT)", detect=_detect,
    tiny={"embed_dim": 16, "depths": (1,), "num_heads": (2,), "split_size": (2, 4), "window_size": 4},
)
class CRAFT(DerivedBuffers, SRModel):
    """CRAFT: residual cross-refinement fusion groups, one-step pixel-shuffle tail. Defaults are CRAFT (x4 config:
    embed 48, 4 groups of depth 2, 6 heads, split 4x16, window 16)."""

    derived_buffers = ("relative_position_index_h", "relative_position_index_v", "biases_h", "biases_v")

    def __init__(self, scale: int = 4, in_chans: int = 3, embed_dim: int = 48, depths: Sequence[int] = (2,) * 4,
                 num_heads: int | Sequence[int] = (6,) * 4, split_size: Sequence[int] = (4, 16),
                 window_size: int = 16, mlp_ratio: float = 2.0, qkv_bias: bool = True, img_range: float = 1.0,
                 resi_connection: str = "1conv") -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        heads = _as_tuple(num_heads, len(depths), "num_heads")
        split = (int(split_size[0]), int(split_size[1]))
        if window_size % split[0] or window_size % split[1]:
            raise ConfigError(f"window_size {window_size} must be a multiple of both split sides {split}")
        if resi_connection not in ("1conv", "identity"):
            raise ConfigError(f"resi_connection must be '1conv' or 'identity', not {resi_connection!r}")
        self.scale, self.img_range, self.window_size = scale, img_range, window_size
        self.color_space = "rgb" if in_chans == 3 else "y"
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        offsets_h, index_h = rectangle_tables(*split)
        offsets_v, index_v = rectangle_tables(*split[::-1])
        self.register_buffer("relative_position_index_h", index_h)
        self.register_buffer("relative_position_index_v", index_v)
        self.register_buffer("biases_v", offsets_v)
        self.register_buffer("biases_h", offsets_h)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.layers = nn.ModuleList(
            RCRFG(CRFB(embed_dim, d, heads[i], split, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias), embed_dim)
            for i, d in enumerate(depths)
        )
        self.norm = BodyLayerNorm(embed_dim, eps=1e-5)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1) if resi_connection == "1conv" \
            else nn.Identity()
        self.upsample = UpsampleOneStep(scale, embed_dim, in_chans)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = mirror_pad(x, self.window_size)
        mean = self.mean.to(x.dtype)
        x = self.conv_first((x - mean) * self.img_range)
        tables = (self.biases_h, self.relative_position_index_h, self.biases_v, self.relative_position_index_v)
        features = x
        for layer in self.layers:
            features = layer(features, tables)
        x = self.upsample(self.conv_after_body(self.norm(features)) + x)
        return (x / self.img_range + mean)[..., : h * self.scale, : w * self.scale]


_CRAFT_PUBLISHED = {
    2: {"Set5": (38.23, 0.9615), "Set14": (33.92, 0.9211), "B100": (32.33, 0.9016), "Urban100": (32.86, 0.9343),
        "Manga109": (39.39, 0.9786)},
    3: {"Set5": (34.71, 0.9295), "Set14": (30.61, 0.8469), "B100": (29.24, 0.8093), "Urban100": (28.77, 0.8635),
        "Manga109": (34.29, 0.9491)},
    4: {"Set5": (32.52, 0.8989), "Set14": (28.85, 0.7872), "B100": (27.72, 0.7418), "Urban100": (26.56, 0.7995),
        "Manga109": (31.18, 0.9168)},
}
register_variant("craft", "craft", {}, paper_params={2: 737_000, 3: 744_000, 4: 753_000},
                 paper_psnr=_CRAFT_PUBLISHED, paper_macs={2: 176.0, 3: 78.0, 4: 47.0},
                 description="CRAFT (embed 48, 4 groups of depth 2, 6 heads, split 4x16, window 16) [published: SSIU"
                 " table]")
