"""SwinIR: Image Restoration Using Swin Transformer (Liang et al., ICCVW 2021).

State-dict names follow the official code (JingyunLiang/SwinIR, ``models/network_swinir.py``): ``conv_first``,
``patch_embed.norm``, ``layers.i.residual_group.blocks.j.{norm1,attn,norm2,mlp}``, ``layers.i.conv``, ``norm``,
``conv_after_body`` and the reconstruction (``upsample`` / ``conv_before_upsample`` / ``conv_up*`` / ``conv_last``).

Any input size works: the input is reflect-padded to a multiple of the window inside ``forward`` and the output
cropped back, and the shifted-window attention mask is computed for the padded size on every call.

Buffers. Official checkpoints store each block's ``attn.relative_position_index`` and, for shifted blocks, an
``attn_mask`` sized for the training patch (``img_size``: 64 -> 64 windows, 48 -> 36 windows). litesr keeps both as
persistent buffers with the official shapes, so official files load with ``strict=True`` and litesr files load in
the official code; their values are recomputed at construction and loading keeps the recomputed values
(:class:`~litesr.archs.blocks.DerivedBuffers`). The stored ``attn_mask`` is never used: ``forward`` builds the mask
for the actual size. ``img_size=None`` leaves ``attn_mask`` out of the state dict (compact files, about 1 MB less
per shifted block).
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
from .blocks import (
    DerivedBuffers,
    DropPath,
    Mlp,
    Upsample,
    UpsampleOneStep,
    count_indexed,
    drop_path_rates,
    pad_to_multiple,
    relative_position_index,
    shifted_window_mask,
    upsample_scale,
    window_partition,
    window_reverse,
)

RGB_MEAN = (0.4488, 0.4371, 0.4040)
NUM_FEAT = 64  # channels of the classical / real-world reconstruction head, fixed in the official code


class WindowAttention(DerivedBuffers):
    """Window multi-head self-attention with a learned relative position bias table (Swin v1)."""

    derived_buffers = ("relative_position_index",)

    def __init__(self, dim: int, window_size: int, num_heads: int, *, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, persistent_index: bool = True) -> None:
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # HAT-style models store one index for all blocks at the top level: theirs is not in the block's state dict.
        self.register_buffer("relative_position_index", relative_position_index(window_size),
                             persistent=persistent_index)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> Tensor:
        """(heads, N, N) bias of each token pair, gathered from the table."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        return bias.permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B*nW, N, C); mask: (nW, N, N) additive, or None."""
        b_, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj_drop(self.proj(windowed_attention(q, k, v, self.position_bias(), mask, self.scale,
                                                           self.attn_drop if self.training else 0.0)))


def use_fused_attention(q: Tensor) -> bool:
    """Whether window attention runs PyTorch's fused kernel (on CUDA) instead of the official sequence of ops."""
    return q.is_cuda


def windowed_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, mask: Tensor | None, scale: float,
                       dropout: float = 0.0, *, logit_scale: Tensor | None = None) -> Tensor:
    """softmax(q k^T * scale + bias [+ mask]) v for (B*nW, heads, N, d) windows; returns (B*nW, N, heads*d).

    The shift mask (nW, N, N) repeats over the batch: windows are viewed as (B, nW, ...) so it broadcasts. On CUDA
    the fused kernel runs; elsewhere the operations of the official code, in its order (bit-identical results):
    Swin v1 scales q before the product, Swin v2 (``logit_scale``, per head) scales the cosine logits after it.
    """
    b_, heads, n, d = q.shape
    if mask is not None:
        nw = mask.shape[0]
        q, k, v = (t.reshape(b_ // nw, nw, heads, n, d) for t in (q, k, v))
    if use_fused_attention(q):
        if logit_scale is not None:
            q = q * logit_scale
        if mask is not None:
            bias = bias.unsqueeze(0) + mask.unsqueeze(1).to(bias.dtype)  # nW, heads, N, N
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout, scale=scale)
    else:
        logits = (q * scale) @ k.transpose(-2, -1) if logit_scale is None else (q @ k.transpose(-2, -1)) * logit_scale
        logits = logits + bias
        if mask is not None:  # added to the logits, as the official code does: no (nW, heads, N, N) sum per block
            logits = logits + mask.unsqueeze(1).to(logits.dtype)
        attn = logits.softmax(dim=-1)
        out = F.dropout(attn, dropout) @ v if dropout else attn @ v
    return out.reshape(b_, heads, n, d).transpose(1, 2).reshape(b_, n, heads * d)


class SwinTransformerBlock(nn.Module):
    """Pre-norm Swin block: (shifted) window attention then MLP, each with a residual connection."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, *, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, drop_path: float = 0.0, img_size: int | None = None) -> None:
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = self.make_attention(dim, window_size, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if shift_size > 0 and img_size is not None:
            # Official layout only: the mask for the training patch; forward computes its own for the actual size.
            self.register_buffer("attn_mask", shifted_window_mask(img_size, img_size, window_size, shift_size))

    def make_attention(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool) -> nn.Module:
        return WindowAttention(dim, window_size, num_heads, qkv_bias=qkv_bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        own, key = getattr(self, "attn_mask", None), prefix + "attn_mask"
        if own is not None and key in state_dict and tuple(state_dict[key].shape) == tuple(own.shape):
            state_dict[key] = own  # recomputed, never read: keep ours
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def window_attention(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        """Cyclic shift, partition, attend, merge, shift back: (B, H*W, C) -> (B, H*W, C)."""
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        x = x.view(b, h, w, c)
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, ws).reshape(-1, ws * ws, c)
        windows = self.attn(windows, mask if shift else None).view(-1, ws, ws, c)
        x = window_reverse(windows, ws, h, w)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x.reshape(b, h * w, c)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        x = x + self.drop_path(self.window_attention(self.norm1(x), h, w, mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def residual_conv(dim: int, kind: str) -> nn.Module:
    """The conv closing a residual group: '1conv' (3x3) or '3conv' (3x3 to dim/4, 1x1, 3x3 back, LeakyReLU 0.2)."""
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, 1, 1),
        )
    raise ConfigError(f"resi_connection must be '1conv' or '3conv', not {kind!r}")


def tokens_to_image(x: Tensor, h: int, w: int) -> Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)


def image_to_tokens(x: Tensor) -> Tensor:
    return x.flatten(2).transpose(1, 2)


class BasicLayer(nn.Module):
    """A stage of Swin blocks; odd blocks shift their windows by half a window."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        for block in self.blocks:
            x = block(x, h, w, mask)
        return x


class PatchEmbed(nn.Module):
    """Image -> tokens, optionally normalised (SwinIR: no projection; Swin2SR adds a 1x1 ``proj``)."""

    def __init__(self, dim: int, *, norm: bool, proj: bool = False) -> None:
        super().__init__()
        if proj:
            self.proj = nn.Conv2d(dim, dim, 1)
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "proj"):
            x = self.proj(x)
        x = image_to_tokens(x)
        return self.norm(x) if self.norm is not None else x


class RSTB(nn.Module):
    """Residual Swin Transformer Block: a stage of Swin blocks, a conv on the image form, a residual connection."""

    def __init__(self, dim: int, blocks: list[nn.Module], resi_connection: str, *, embed_proj: bool = False) -> None:
        super().__init__()
        self.residual_group = BasicLayer(blocks)
        self.conv = residual_conv(dim, resi_connection)
        self.patch_embed = PatchEmbed(dim, norm=False, proj=embed_proj)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        y = tokens_to_image(self.residual_group(x, h, w, mask), h, w)
        return self.patch_embed(self.conv(y)) + x


def _as_tuple(values: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    out = (values,) * n if isinstance(values, int) else tuple(int(v) for v in values)
    if len(out) != n:
        raise ConfigError(f"{name} has {len(out)} entries but depths has {n}")
    return out


def detect_swin_tail(sd: StateDict, in_chans: int) -> tuple[str, int]:
    """(upsampler, scale) of a SwinIR-family tail (SwinIR, SRFormer ...) from its state-dict shapes."""
    if "conv_before_upsample.0.weight" in sd and "conv_up1.weight" in sd:
        return "nearest+conv", 2 ** count_indexed(sd, r"conv_up(\d+)\.weight$")
    if "conv_before_upsample.0.weight" in sd:
        return "pixelshuffle", upsample_scale(sd, "upsample")
    if "upsample.0.weight" in sd:
        return "pixelshuffledirect", math.isqrt(sd["upsample.0.weight"].shape[0] // in_chans)
    return "", 1


def detect_swin_common(sd: StateDict, heads_key: str, heads_dim: int) -> dict[str, Any] | None:
    """Hyper-parameters SwinIR and Swin2SR state dicts share; dimension ``heads_dim`` of each stage's first-block
    ``heads_key`` tensor is its number of heads."""
    block0 = "layers.0.residual_group.blocks.0."
    if "conv_first.weight" not in sd or block0 + "norm1.weight" not in sd or block0 + heads_key not in sd:
        return None
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    n_layers = count_indexed(sd, r"layers\.(\d+)\.residual_group\.blocks\.0\.norm1\.weight")
    depths = tuple(count_indexed(sd, rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.norm1\.weight")
                   for i in range(n_layers))
    heads = tuple(sd[f"layers.{i}.residual_group.blocks.0.{heads_key}"].shape[heads_dim] for i in range(n_layers))
    window_size = math.isqrt(sd[block0 + "attn.relative_position_index"].shape[0])
    mask_key = next((k for k in sd if re.match(r"layers\.\d+\.residual_group\.blocks\.\d+\.attn_mask$", k)), None)
    img_size = None if mask_key is None else math.isqrt(sd[mask_key].shape[0]) * window_size
    upsampler, scale = detect_swin_tail(sd, in_chans)
    return {
        "scale": scale, "in_chans": int(in_chans), "embed_dim": int(embed_dim), "depths": depths,
        "num_heads": heads, "window_size": window_size,
        "mlp_ratio": sd[block0 + "mlp.fc1.weight"].shape[0] / embed_dim,
        "patch_norm": "patch_embed.norm.weight" in sd,
        # Not stored in the weights: the official JPEG models (window 7) are the ones trained with img_range 255.
        "img_range": 255.0 if window_size == 7 else 1.0,
        "upsampler": upsampler,
        "resi_connection": "3conv" if "conv_after_body.0.weight" in sd else "1conv",
        "img_size": img_size,
    }


def _detect(sd: StateDict) -> dict[str, Any] | None:
    unshuffled = "conv_first.1.weight" in sd and "conv_first.weight" not in sd
    if unshuffled:  # a pixel-unshuffle in front of conv_first (spandrel's ``start_unshuffle``)
        sd = {**sd, "conv_first.weight": sd["conv_first.1.weight"]}
    config = detect_swin_common(sd, "attn.relative_position_bias_table", 1)
    if config is None:
        return None
    config["qkv_bias"] = "layers.0.residual_group.blocks.0.attn.qkv.bias" in sd
    if unshuffled:
        folded = config["in_chans"]
        out_ch = int(sd["conv_last.weight"].shape[0]) if "conv_last.weight" in sd else 3
        fold = math.isqrt(folded // out_ch)
        if fold < 2 or fold**2 * out_ch != folded or config["scale"] % fold:
            return None
        tail_scale = config["scale"]
        if config["upsampler"] == "pixelshuffledirect":  # the one-step tail's width counted the folded channels
            tail_scale = math.isqrt(sd["upsample.0.weight"].shape[0] // out_ch)
        config.update(in_chans=out_ch, start_unshuffle=fold, scale=tail_scale // fold)
    return config


def build_swin_tail(host: nn.Module, dim: int, out_ch: int, scale: int, upsampler: str) -> None:
    """SwinIR's reconstruction layers set on ``host`` under the official names (``conv_before_upsample``,
    ``upsample``, ``conv_up*``, ``conv_hr``, ``conv_last``), for every SwinIR-family model with this tail."""
    if upsampler == "pixelshuffle":
        host.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True))
        host.upsample = _upsample(scale, NUM_FEAT)
        host.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
    elif upsampler == "pixelshuffledirect":
        host.upsample = UpsampleOneStep(scale, dim, out_ch)
    elif upsampler == "nearest+conv":
        if scale not in (2, 4, 8):
            raise ConfigError(f"upsampler 'nearest+conv' supports x2, x4 and x8, not x{scale}")
        host.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True))
        for i in range(1, int(math.log2(scale)) + 1):
            setattr(host, f"conv_up{i}", nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1))
        host.conv_hr = nn.Conv2d(NUM_FEAT, NUM_FEAT, 3, 1, 1)
        host.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
        host.lrelu = nn.LeakyReLU(0.2, inplace=True)
    else:
        host.conv_last = nn.Conv2d(dim, out_ch, 3, 1, 1)


def run_swin_tail(host: nn.Module, features: Tensor, inp: Tensor, scale: int) -> Tensor:
    """The reconstruction :func:`build_swin_tail` made, on the deep features (``inp``: the input, for the
    residual tail without upsampler)."""
    upsampler = host.upsampler
    if upsampler == "pixelshuffle":
        return host.conv_last(host.upsample(host.conv_before_upsample(features)))
    if upsampler == "pixelshuffledirect":
        return host.upsample(features)
    if upsampler == "nearest+conv":
        x = host.conv_before_upsample(features)
        for i in range(1, int(math.log2(scale)) + 1):
            x = host.lrelu(getattr(host, f"conv_up{i}")(F.interpolate(x, scale_factor=2, mode="nearest")))
        return host.conv_last(host.lrelu(host.conv_hr(x)))
    return inp + host.conv_last(features)


@register_arch(
    "swinir", scales=(2, 3, 4, 8, 1), paper="Liang et al., ICCVW 2021 (SwinIR)",
    detect=_detect,
    tiny={"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 2), "window_size": 4, "img_size": 16},
)
class SwinIR(SRModel):
    """SwinIR: residual Swin Transformer blocks between a conv head and an SR reconstruction.

    ``upsampler``: 'pixelshuffledirect' (lightweight: one conv + PixelShuffle), 'pixelshuffle' (classical: conv,
    LeakyReLU, (conv + PixelShuffle) per factor, conv), 'nearest+conv' (real-world: nearest x2 + conv per factor) or
    '' (scale 1: denoising / JPEG, with a global residual; scale 1 implies it). ``img_range`` multiplies the
    mean-shifted input (255 for the official JPEG models). ``start_unshuffle`` > 1 folds the input by that factor
    (``conv_first.0`` PixelUnshuffle, ``conv_first.1`` conv: a community layout spandrel reads) in front of a tail of
    ``scale * start_unshuffle``. Defaults are SwinIR-light.
    """

    block_class: type[SwinTransformerBlock] = SwinTransformerBlock
    embed_proj = False  # Swin2SR puts a 1x1 conv in its patch embeddings
    upsamplers: tuple[str, ...] = ("pixelshuffledirect", "pixelshuffle", "nearest+conv", "")

    def __init__(self, scale: int = 2, in_chans: int = 3, embed_dim: int = 60, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: int | Sequence[int] = (6, 6, 6, 6), window_size: int = 8, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, patch_norm: bool = True, drop_path_rate: float = 0.1, img_range: float = 1.0,
                 upsampler: str = "pixelshuffledirect", resi_connection: str = "1conv",
                 img_size: int | None = 64, start_unshuffle: int = 1) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        heads = _as_tuple(num_heads, len(depths), "num_heads")
        if upsampler not in self.upsamplers:
            raise ConfigError(f"upsampler must be one of {', '.join(map(repr, self.upsamplers))}, not {upsampler!r}")
        if scale == 1 and start_unshuffle == 1:
            upsampler = ""  # scale 1 (denoising, JPEG) always uses the restoration head with a global residual
        elif upsampler == "":
            raise ConfigError(f"upsampler '' is the scale-1 restoration head; x{scale} (start_unshuffle "
                              f"{start_unshuffle}) needs an SR upsampler")
        self.check_img_size(img_size, window_size)
        if start_unshuffle < 1 or (start_unshuffle > 1 and upsampler == ""):
            raise ConfigError(f"start_unshuffle {start_unshuffle}: must be 1, or > 1 with an SR upsampler")
        if any(embed_dim % n for n in heads):
            raise ConfigError(f"embed_dim {embed_dim} is not divisible by every num_heads entry {heads}")
        self.scale, self.upsampler, self.window_size = scale, upsampler, window_size
        self.img_range, self.start_unshuffle = img_range, start_unshuffle
        self.color_space = "rgb" if in_chans == 3 else "y"
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)

        if start_unshuffle > 1:
            self.conv_first = nn.Sequential(nn.PixelUnshuffle(start_unshuffle),
                                            nn.Conv2d(in_chans * start_unshuffle**2, embed_dim, 3, 1, 1))
        else:
            self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=patch_norm, proj=self.embed_proj)
        self.layers = self.make_layers(embed_dim, depths, heads, window_size, mlp_ratio, qkv_bias, drop_path_rate,
                                       resi_connection, img_size)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        self.make_reconstruction(embed_dim, in_chans, scale * start_unshuffle, upsampler)
        self.apply(_init_weights)

    def check_img_size(self, img_size: int | None, window_size: int) -> None:
        if img_size is not None and (img_size <= window_size or img_size % window_size):
            raise ConfigError(f"img_size {img_size} must be a multiple of window_size {window_size} larger than it")

    def make_layers(self, dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window_size: int,
                    mlp_ratio: float, qkv_bias: bool, drop_path_rate: float, resi_connection: str,
                    img_size: int | None) -> nn.ModuleList:
        rates = drop_path_rates(drop_path_rate, depths)
        return nn.ModuleList(
            RSTB(dim, [
                self.block_class(dim, heads[i], window_size, 0 if j % 2 == 0 else window_size // 2,
                                 mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=rates[i][j], img_size=img_size)
                for j in range(depth)
            ], resi_connection, embed_proj=self.embed_proj)
            for i, depth in enumerate(depths)
        )

    def make_reconstruction(self, dim: int, out_ch: int, scale: int, upsampler: str) -> None:
        build_swin_tail(self, dim, out_ch, scale, upsampler)

    def shift_mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        """The shifted-window mask for an (h, w) padded map, shared by all shifted blocks of this forward."""
        if not any(len(layer.residual_group.blocks) > 1 for layer in self.layers):
            return None
        return shifted_window_mask(h, w, self.window_size, self.window_size // 2, device=device)

    def forward_features(self, x: Tensor, layers: nn.ModuleList | None = None) -> Tensor:
        h, w = x.shape[-2:]
        mask = self.shift_mask(h, w, x.device)
        tokens = self.patch_embed(x)
        for layer in self.layers if layers is None else layers:
            tokens = layer(tokens, h, w, mask)
        return tokens_to_image(self.norm(tokens), h, w)

    def deep_features(self, x: Tensor) -> Tensor:
        """conv_first, the residual Swin stages and conv_after_body, with the long skip connection."""
        x = self.conv_first(x)
        return self.conv_after_body(self.forward_features(x)) + x

    def reconstruct(self, x: Tensor, inp: Tensor) -> Tensor:
        return run_swin_tail(self, self.deep_features(x), inp, self.scale * self.start_unshuffle)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x, _, _ = pad_to_multiple(x, self.window_size * self.start_unshuffle)  # whole windows after the fold
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        out = self.reconstruct(x, x) / self.img_range + mean
        return out[..., : h * self.scale, : w * self.scale]


def _upsample(scale: int, num_feat: int) -> Upsample:
    try:
        return Upsample(scale, num_feat)
    except ValueError as exc:
        raise ConfigError(f"upsampler 'pixelshuffle': {exc}") from None


def _init_weights(m: nn.Module) -> None:
    """The official initialisation: truncated-normal Linear weights (std 0.02), zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


_CLASSICAL = {"embed_dim": 180, "depths": (6,) * 6, "num_heads": (6,) * 6, "upsampler": "pixelshuffle"}
# SwinIR Table 3 prints 878K/886K/897K, which leave out the relative-position-bias tables (24 x 225 x 6 = 32,400
# parameters); counting them, x2 has 910,152.
_LIGHT_PARAMS = {2: 878_000, 3: 886_000, 4: 897_000}
register_variant("swinir", "swinir", {}, paper_params=_LIGHT_PARAMS,
                 description="SwinIR-light (embed 60, depths 6x4, heads 6, window 8, mlp 2, pixelshuffledirect)")
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_SWINIR_LIGHT_PUBLISHED = {
    2: {"Set5": (38.14, 0.9611), "Set14": (33.86, 0.9206), "B100": (32.31, 0.9012), "Urban100": (32.76, 0.9340),
        "Manga109": (39.12, 0.9783)},
    3: {"Set5": (34.62, 0.9289), "Set14": (30.54, 0.8463), "B100": (29.20, 0.8082), "Urban100": (28.66, 0.8624),
        "Manga109": (33.98, 0.9478)},
    4: {"Set5": (32.44, 0.8976), "Set14": (28.77, 0.7858), "B100": (27.69, 0.7406), "Urban100": (26.47, 0.7980),
        "Manga109": (30.92, 0.9151)},
}
register_variant("swinir_light", "swinir", {}, paper_params=_LIGHT_PARAMS,
                 description="SwinIR-light, the lightweight SR model of SwinIR Table 3"
                 " [published: SwinIR T3]",
                 paper_psnr=_SWINIR_LIGHT_PUBLISHED, paper_macs={2: 195.6, 3: 87.2, 4: 49.6})
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_SWINIR_CLASSICAL_PUBLISHED = {
    2: {"Set5": (38.35, 0.9620), "Set14": (34.14, 0.9227), "B100": (32.44, 0.9030), "Urban100": (33.40, 0.9393),
        "Manga109": (39.60, 0.9792)},
    3: {"Set5": (34.89, 0.9312), "Set14": (30.77, 0.8503), "B100": (29.37, 0.8124), "Urban100": (29.29, 0.8744),
        "Manga109": (34.74, 0.9518)},
    4: {"Set5": (32.72, 0.9021), "Set14": (28.94, 0.7914), "B100": (27.83, 0.7459), "Urban100": (27.07, 0.8164),
        "Manga109": (31.67, 0.9226)},
}
register_variant("swinir_classical", "swinir", _CLASSICAL, paper_params={2: 11_800_000, 3: 11_800_000, 4: 11_800_000},
                 description="SwinIR classical SR (embed 180, depths 6x6, heads 6, pixelshuffle), 11.8M"
                 " [published: SwinIR T2, DIV2K-trained]",
                 paper_psnr=_SWINIR_CLASSICAL_PUBLISHED)
register_variant("swinir_real", "swinir", {**_CLASSICAL, "upsampler": "nearest+conv"},
                 description="SwinIR-M real-world SR (classical body, nearest+conv upsampler)")
register_variant("swinir_real_large", "swinir",
                 {"embed_dim": 240, "depths": (6,) * 9, "num_heads": (8,) * 9, "upsampler": "nearest+conv",
                  "resi_connection": "3conv"},
                 description="SwinIR-L real-world SR (embed 240, depths 6x9, heads 8, 3conv, nearest+conv)")
