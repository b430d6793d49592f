"""GRL: Global, Regional and Local image restoration transformer (Li et al., CVPR 2023, "Efficient and Explicit
Modelling of Image Hierarchies for Image Restoration").

Each block splits one QKV projection between shifted window attention (half the channels, ``attn.window_attn``)
and anchored stripe attention (``attn.stripe_attn``: stripe pixels attend to anchors, the stripe pooled by
``anchor_window_down_factor``, which attend back to the stripe; stripes alternate horizontal / vertical and shift in
every other pair of blocks). Both use cosine attention with a learned logit scale and Swin v2's continuous position
bias (``attn_transform*.cpb_mlp``). GRL-B adds a channel-attention conv branch per block (``conv``, local
connection). Names follow the official code (ofsoundof/GRL-Image-Restoration, ``models/networks/grl.py`` and the
efficient block of ``models/common/mixed_attn_block_efficient.py``), as spandrel 0.4.2 reads it.

Reconstruction: ``pixelshuffle`` (GRL-B/S), ``pixelshuffledirect`` (GRL-T), ``nearest+conv`` (x4, real-world GRL-B)
and the restoration form (``upsampler=""``, scale 1: denoising, deblurring, JPEG; a global residual when input and
output channels agree). Models whose output has another channel count than the input are not read.

What a checkpoint does not store: the window and stripe sizes, unless the file carries the position tables (older
official files do; litesr then reads them from the table shapes and keeps the tables in its state dict,
``stored_tables``). Otherwise detection assumes what the released models use, as spandrel does: window 32 and stripes
64 x 64 for SR, window 16 and stripes 32 x 64 for ``nearest+conv``, window 8 and stripes 8 x 8 for restoration.

Size rule: ``forward`` pads the input to a multiple of max(window, stripes) (64 for the SR models; reflect, zeros
when the input is too small to reflect, as the official code) and crops back; ``pad_multiple`` declares the same
multiple so tiles are cut to whole stripes. The masks of a shifted stripe are built for the whole padded map
(nW x N x N floats per block type, as the official code): large inputs need tiles. Input range [0, 1].
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
from ._grl_ops import TABLE_NAMES, tables_for
from .base import SRModel
from .blocks import DerivedBuffers, DropPath, Mlp, Upsample, UpsampleOneStep, count_indexed, drop_path_rates
from .hat import CAB
from .swinir import RGB_MEAN, _init_weights, image_to_tokens, tokens_to_image


def window_partition(x: Tensor, size: Sequence[int]) -> Tensor:
    """(B, H, W, C) -> (B * nW, size[0] * size[1], C) of rectangular windows, row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // size[0], size[0], w // size[1], size[1], c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, size[0] * size[1], c)


def window_reverse(windows: Tensor, size: Sequence[int], h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: -> (B, H, W, C)."""
    b = windows.shape[0] // ((h // size[0]) * (w // size[1]))
    x = windows.view(b, h // size[0], w // size[1], size[0], size[1], -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


class AffineTransform(nn.Module):
    """Logit scale and continuous position bias of one cosine attention (``logit_scale``, ``cpb_mlp``)."""

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, table: Tensor, index: Tensor, mask: Tensor | None) -> Tensor:
        """softmax(cos(q, k) * scale + 16 sigmoid(bias) [+ mask]) v for (B_, heads, N, d) tensors whose query and key
        counts may differ (stripe <-> anchors); returns (B_, heads, N1, d), in the official order of operations."""
        b_, heads, n1, _ = q.shape
        n2 = k.shape[2]
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()
        bias = self.cpb_mlp(table).view(-1, heads)[index.view(-1)].view(n1, n2, -1).permute(2, 0, 1)
        attn = attn + 16 * torch.sigmoid(bias).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b_ // nw, nw, heads, n1, n2) + mask.to(attn.dtype)[None, :, None]).view(b_, heads, n1,
                                                                                                    n2)
        return attn.softmax(dim=-1) @ v


def _heads_first(t: Tensor, heads: int) -> Tensor:
    return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)


class WindowAttention(nn.Module):
    def __init__(self, window_size: int, num_heads: int, shift: bool) -> None:
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        self.shift_size = window_size // 2 if shift else 0
        self.attn_transform = AffineTransform(num_heads)

    def forward(self, qkv: Tensor, h: int, w: int, tables: dict[str, Tensor]) -> Tensor:
        b, n, c3 = qkv.shape
        grid = qkv.view(b, h, w, c3)
        if self.shift_size:
            grid = torch.roll(grid, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        size = (self.window_size, self.window_size)
        windows = window_partition(grid, size)
        b_, m, _ = windows.shape
        q, k, v = windows.reshape(b_, m, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        mask = tables["mask_w"] if self.shift_size else None
        x = self.attn_transform.attend(q, k, v, tables["table_w"], tables["index_w"], mask)
        x = window_reverse(x.transpose(1, 2).reshape(b_, m, c3 // 3), size, h, w)
        if self.shift_size:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        return x.reshape(b, n, c3 // 3)


class AnchorStripeAttention(nn.Module):
    """Stripe pixels -> anchors (``attn_transform1``), then anchors -> stripe pixels (``attn_transform2``)."""

    def __init__(self, stripe_size: tuple[int, int], vertical: bool, shift: bool, num_heads: int,
                 down_factor: int) -> None:
        super().__init__()
        self.stripe_size, self.vertical, self.shift = stripe_size, vertical, shift
        self.num_heads, self.down_factor = num_heads, down_factor
        self.attn_transform1 = AffineTransform(num_heads)
        self.attn_transform2 = AffineTransform(num_heads)

    def forward(self, qkv: Tensor, anchor: Tensor, h: int, w: int, tables: dict[str, Tensor]) -> Tensor:
        b, n, c3 = qkv.shape
        df, size = self.down_factor, self.stripe_size
        grid = qkv.view(b, h, w, c3)
        shift = [s // 2 for s in size] if self.shift else [0, 0]
        if self.shift:
            grid = torch.roll(grid, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            anchor = torch.roll(anchor, shifts=(-(shift[0] // df), -(shift[1] // df)), dims=(1, 2))
        windows = window_partition(grid, size)
        anchors = window_partition(anchor, [s // df for s in size])
        b_, m, _ = windows.shape
        q, k, v = windows.reshape(b_, m, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        anchors = _heads_first(anchors, self.num_heads)
        kind = "sv" if self.vertical else "sh"
        masks = (tables[f"mask_{kind}_a2w"], tables[f"mask_{kind}_w2a"]) if self.shift else (None, None)
        table = tables[f"table_{kind}"]
        x = self.attn_transform1.attend(anchors, k, v, table, tables[f"index_{kind}_a2w"], masks[0])
        x = self.attn_transform2.attend(q, anchors, x, table, tables[f"index_{kind}_w2a"], masks[1])
        x = window_reverse(x.transpose(1, 2).reshape(b_, m, c3 // 3), size, h, w)
        if self.shift:
            x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
        return x.reshape(b, n, c3 // 3)


def separable_conv(cin: int, cout: int, kernel: int, stride: int, bias: bool) -> nn.Sequential:
    """Depth-wise k x k (stride) then 1x1 (``body.0`` / ``body.1``; spandrel's form, no activation between)."""
    return nn.Sequential(nn.Conv2d(cin, cin, kernel, stride, kernel // 2, groups=cin, bias=bias),
                         nn.Conv2d(cin, cout, 1, bias=bias))


class QKVProjection(nn.Module):
    def __init__(self, dim: int, qkv_bias: bool, proj_type: str) -> None:
        super().__init__()
        self.conv = proj_type == "separable_conv"
        self.body = separable_conv(dim, dim * 3, 3, 1, qkv_bias) if self.conv else nn.Linear(dim, dim * 3,
                                                                                           bias=qkv_bias)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        return image_to_tokens(self.body(tokens_to_image(x, h, w))) if self.conv else self.body(x)


class PatchMerging(nn.Module):
    """2x2 space-to-depth then a bias-free linear map (``reduction``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * in_dim, out_dim, bias=False)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(x.view(b, -1, 4 * c))


class AnchorLinear(nn.Module):
    """Average (or max) pooling by the down factor, then a linear map (``reduction``)."""

    def __init__(self, dim: int, down_factor: int, pooling: str) -> None:
        super().__init__()
        self.down_factor = down_factor
        self.pooling = nn.MaxPool2d(down_factor, down_factor) if pooling == "maxpool" \
            else nn.AvgPool2d(down_factor, down_factor)
        self.reduction = nn.Linear(dim, dim // 2)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        return self.reduction(image_to_tokens(self.pooling(tokens_to_image(x, h, w))))


ANCHOR_TYPES = ("avgpool", "maxpool", "conv2d", "separable_conv", "patchmerging")


class AnchorProjection(nn.Module):
    """The anchors: the map reduced by ``down_factor`` to half the channels, in one operator or 2x stages."""

    def __init__(self, dim: int, proj_type: str, one_stage: bool, down_factor: int) -> None:
        super().__init__()
        if proj_type not in ANCHOR_TYPES:
            raise ConfigError(f"anchor_proj_type must be one of {', '.join(ANCHOR_TYPES)}, not {proj_type!r}")
        self.proj_type, self.body = proj_type, nn.ModuleList()
        if one_stage:
            if proj_type == "patchmerging":
                self.body.append(PatchMerging(dim, dim // 2))
            elif proj_type == "conv2d":
                self.body.append(nn.Conv2d(dim, dim // 2, down_factor + 1, down_factor, (down_factor + 1) // 2))
            elif proj_type == "separable_conv":
                self.body.append(separable_conv(dim, dim // 2, down_factor + 1, down_factor, True))
            else:
                self.body.append(AnchorLinear(dim, down_factor, proj_type))
            return
        if proj_type.endswith("pool"):
            raise ConfigError("pooling anchors have one stage only (anchor_one_stage=True)")
        for i in range(int(math.log2(down_factor))):
            cin = dim if i == 0 else dim // 2
            self.body.append(PatchMerging(cin, dim // 2) if proj_type == "patchmerging"
                             else nn.Conv2d(cin, dim // 2, 3, 2, 1) if proj_type == "conv2d"
                             else separable_conv(cin, dim // 2, 3, 2, True))

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        """(B, H*W, C) -> (B, H/df, W/df, C/2)."""
        if "conv" in self.proj_type:
            y = tokens_to_image(x, h, w)
            for m in self.body:
                y = m(y)
            return y.permute(0, 2, 3, 1)
        if self.proj_type.endswith("pool"):
            df = self.body[0].down_factor
            return self.body[0](x, h, w).view(x.shape[0], h // df, w // df, -1)
        for i, m in enumerate(self.body):
            x = m(x, h >> i, w >> i)
        stages = len(self.body)
        return x.view(x.shape[0], h >> stages, w >> stages, -1)


class MixedAttention(nn.Module):
    def __init__(self, dim: int, heads_window: int, heads_stripe: int, window_size: int, stripe: tuple[int, int],
                 *, block: int, qkv_bias: bool, qkv_proj_type: str, anchor_proj_type: str, anchor_one_stage: bool,
                 down_factor: int, stripe_shift: bool) -> None:
        super().__init__()
        vertical = block % 2 == 1
        self.qkv = QKVProjection(dim, qkv_bias, qkv_proj_type)
        self.anchor = AnchorProjection(dim, anchor_proj_type, anchor_one_stage, down_factor)
        self.window_attn = WindowAttention(window_size, heads_window, shift=block % 2 == 0)
        self.stripe_attn = AnchorStripeAttention(stripe[::-1] if vertical else stripe, vertical,
                                                 stripe_shift and block % 4 in (2, 3), heads_stripe, down_factor)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, h: int, w: int, tables: dict[str, Tensor]) -> Tensor:
        c = x.shape[-1]
        qkv_window, qkv_stripe = torch.split(self.qkv(x, h, w), c * 3 // 2, dim=-1)
        anchor = self.anchor(x, h, w)
        x_window = self.window_attn(qkv_window, h, w, tables)
        x_stripe = self.stripe_attn(qkv_stripe, anchor, h, w, tables)
        return self.proj(torch.cat([x_window, x_stripe], dim=-1))


class GRLBlock(nn.Module):
    """Post-norm block: x + norm1(attention(x)) [+ CAB(x)], then x + norm2(mlp(x))."""

    def __init__(self, dim: int, attn: MixedAttention, *, mlp_ratio: float, local_connection: bool,
                 drop_path: float) -> None:
        super().__init__()
        self.attn = attn
        self.norm1 = nn.LayerNorm(dim)
        if local_connection:
            self.conv = CAB(dim, 4, 18)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, h: int, w: int, tables: dict[str, Tensor]) -> Tensor:
        y = x + self.drop_path(self.norm1(self.attn(x, h, w, tables)))
        if hasattr(self, "conv"):
            y = y + image_to_tokens(self.conv(tokens_to_image(x, h, w)))
        return y + self.drop_path(self.norm2(self.mlp(y)))


class TokenLinear(nn.Linear):
    """conv_type 'linear': a linear map over channels of an image-form tensor."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        h, w = x.shape[-2:]
        return tokens_to_image(super().forward(image_to_tokens(x)), h, w)


CONV_TYPES = ("1conv", "3conv", "1conv1x1", "linear")


def last_conv(kind: str, dim: int) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":
        return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim // 4, 1), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim, 3, 1, 1))
    if kind == "1conv1x1":
        return nn.Conv2d(dim, dim, 1)
    if kind == "linear":
        return TokenLinear(dim, dim)
    raise ConfigError(f"conv_type must be one of {', '.join(CONV_TYPES)}, not {kind!r}")


class TransformerStage(nn.Module):
    def __init__(self, blocks: list[GRLBlock], dim: int, conv_type: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.conv = last_conv(conv_type, dim)

    def forward(self, x: Tensor, h: int, w: int, tables: dict[str, Tensor]) -> Tensor:
        y = x
        for block in self.blocks:
            y = block(y, h, w, tables)
        return image_to_tokens(self.conv(tokens_to_image(y, h, w))) + x


class _Up(nn.Module):
    """Holds the upsampler under ``up`` (the official ``upsample.up.*`` keys)."""

    def __init__(self, up: nn.Module) -> None:
        super().__init__()
        self.up = up

    def forward(self, x: Tensor) -> Tensor:
        return self.up(x)


UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")


def _anchor(sd: StateDict) -> tuple[str, bool, int]:
    """(anchor_proj_type, anchor_one_stage, down factor) from the anchor keys (4, the released value, where the
    keys do not tell; pooling and avg/max are indistinguishable: avgpool, as released)."""
    a = "layers.0.blocks.0.attn.anchor.body."
    stages = count_indexed(sd, re.escape(a) + r"(\d+)\.")
    if a + "0.reduction.weight" in sd:
        kind = "avgpool" if a + "0.reduction.bias" in sd else "patchmerging"
        return kind, stages == 1, 4 if stages == 1 else 2**stages
    kind = "conv2d" if a + "0.weight" in sd else "separable_conv"
    if stages > 1:
        return kind, False, 2**stages
    weight = sd[a + "0.weight"] if kind == "conv2d" else sd[a + "0.0.weight"]
    return kind, True, int(weight.shape[2]) - 1


def _tail(sd: StateDict, in_chans: int) -> tuple[str, int, int]:
    """(upsampler, scale, output channels)."""
    if "upsample.up.0.weight" in sd and "conv_before_upsample.0.weight" in sd:
        scale = 1
        for i in range(count_indexed(sd, r"upsample\.up\.(\d+)\.weight")):
            weight = sd[f"upsample.up.{2 * i}.weight"]
            scale *= math.isqrt(weight.shape[0] // weight.shape[1])
        return "pixelshuffle", scale, int(sd["conv_last.weight"].shape[0])
    if "upsample.up.0.weight" in sd:
        return "pixelshuffledirect", math.isqrt(sd["upsample.up.0.weight"].shape[0] // in_chans), in_chans
    if "conv_up1.weight" in sd:
        return "nearest+conv", 4, int(sd["conv_last.weight"].shape[0])
    return "", 1, int(sd["conv_last.weight"].shape[0])


def _detect(sd: StateDict) -> dict[str, Any] | None:
    b0 = "layers.0.blocks.0.attn."
    if "norm_start.weight" not in sd or b0 + "stripe_attn.attn_transform1.logit_scale" not in sd:
        return None
    embed_dim, in_chans = (int(n) for n in sd["conv_first.weight"].shape[:2])
    upsampler, scale, out_chans = _tail(sd, in_chans)
    if out_chans != in_chans:
        return None
    n_layers = count_indexed(sd, r"layers\.(\d+)\.blocks\.0\.norm1\.weight")
    if "conv_after_body.weight" not in sd:
        conv_type = "3conv"
    else:
        shape = sd["conv_after_body.weight"].shape
        conv_type = "linear" if len(shape) == 2 else "1conv1x1" if shape[2] == 1 else "1conv"
    anchor_type, one_stage, down = _anchor(sd)
    stored = "table_w" in sd and "table_sh" in sd and "index_sh_a2w" in sd
    if stored:  # the sizes from the stored tables
        window = (sd["table_w"].shape[1] + 1) // 2
        pairs = sd["index_sh_a2w"].shape
        down = math.isqrt(max(pairs) // min(pairs))
        stripe = tuple(round((sd["table_sh"].shape[i] + 1) / (1 + 1 / down)) for i in (1, 2))
        img_size = math.isqrt(sd["mask_w"].shape[0]) * window if "mask_w" in sd else 64
    else:  # what the released models use (not in the file)
        window, stripe = {"": (8, (8, 8)), "nearest+conv": (16, (32, 64))}.get(upsampler, (32, (64, 64)))
        img_size = 64
    qkv_linear = b0 + "qkv.body.weight" in sd
    return {
        "scale": scale, "in_chans": in_chans, "embed_dim": embed_dim, "upsampler": upsampler,
        "depths": tuple(count_indexed(sd, rf"layers\.{i}\.blocks\.(\d+)\.norm1\.weight") for i in range(n_layers)),
        "num_heads_window": tuple(
            int(sd[f"layers.{i}.blocks.0.attn.window_attn.attn_transform.logit_scale"].shape[0])
            for i in range(n_layers)),
        "num_heads_stripe": tuple(
            int(sd[f"layers.{i}.blocks.0.attn.stripe_attn.attn_transform1.logit_scale"].shape[0])
            for i in range(n_layers)),
        "window_size": int(window), "stripe_size": (int(stripe[0]), int(stripe[1])),
        "mlp_ratio": sd["layers.0.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        "qkv_bias": (b0 + "qkv.body.bias" if qkv_linear else b0 + "qkv.body.0.bias") in sd,
        "qkv_proj_type": "linear" if qkv_linear else "separable_conv",
        "anchor_proj_type": anchor_type, "anchor_one_stage": one_stage, "anchor_window_down_factor": down,
        "local_connection": "layers.0.blocks.0.conv.cab.0.weight" in sd, "conv_type": conv_type,
        "stored_tables": stored, "img_size": img_size,
    }


@register_arch(
    "grl", scales=(2, 3, 4, 1), paper="Li et al., CVPR 2023 (GRL)", detect=_detect,
    tiny={"embed_dim": 16, "depths": (2,), "num_heads_window": (2,), "num_heads_stripe": (2,), "window_size": 4,
          "stripe_size": (8, 8), "anchor_window_down_factor": 2, "upsampler": "pixelshuffledirect"},
)
class GRL(DerivedBuffers, SRModel):
    """GRL: transformer stages of mixed window / anchored-stripe attention blocks. Defaults are GRL-S (x4 config:
    embed 128, 4 stages of 4 blocks, 2 + 2 heads, window 32, stripes 64 x 64, anchors pooled 4x)."""

    derived_buffers = TABLE_NAMES
    # spandrel 0.4.2 declares this model unsafe in fp16 (supports_half=False); litesr follows, not measured here
    safe_precisions = ("fp32", "bf16")

    def __init__(self, scale: int = 4, in_chans: int = 3, embed_dim: int = 128, depths: Sequence[int] = (4,) * 4,
                 num_heads_window: Sequence[int] = (2,) * 4, num_heads_stripe: Sequence[int] = (2,) * 4,
                 window_size: int = 32, stripe_size: Sequence[int] = (64, 64), mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, qkv_proj_type: str = "linear", anchor_proj_type: str = "avgpool",
                 anchor_one_stage: bool = True, anchor_window_down_factor: int = 4, local_connection: bool = False,
                 conv_type: str = "1conv", upsampler: str = "pixelshuffle", stripe_shift: bool = True,
                 img_range: float = 1.0, drop_path_rate: float = 0.1, stored_tables: bool = False,
                 img_size: int = 64) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        stripe = (int(stripe_size[0]), int(stripe_size[1]))
        if len(num_heads_window) != len(depths) or len(num_heads_stripe) != len(depths):
            raise ConfigError("num_heads_window and num_heads_stripe need one entry per stage (len(depths))")
        if upsampler not in UPSAMPLERS:
            raise ConfigError(f"upsampler must be one of {', '.join(map(repr, UPSAMPLERS))}, not {upsampler!r}")
        if (upsampler == "") != (scale == 1) or (upsampler == "nearest+conv" and scale != 4):
            raise ConfigError(f"upsampler {upsampler!r} does not make x{scale}")
        if in_chans not in (1, 3):
            raise ConfigError(f"in_chans must be 3 (RGB) or 1 (Y), not {in_chans}")
        down = anchor_window_down_factor
        if any(s % down for s in stripe):
            raise ConfigError(f"stripe_size {stripe}: the sides must be multiples of the down factor {down}")
        self.scale, self.img_range, self.upsampler = scale, img_range, upsampler
        self.window_size, self.stripe_size, self.down_factor = window_size, stripe, down
        self.pad_multiple = max(window_size, *stripe)
        self.color_space = "rgb" if in_chans == 3 else "y"
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        if stored_tables:  # older official files carry them (for the training patch): kept for strict loading
            if img_size % self.pad_multiple:
                raise ConfigError(f"img_size {img_size} must be a multiple of {self.pad_multiple}")
            for name, table in tables_for(img_size, img_size, window_size, stripe, down).items():
                self.register_buffer(name, table)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.norm_start = nn.LayerNorm(embed_dim)
        rates = drop_path_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList(
            TransformerStage([
                GRLBlock(embed_dim, MixedAttention(
                    embed_dim, int(num_heads_window[i]), int(num_heads_stripe[i]), window_size, stripe, block=j,
                    qkv_bias=qkv_bias, qkv_proj_type=qkv_proj_type, anchor_proj_type=anchor_proj_type,
                    anchor_one_stage=anchor_one_stage, down_factor=down, stripe_shift=stripe_shift),
                    mlp_ratio=mlp_ratio, local_connection=local_connection, drop_path=rates[i][j])
                for j in range(d)
            ], embed_dim, conv_type)
            for i, d in enumerate(depths)
        )
        self.norm_end = nn.LayerNorm(embed_dim)
        self.conv_after_body = last_conv(conv_type, embed_dim)
        if upsampler in ("pixelshuffle", "nearest+conv"):
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, 64, 3, 1, 1), nn.LeakyReLU(inplace=True))
        if upsampler == "pixelshuffle":
            try:
                self.upsample = _Up(Upsample(scale, 64))
            except ValueError as exc:
                raise ConfigError(f"upsampler 'pixelshuffle': {exc}") from None
            self.conv_last = nn.Conv2d(64, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = _Up(UpsampleOneStep(scale, embed_dim, in_chans))
        elif upsampler == "nearest+conv":
            self.conv_up1 = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
            self.conv_last = nn.Conv2d(64, in_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        self.apply(_init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        tables = {k: v.to(x.dtype) if v.is_floating_point() else v
                  for k, v in tables_for(h, w, self.window_size, self.stripe_size, self.down_factor, x.device).items()}
        tokens = self.norm_start(image_to_tokens(x))
        for layer in self.layers:
            tokens = layer(tokens, h, w, tables)
        return tokens_to_image(self.norm_end(tokens), h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:  # reflect, zeros where the input is too small to reflect (the official fallback)
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "constant")
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        first = self.conv_first(x)
        features = self.conv_after_body(self.forward_features(first)) + first
        if self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(features)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.upsample(features)
        elif self.upsampler == "nearest+conv":
            y = self.conv_before_upsample(features)
            y = self.lrelu(self.conv_up1(F.interpolate(y, scale_factor=2, mode="nearest")))
            y = self.lrelu(self.conv_up2(F.interpolate(y, scale_factor=2, mode="nearest")))
            out = self.conv_last(self.lrelu(self.conv_hr(y)))
        else:
            out = x + self.conv_last(features)
        return (out / self.img_range + mean)[..., : h * self.scale, : w * self.scale]


_SR = {"window_size": 32, "stripe_size": (64, 64), "anchor_window_down_factor": 4, "mlp_ratio": 2.0}
register_variant("grl_b", "grl", {**_SR, "embed_dim": 180, "depths": (4, 4, 8, 8, 8, 4, 4),
                                  "num_heads_window": (3,) * 7, "num_heads_stripe": (3,) * 7,
                                  "local_connection": True},
                 description="GRL-B (embed 180, stages 4-4-8-8-8-4-4, 3 + 3 heads, local CAB branch, window 32,"
                 " stripes 64x64; official grl_base.yaml with the SR experiment sizes)")
register_variant("grl_s", "grl", {**_SR, "embed_dim": 128, "depths": (4,) * 4, "num_heads_window": (2,) * 4,
                                  "num_heads_stripe": (2,) * 4},
                 description="GRL-S (embed 128, 4 stages of 4, 2 + 2 heads, window 32, stripes 64x64; grl_small.yaml)")
register_variant("grl_t", "grl", {**_SR, "embed_dim": 64, "depths": (4,) * 4, "num_heads_window": (2,) * 4,
                                  "num_heads_stripe": (2,) * 4, "upsampler": "pixelshuffledirect"},
                 description="GRL-T (embed 64, 4 stages of 4, 2 + 2 heads, pixelshuffledirect, window 32, stripes"
                 " 64x64; grl_tiny.yaml)")
