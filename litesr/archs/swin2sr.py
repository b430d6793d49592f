"""Swin2SR: SwinV2 Transformer for Compressed Image Super-Resolution and Restoration (Conde et al., ECCVW 2022).

SwinIR's layout with Swin Transformer V2 blocks: scaled cosine attention (a learned per-head ``logit_scale``, clamped
at log 100), a continuous relative position bias from a small MLP (``cpb_mlp``) over log-spaced coordinates, and
residual post-normalisation. Patch embeddings gain a 1x1 ``proj``. Two extra reconstructions: 'pixelshuffle_aux'
(compressed SR: an auxiliary LR image and a bicubic branch) and 'pixelshuffle_hf' (a second stage for the high
frequencies). State-dict names follow the official code (mv-lab/swin2sr, ``models/network_swin2sr.py``); buffers,
padding and any-size behaviour are those of :mod:`litesr.archs.swinir`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .blocks import DerivedBuffers, pad_to_multiple, relative_position_index, upsample_scale
from .swinir import NUM_FEAT, SwinIR, SwinTransformerBlock, _upsample, detect_swin_common, windowed_attention


def log_spaced_coords_table(window_size: int) -> Tensor:
    """(1, 2ws-1, 2ws-1, 2) relative offsets scaled to [-8, 8] then log-spaced: sign(x) log2(1 + |x|) / 3."""
    offsets = torch.arange(-(window_size - 1), window_size, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1).unsqueeze(0)
    table = table / (window_size - 1) * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


class WindowAttentionV2(DerivedBuffers):
    """Swin v2 window attention: cosine similarity times a learned per-head scale, plus 16 * sigmoid(cpb_mlp)."""

    derived_buffers = ("relative_coords_table", "relative_position_index")

    def __init__(self, dim: int, window_size: int, num_heads: int, *, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        self.register_buffer("relative_coords_table", log_spaced_coords_table(window_size))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:  # k gets no bias: the official code concatenates (q_bias, 0, v_bias)
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def position_bias(self) -> Tensor:
        n = self.window_size**2
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = table[self.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b_, n, c = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b_, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = F.normalize(qkv[0], dim=-1), F.normalize(qkv[1], dim=-1), qkv[2]
        logit_scale = torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()
        out = windowed_attention(q, k, v, self.position_bias(), mask, 1.0, self.attn_drop if self.training else 0.0,
                                 logit_scale=logit_scale)
        return self.proj_drop(self.proj(out))


class SwinV2Block(SwinTransformerBlock):
    """Swin v2 block: residual post-norm, x + norm1(attn(x)) then x + norm2(mlp(x))."""

    def make_attention(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool) -> nn.Module:
        return WindowAttentionV2(dim, window_size, num_heads, qkv_bias=qkv_bias)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        x = x + self.drop_path(self.norm1(self.window_attention(x, h, w, mask)))
        return x + self.drop_path(self.norm2(self.mlp(x)))


def _detect(sd: StateDict) -> dict[str, Any] | None:
    config = detect_swin_common(sd, "attn.logit_scale", 0)
    if config is None:
        return None
    config["qkv_bias"] = "layers.0.residual_group.blocks.0.attn.q_bias" in sd
    if "conv_bicubic.weight" in sd:
        config["upsampler"] = "pixelshuffle_aux"
    elif "conv_after_body_hf.weight" in sd:
        config["upsampler"] = "pixelshuffle_hf"
    if config["upsampler"] in ("pixelshuffle_aux", "pixelshuffle_hf"):
        config["scale"] = upsample_scale(sd, "upsample")
    return config


@register_arch(
    "swin2sr", scales=(2, 3, 4, 8, 1), detect=_detect, paper="Conde et al., ECCVW 2022 (Swin2SR)",
    tiny={"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 2), "window_size": 4, "img_size": 16},
)
class Swin2SR(SwinIR):
    """Swin2SR: SwinIR with SwinV2 blocks (cosine attention, continuous position bias, post-norm).

    ``upsampler`` adds 'pixelshuffle_aux' (compressed SR) and 'pixelshuffle_hf' to SwinIR's. ``forward`` returns
    the SR image; :meth:`forward_all` returns every output of the official forward (the auxiliary LR image, or the
    base and high-frequency images) for training with their losses.
    """

    block_class = SwinV2Block
    embed_proj = True
    upsamplers = (*SwinIR.upsamplers, "pixelshuffle_aux", "pixelshuffle_hf")
    _layer_args: tuple[Any, ...] = ()

    def __init__(self, scale: int = 2, in_chans: int = 3, embed_dim: int = 60, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: int | Sequence[int] = (6, 6, 6, 6), window_size: int = 8, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, patch_norm: bool = True, drop_path_rate: float = 0.1, img_range: float = 1.0,
                 upsampler: str = "pixelshuffledirect", resi_connection: str = "1conv",
                 img_size: int | None = 64) -> None:
        super().__init__(scale, in_chans, embed_dim, depths, num_heads, window_size, mlp_ratio, qkv_bias,
                         patch_norm, drop_path_rate, img_range, upsampler, resi_connection, img_size)

    def make_layers(self, *args: Any) -> nn.ModuleList:
        self._layer_args = args  # the high-frequency branch repeats the main stages
        return super().make_layers(*args)

    def make_reconstruction(self, dim: int, out_ch: int, scale: int, upsampler: str) -> None:
        if upsampler not in ("pixelshuffle_aux", "pixelshuffle_hf"):
            super().make_reconstruction(dim, out_ch, scale, upsampler)
            return
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(dim, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True))
        self.upsample = _upsample(scale, NUM_FEAT)
        self.conv_last = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
        if upsampler == "pixelshuffle_aux":
            self.conv_bicubic = nn.Conv2d(out_ch, NUM_FEAT, 3, 1, 1)
            self.conv_aux = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)
            self.conv_after_aux = nn.Sequential(nn.Conv2d(3, NUM_FEAT, 3, 1, 1), nn.LeakyReLU(inplace=True))
        else:
            self.layers_hf = self.make_layers(*self._layer_args)
            self.upsample_hf = _upsample(scale, NUM_FEAT)
            self.conv_first_hf = nn.Sequential(nn.Conv2d(NUM_FEAT, dim, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.conv_after_body_hf = nn.Conv2d(dim, dim, 3, 1, 1)
            self.conv_before_upsample_hf = nn.Sequential(nn.Conv2d(dim, NUM_FEAT, 3, 1, 1),
                                                         nn.LeakyReLU(inplace=True))
            self.conv_last_hf = nn.Conv2d(NUM_FEAT, out_ch, 3, 1, 1)

    def forward_all(self, x: Tensor) -> tuple[Tensor, ...]:
        """The official outputs: (sr, aux_lr) for 'pixelshuffle_aux', (base, sr, high_freq) for 'pixelshuffle_hf',
        (sr,) otherwise; all in the input range, cropped to the input size times the scale (aux_lr: padded LR)."""
        h, w = x.shape[-2:]
        if self.upsampler not in ("pixelshuffle_aux", "pixelshuffle_hf"):
            return (self(x),)
        hs, ws = h * self.scale, w * self.scale
        x, _, _ = pad_to_multiple(x, self.window_size)
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        if self.upsampler == "pixelshuffle_aux":
            # As the official code: the bicubic branch resizes the *padded* LR straight to the unpadded HR size.
            bicubic = self.conv_bicubic(F.interpolate(x, size=(hs, ws), mode="bicubic", align_corners=False))
            aux = self.conv_aux(self.conv_before_upsample(self.deep_features(x)))
            sr = self.conv_last(self.upsample(self.conv_after_aux(aux))[..., :hs, :ws] + bicubic)
            return sr / self.img_range + mean, aux / self.img_range + mean
        before = self.conv_before_upsample(self.deep_features(x))
        base = self.conv_last(self.upsample(before))
        hf = self.conv_first_hf(before)
        hf = self.conv_after_body_hf(self.forward_features(hf, self.layers_hf)) + hf
        hf = self.conv_last_hf(self.upsample_hf(self.conv_before_upsample_hf(hf)))
        outs = (base, base + hf, hf)
        return tuple((o / self.img_range + mean)[..., :hs, :ws] for o in outs)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsampler == "pixelshuffle_aux":
            return self.forward_all(x)[0]
        if self.upsampler == "pixelshuffle_hf":
            return self.forward_all(x)[1]
        return super().forward(x)


_CLASSICAL = {"embed_dim": 180, "depths": (6,) * 6, "num_heads": (6,) * 6, "upsampler": "pixelshuffle"}
register_variant("swin2sr", "swin2sr", {},
                 description="Swin2SR lightweight (embed 60, depths 6x4, heads 6, window 8, pixelshuffledirect)")
register_variant("swin2sr_light", "swin2sr", {}, description="Swin2SR lightweight SR (the SwinIR-light layout)")
register_variant("swin2sr_classical", "swin2sr", _CLASSICAL,
                 description="Swin2SR classical SR (embed 180, depths 6x6, heads 6, pixelshuffle)")
register_variant("swin2sr_real", "swin2sr", {**_CLASSICAL, "upsampler": "nearest+conv"},
                 description="Swin2SR real-world SR (classical body, nearest+conv upsampler; released at x4)")
register_variant("swin2sr_compressed", "swin2sr", {**_CLASSICAL, "upsampler": "pixelshuffle_aux"},
                 description="Swin2SR compressed-input SR (classical body, pixelshuffle_aux; released at x4)")
