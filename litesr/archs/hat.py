"""HAT: Hybrid Attention Transformer (Chen et al., CVPR 2023, "Activating More Pixels in Image Super-Resolution
Transformer").

State-dict names follow the official code (XPixelGroup/HAT, ``hat/archs/hat_arch.py``): the top-level index buffers
``relative_position_index_SA`` / ``relative_position_index_OCA``, ``conv_first``, ``patch_embed.norm``,
``layers.i.residual_group.blocks.j.{norm1,attn,conv_block.cab,norm2,mlp}`` (hybrid attention blocks: shifted-window
attention plus a channel-attention conv branch scaled by ``conv_scale``), ``layers.i.residual_group.overlap_attn``
(overlapping cross-attention: queries from ws x ws windows, keys/values from the enlarged ``ws * (1 + overlap_ratio)``
windows around them), ``layers.i.conv``, ``norm``, ``conv_after_body`` and the pixel-shuffle head
``conv_before_upsample`` / ``upsample`` / ``conv_last``.

Size rule: any input size; ``forward`` reflect-pads to a multiple of the window (16 for the released models) and crops
back, as the official code does, and ``pad_multiple`` declares the window so tiles are cut to whole windows. Input
range [0, 1] (``img_range`` 1). The index buffers are derived from the configuration; loading keeps the recomputed
values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import (
    DerivedBuffers,
    Mlp,
    count_indexed,
    drop_path_rates,
    pad_to_multiple,
    relative_position_index,
    shifted_window_mask,
    upsample_scale,
    window_partition,
    window_reverse,
)
from .swinir import (
    RGB_MEAN,
    PatchEmbed,
    SwinTransformerBlock,
    WindowAttention,
    _as_tuple,
    _init_weights,
    _upsample,
    image_to_tokens,
    tokens_to_image,
    windowed_attention,
)


class ChannelAttention(nn.Module):
    """RCAN-style squeeze-excitation with the pooling inside the Sequential (keys ``attention.1`` / ``attention.3``)."""

    def __init__(self, num_feat: int, squeeze_factor: float = 16) -> None:
        super().__init__()
        squeezed = int(num_feat // squeeze_factor)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, squeezed, 1), nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, num_feat, 1), nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel attention block: 3x3 conv down by ``compress_ratio``, GELU, 3x3 conv back, channel attention."""

    def __init__(self, num_feat: int, compress_ratio: float = 3, squeeze_factor: float = 30) -> None:
        super().__init__()
        mid = int(num_feat // compress_ratio)
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, mid, 3, 1, 1), nn.GELU(), nn.Conv2d(mid, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)


class HAB(SwinTransformerBlock):
    """Hybrid attention block: the Swin block with a CAB branch beside the window attention, added at ``conv_scale``."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, *, compress_ratio: float,
                 squeeze_factor: float, conv_scale: float, mlp_ratio: float, qkv_bias: bool,
                 drop_path: float) -> None:
        super().__init__(dim, num_heads, window_size, shift_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         drop_path=drop_path)
        self.conv_scale = conv_scale
        self.conv_block = CAB(dim, compress_ratio, squeeze_factor)

    def make_attention(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool) -> nn.Module:
        return WindowAttention(dim, window_size, num_heads, qkv_bias=qkv_bias, persistent_index=False)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        y = self.norm1(x)
        conv_x = image_to_tokens(self.conv_block(tokens_to_image(y, h, w)))
        x = x + self.drop_path(self.window_attention(y, h, w, mask)) + conv_x * self.conv_scale
        return x + self.drop_path(self.mlp(self.norm2(x)))


def overlap_window_size(window_size: int, overlap_ratio: float) -> int:
    return window_size + int(overlap_ratio * window_size)


def overlap_position_index(window_size: int, overlap_size: int) -> Tensor:
    """(ws*ws, ows*ows) index of each (query, key) offset into the (ws + ows - 1)^2 OCAB bias table."""
    # Not centred on the query window: entries go negative and index the table from its end, as in the official
    # code (the released weights were trained with it).
    def coords(n: int) -> Tensor:
        return torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")).flatten(1)

    rel = coords(overlap_size)[:, None, :] - coords(window_size)[:, :, None] + (window_size - overlap_size + 1)
    return rel[0] * (window_size + overlap_size - 1) + rel[1]


class OCAB(DerivedBuffers):
    """Overlapping cross-attention block: window queries attend to keys/values of the enlarged, overlapping window."""

    def __init__(self, dim: int, window_size: int, overlap_ratio: float, num_heads: int, *, qkv_bias: bool,
                 mlp_ratio: float) -> None:
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.overlap_win_size = ows = overlap_window_size(window_size, overlap_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.unfold = nn.Unfold(kernel_size=(ows, ows), stride=window_size, padding=(ows - window_size) // 2)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((window_size + ows - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # The official model keeps this index at the top level (relative_position_index_OCA); here it is a local copy.
        self.register_buffer("relative_position_index", overlap_position_index(window_size, ows), persistent=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None = None) -> Tensor:
        b, _, c = x.shape
        ws, ows, heads = self.window_size, self.overlap_win_size, self.num_heads
        qkv = self.qkv(self.norm1(x)).view(b, h, w, 3, c).permute(3, 0, 4, 1, 2)  # 3, b, c, h, w
        q = window_partition(qkv[0].permute(0, 2, 3, 1), ws).reshape(-1, ws * ws, c)
        kv = self.unfold(torch.cat((qkv[1], qkv[2]), dim=1))  # b, 2*c*ows*ows, nW
        kv = kv.view(b, 2, c, ows * ows, -1).permute(1, 0, 4, 3, 2).reshape(2, -1, ows * ows, c)
        b_ = q.shape[0]
        q = q.view(b_, ws * ws, heads, c // heads).transpose(1, 2)
        k, v = (t.view(b_, ows * ows, heads, c // heads).transpose(1, 2) for t in (kv[0], kv[1]))
        n, m = ws * ws, ows * ows
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, m, -1)
        out = windowed_attention(q, k, v, bias.permute(2, 0, 1), None, self.scale)
        out = window_reverse(out.view(-1, ws, ws, c), ws, h, w).reshape(b, h * w, c)
        x = self.proj(out) + x
        return x + self.mlp(self.norm2(x))


class AttenBlocks(nn.Module):
    """The hybrid attention blocks of a group, then its overlapping cross-attention block."""

    def __init__(self, blocks: list[nn.Module], overlap_attn: OCAB) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.overlap_attn = overlap_attn

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        for block in self.blocks:
            x = block(x, h, w, mask)
        return self.overlap_attn(x, h, w)


def group_conv(dim: int, kind: str) -> nn.Module:
    """The conv closing a residual group (and the body): '1conv' (3x3) or 'identity' (none), as HAT/DRCT allow."""
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "identity":
        return nn.Identity()
    raise ConfigError(f"resi_connection must be '1conv' or 'identity', not {kind!r}")


class RHAG(nn.Module):
    """Residual hybrid attention group: attention blocks, a conv on the image form, a residual connection."""

    def __init__(self, dim: int, residual_group: nn.Module, resi_connection: str) -> None:
        super().__init__()
        self.residual_group = residual_group
        self.conv = group_conv(dim, resi_connection)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        return image_to_tokens(self.conv(tokens_to_image(self.residual_group(x, h, w, mask), h, w))) + x


class WindowTransformerSR(DerivedBuffers, SRModel):
    """What HAT and DRCT share: mean shift and ``img_range``, conv_first, token stages with a shared shift mask, the
    final norm, conv_after_body and the pixel-shuffle reconstruction; subclasses build ``self.layers``."""

    def init_common(self, scale: int, in_chans: int, embed_dim: int, window_size: int, img_range: float,
                    patch_norm: bool, ape: bool, img_size: int, resi_connection: str, num_feat: int) -> None:
        self.scale, self.window_size, self.img_range = scale, window_size, img_range
        self.pad_multiple = window_size
        self.color_space = "rgb" if in_chans == 3 else "y"
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=patch_norm)
        self.img_size = img_size
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, img_size * img_size, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = group_conv(embed_dim, resi_connection)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.upsample = _upsample(scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)

    def forward_features(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        mask = shifted_window_mask(h, w, self.window_size, self.window_size // 2, device=x.device).to(x.dtype)
        tokens = self.patch_embed(x)
        if hasattr(self, "absolute_pos_embed"):
            if h * w != self.absolute_pos_embed.shape[1]:
                raise ValueError(f"this model has an absolute position embedding for {self.img_size}x{self.img_size} "
                                 f"inputs (padded), not {h}x{w}")
            tokens = tokens + self.absolute_pos_embed
        for layer in self.layers:
            tokens = layer(tokens, h, w, mask)
        return tokens_to_image(self.norm(tokens), h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        mean = self.mean.to(x.dtype)
        x, _, _ = pad_to_multiple((x - mean) * self.img_range, self.window_size)
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        return (x / self.img_range + mean)[..., : h * self.scale, : w * self.scale]


# The overlap ratios tried first when reading one back from the enlarged window size (several ratios give the same
# integer size; spandrel picks the first "nice" one in this order, so litesr reports the same).
_NICE_RATIOS = (0, 1, 0.5, 0.25, 0.75, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9)


def read_overlap_ratio(window_size: int, overlap_size: int) -> float:
    for ratio in _NICE_RATIOS:
        if overlap_window_size(window_size, ratio) == overlap_size:
            return ratio
    return (overlap_size - window_size) / window_size + 0.01


def read_ratio(total: int, part: int) -> float:
    """A divisor ``r`` with ``int(total // r) == part`` (compress ratio, squeeze factor), an integer when one exists."""
    exact = total / part
    if exact.is_integer():
        return int(exact)
    for candidate in (math.ceil(exact), math.floor(exact), exact, exact - 0.01, exact + 0.01):
        if candidate > 0 and int(total // candidate) == part:
            return candidate
    raise ValueError(f"no ratio r with {total} // r == {part}")


def _detect(sd: StateDict) -> dict[str, Any] | None:
    g0 = "layers.0.residual_group."
    if "relative_position_index_SA" not in sd or g0 + "overlap_attn.qkv.weight" not in sd:
        return None
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    num_feat = sd["conv_last.weight"].shape[1]
    window_size = math.isqrt(sd["relative_position_index_SA"].shape[0])
    n_layers = count_indexed(sd, r"layers\.(\d+)\.residual_group\.overlap_attn\.qkv\.weight")
    depths = tuple(count_indexed(sd, rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.norm1\.weight")
                   for i in range(n_layers))
    heads = tuple(sd[f"layers.{i}.residual_group.overlap_attn.relative_position_bias_table"].shape[1]
                  for i in range(n_layers))
    ape = "absolute_pos_embed" in sd
    return {
        "scale": upsample_scale(sd, "upsample"), "in_chans": int(in_chans), "embed_dim": int(embed_dim),
        "depths": depths, "num_heads": heads, "window_size": window_size,
        "compress_ratio": read_ratio(embed_dim, sd[g0 + "blocks.0.conv_block.cab.0.weight"].shape[0]),
        "squeeze_factor": read_ratio(embed_dim, sd[g0 + "blocks.0.conv_block.cab.3.attention.1.weight"].shape[0]),
        "overlap_ratio": read_overlap_ratio(window_size, math.isqrt(sd["relative_position_index_OCA"].shape[1])),
        "mlp_ratio": sd[g0 + "blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        "qkv_bias": g0 + "blocks.0.attn.qkv.bias" in sd,
        "patch_norm": "patch_embed.norm.weight" in sd,
        "ape": ape, "img_size": math.isqrt(sd["absolute_pos_embed"].shape[1]) if ape else 64,
        "resi_connection": "1conv" if "conv_after_body.weight" in sd else "identity",
        "num_feat": int(num_feat),
    }


@register_arch(
    "hat", scales=(2, 3, 4, 8, 1), paper="Chen et al., CVPR 2023 (HAT)", detect=_detect,
    tiny={"embed_dim": 12, "depths": (2,), "num_heads": (2,), "window_size": 4, "compress_ratio": 3,
          "squeeze_factor": 4, "num_feat": 8},
)
class HAT(WindowTransformerSR):
    """HAT: residual hybrid attention groups (window attention + channel attention, then overlapping cross-attention).

    Defaults are the HAT (HAT-M) x2 configuration of the official test options: embed 180, 6 groups of 6 blocks,
    6 heads, window 16, compress 3, squeeze 30, overlap 0.5, mlp 2.
    """

    derived_buffers = ("relative_position_index_SA", "relative_position_index_OCA")

    def __init__(self, scale: int = 2, in_chans: int = 3, embed_dim: int = 180, depths: Sequence[int] = (6,) * 6,
                 num_heads: int | Sequence[int] = (6,) * 6, window_size: int = 16, compress_ratio: float = 3,
                 squeeze_factor: float = 30, conv_scale: float = 0.01, overlap_ratio: float = 0.5,
                 mlp_ratio: float = 2.0, qkv_bias: bool = True, drop_path_rate: float = 0.1, ape: bool = False,
                 patch_norm: bool = True, img_size: int = 64, img_range: float = 1.0, resi_connection: str = "1conv",
                 num_feat: int = 64) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        heads = _as_tuple(num_heads, len(depths), "num_heads")
        if any(embed_dim % n for n in heads):
            raise ConfigError(f"embed_dim {embed_dim} is not divisible by every num_heads entry {heads}")
        self.init_common(scale, in_chans, embed_dim, window_size, img_range, patch_norm, ape, img_size,
                         resi_connection, num_feat)
        ows = overlap_window_size(window_size, overlap_ratio)
        self.register_buffer("relative_position_index_SA", relative_position_index(window_size))
        self.register_buffer("relative_position_index_OCA", overlap_position_index(window_size, ows))
        rates = drop_path_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList(
            RHAG(embed_dim, AttenBlocks([
                HAB(embed_dim, heads[i], window_size, 0 if j % 2 == 0 else window_size // 2,
                    compress_ratio=compress_ratio, squeeze_factor=squeeze_factor, conv_scale=conv_scale,
                    mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=rates[i][j])
                for j in range(depth)
            ], OCAB(embed_dim, window_size, overlap_ratio, heads[i], qkv_bias=qkv_bias, mlp_ratio=mlp_ratio)),
                resi_connection)
            for i, depth in enumerate(depths)
        )
        self.apply(_init_weights)


_HAT_M = {"embed_dim": 180, "compress_ratio": 3, "squeeze_factor": 30}
# The HAT README lists SRx4 PSNR only (no SSIM): Set5 32.92 / Set14 29.15 / B100 27.97 / Urban100 27.87 /
# Manga109 32.35 for HAT-S (9.6M) and 33.04 / 29.23 / 28.00 / 27.97 / 32.48 for HAT (20.8M), DF2K-trained.
register_variant("hat_s", "hat", {"embed_dim": 144, "compress_ratio": 24, "squeeze_factor": 24},
                 paper_params={4: 9_600_000},
                 description="HAT-S (embed 144, 6x6 blocks, compress 24, squeeze 24, window 16), 9.6M; x4 Set5 32.92"
                 " (HAT README)")
register_variant("hat_m", "hat", _HAT_M, paper_params={4: 20_770_000},
                 description="HAT (the paper's base model; spandrel's 'medium'): embed 180, 6x6 blocks, 20.77M"
                 " (DRCT README; HAT README 20.8M); x4 Set5 33.04 (HAT README)")
register_variant("hat_l", "hat", {**_HAT_M, "depths": (6,) * 12, "num_heads": (6,) * 12},
                 description="HAT-L (12 groups of 6 blocks, ImageNet pre-training)")
register_variant("hat_real_gan", "hat", _HAT_M,
                 description="Real_HAT_GAN_SRx4 (the HAT configuration trained for real-world x4 SR with a GAN)")
