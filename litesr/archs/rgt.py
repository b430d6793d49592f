"""RGT: Recursive Generalization Transformer (Chen et al., ICLR 2024, "Recursive Generalization Transformer for Image
Super-Resolution").

Blocks alternate local rectangle-window self-attention (L-SA, ``attn.attns.{0,1}``: DAT's spatial attention with a
depth-wise ``get_v`` branch instead of DAT's interaction gates) and recursive-generalization self-attention (RG-SA:
the map is reduced by a strided 4x4 depth-wise conv ``reduction1`` applied recursively, then queries of every pixel
cross-attend to the few reduced tokens, with scaled channels ``c_ratio``). Each block adds its input back scaled by
``gamma`` (hybrid adaptive integration). The FFN is DAT's spatial-gate SGFN (``mlp.sg``). Names follow the official
code (zhengchen1999/RGT, ``basicsr/archs/rgt_arch.py``).

Size rule: any input of at least 16 x 16 (RG-SA reduces by 16 at least; smaller inputs are padded here and cropped
back); from 1024 pixels on a side the reduction is 64x. L-SA zero-pads to the larger split size internally, so
``pad_multiple`` stays 1. Tiling: RG-SA summarises the whole map it is given, so a tiled output differs (slightly,
everywhere, not only at the seams) from the whole-image one; large tiles keep the difference small. Input range
[0, 1].
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import DropPath, count_indexed, drop_path_rates, run_at_least, upsample_scale
from .dat import SGFN, RectangleWindowAttention, ResidualGroup, _init_weights, _split_size, is_shifted
from .swinir import RGB_MEAN, _as_tuple, _upsample, image_to_tokens, residual_conv, tokens_to_image

# RG-SA divides the map by 4 at least twice at inference: below 16 pixels per side there is nothing left.
MIN_SIZE = 16


class LocalSelfAttention(RectangleWindowAttention):
    """L-SA: rectangle-window attention plus a depth-wise conv of v (the locality complementary module)."""

    def __init__(self, dim: int, num_heads: int, split_size: tuple[int, int], *, qkv_bias: bool, shifted: bool,
                 img_size: int) -> None:
        super().__init__(dim, num_heads, split_size, qkv_bias=qkv_bias, shifted=shifted, img_size=img_size)
        self.get_v = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        attended, v = self.attend(x, h, w)
        return self.proj(attended + image_to_tokens(self.get_v(v)))


def recursion_depth(h: int, w: int, training: bool) -> int:
    """How many times RG-SA applies its 4x reduction: the official formula, at least 2 at inference ("testing _time
    must equal or larger than training _time")."""
    if training:
        return max(int(math.log(h // 4, 4)), int(math.log(w // 4, 4)))
    return max(int(math.log(h // 16, 4)), int(math.log(w // 16, 4)), 2)


class RecursiveGeneralizationAttention(nn.Module):
    """RG-SA: every pixel's query attends to a recursively reduced map (keys at ``c_ratio`` of the channels)."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool, c_ratio: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embed_dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.cr = int(dim * c_ratio)
        self.scale = (dim // num_heads * c_ratio) ** -0.5
        self.reduction1 = nn.Conv2d(dim, dim, 4, stride=4, groups=dim)
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.conv = nn.Conv2d(dim, self.cr, 1)
        self.norm_act = nn.Sequential(nn.LayerNorm(self.cr), nn.GELU())
        self.q = nn.Linear(dim, self.cr, bias=qkv_bias)
        self.k = nn.Linear(self.cr, self.cr, bias=qkv_bias)
        self.v = nn.Linear(self.cr, dim, bias=qkv_bias)
        self.cpe = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        times = recursion_depth(h, w, self.training)
        reduced = tokens_to_image(x, h, w)
        for _ in range(times):
            reduced = self.reduction1(reduced)
        rh, rw = reduced.shape[-2:]
        reduced = self.norm_act(image_to_tokens(self.conv(self.dwconv(reduced))))  # B, N', C'
        q = self.q(x).reshape(b, n, heads, self.cr // heads).transpose(1, 2)
        k = self.k(reduced).reshape(b, -1, heads, self.cr // heads).transpose(1, 2)
        v = self.v(reduced).reshape(b, -1, heads, c // heads).transpose(1, 2)  # B, heads, N', d
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        # conditional position encoding of the reduced values, in their image form
        v_image = v.transpose(1, 2).reshape(b, -1, c).transpose(1, 2).reshape(b, c, rh, rw)
        v = v + self.cpe(v_image).reshape(b, heads, c // heads, -1).transpose(-1, -2)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class RGTBlock(nn.Module):
    """Even blocks L-SA, odd blocks RG-SA; SGFN; the block input added back at ``gamma`` (HAI)."""

    def __init__(self, dim: int, num_heads: int, split_size: tuple[int, int], *, mlp_ratio: float, qkv_bias: bool,
                 c_ratio: float, drop_path: float, group: int, block: int, img_size: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        if block % 2 == 0:
            self.attn: nn.Module = LocalSelfAttention(dim, num_heads, split_size, qkv_bias=qkv_bias,
                                                      shifted=is_shifted(group, block), img_size=img_size)
        else:
            self.attn = RecursiveGeneralizationAttention(dim, num_heads, qkv_bias=qkv_bias, c_ratio=c_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = SGFN(dim, int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)
        self.gamma = nn.Parameter(1e-4 * torch.ones(dim))

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        y = x + self.drop_path(self.attn(self.norm1(x), h, w))
        y = y + self.drop_path(self.mlp(self.norm2(y), h, w))
        return y + x * self.gamma


def _heads(sd: StateDict, group: int, embed_dim: int) -> int:
    """L-SA stores half the heads per branch; an odd count is the one that divides embed_dim (spandrel's rule)."""
    half = sd[f"layers.{group}.blocks.0.attn.attns.0.pos.pos3.2.weight"].shape[0]
    return half * 2 if embed_dim % (half * 2) == 0 else half * 2 + 1


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "layers.0.blocks.0.gamma" not in sd or "layers.0.blocks.0.attn.attns.0.rpe_biases" not in sd:
        return None
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    n_layers = count_indexed(sd, r"layers\.(\d+)\.blocks\.0\.norm1\.weight")
    depth = tuple(count_indexed(sd, rf"layers\.{i}\.blocks\.(\d+)\.norm1\.weight") for i in range(n_layers))
    c_ratio = 0.5  # only stored by RG-SA blocks (odd indices)
    for i, d in enumerate(depth):
        if d >= 2:
            out_ch, in_ch = sd[f"layers.{i}.blocks.1.attn.conv.weight"].shape[:2]
            c_ratio = out_ch / in_ch
            break
    mask = next((v for k, v in sd.items() if re.match(r"layers\.\d+\.blocks\.\d+\.attn\.attn_mask_0$", k)), None)
    return {
        "scale": upsample_scale(sd, "upsample"), "in_chans": int(in_chans), "embed_dim": int(embed_dim),
        "split_size": _split_size(sd, "layers.0.blocks.0.attn.attns.0.rpe_biases"), "depth": depth,
        "num_heads": tuple(_heads(sd, i, embed_dim) for i in range(n_layers)),
        "mlp_ratio": sd["layers.0.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        "qkv_bias": "layers.0.blocks.0.attn.qkv.bias" in sd, "c_ratio": c_ratio,
        "img_size": math.isqrt(mask.shape[0] * mask.shape[1]) if mask is not None else 64,
        "resi_connection": "1conv" if "conv_after_body.weight" in sd else "3conv",
    }


@register_arch(
    "rgt", scales=(2, 3, 4), paper="Chen et al., ICLR 2024 (RGT)", detect=_detect,
    tiny={"embed_dim": 16, "split_size": (2, 4), "depth": (2,), "num_heads": (2,), "img_size": 16},
)
class RGT(SRModel):
    """RGT: residual groups of alternating L-SA / RG-SA blocks. Defaults are RGT (8 groups of 6, split 8x32)."""
    # spandrel 0.4.2 declares this model unsafe in fp16 (supports_half=False); litesr follows, not measured here
    safe_precisions = ("fp32", "bf16")

    def __init__(self, scale: int = 2, in_chans: int = 3, embed_dim: int = 180, split_size: Sequence[int] = (8, 32),
                 depth: Sequence[int] = (6,) * 8, num_heads: int | Sequence[int] = (6,) * 8, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, c_ratio: float = 0.5, drop_path_rate: float = 0.1, img_size: int = 64,
                 img_range: float = 1.0, resi_connection: str = "1conv") -> None:
        super().__init__()
        depth = tuple(int(d) for d in depth)
        heads = _as_tuple(num_heads, len(depth), "num_heads")
        split = (int(split_size[0]), int(split_size[1]))
        if max(split) % min(split):
            raise ConfigError(f"split_size {split}: the larger side must be a multiple of the smaller")
        self.scale, self.img_range = scale, img_range
        self.color_space = "rgb" if in_chans == 3 else "y"
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.before_RG = nn.Sequential(nn.Identity(), nn.LayerNorm(embed_dim))  # official: Rearrange, LayerNorm
        rates = drop_path_rates(drop_path_rate, depth)
        self.layers = nn.ModuleList(
            ResidualGroup([
                RGTBlock(embed_dim, heads[i], split, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, c_ratio=c_ratio,
                         drop_path=rates[i][j], group=i, block=j, img_size=img_size)
                for j in range(d)
            ], embed_dim, resi_connection)
            for i, d in enumerate(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, 64, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.upsample = _upsample(scale, 64)
        self.conv_last = nn.Conv2d(64, in_chans, 3, 1, 1)
        self.apply(_init_weights)

    def _forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = self.conv_first((x - mean) * self.img_range)
        h, w = x.shape[-2:]
        tokens = self.before_RG(image_to_tokens(x))
        for layer in self.layers:
            tokens = layer(tokens, h, w)
        x = self.conv_after_body(tokens_to_image(self.norm(tokens), h, w)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return x / self.img_range + mean

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, MIN_SIZE, self.scale)


_PAPER = {"embed_dim": 180, "split_size": (8, 32), "mlp_ratio": 2.0, "c_ratio": 0.5}
register_variant("rgt_s", "rgt", {**_PAPER, "depth": (6,) * 6, "num_heads": (6,) * 6}, paper_params={4: 10_200_000},
                 description="RGT-S (6 groups of 6 blocks, split 8x32), 10.20M; x4 Urban100 27.89/0.8347 (RGT README)")
register_variant("rgt_m", "rgt", {**_PAPER, "depth": (6,) * 8, "num_heads": (6,) * 8}, paper_params={4: 13_370_000},
                 description="RGT (8 groups of 6 blocks, split 8x32), 13.37M; x4 Urban100 27.98/0.8369 (RGT README)")
