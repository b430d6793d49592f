"""SSIU: Structural Similarity-Inspired Unfolding for Lightweight Image Super-Resolution (Ni et al., IEEE TIP 2025).

State-dict names follow the official code (eezkni/SSIU, ``models/SSUFSR_network.py``, class ``SSUFSRNet``):
``head``; ``body.<i>`` unfolding steps (``SSRM``) with ``norm.body``, the gating modules ``s1``, ``s2``, ``s4``,
``ffn`` (``MEM``: ``project_in1``, ``project_in2.{0,1,2}``, ``project_out``) and the sparse attention ``s3``
(``ESA``: ``rel_h``, ``rel_w``, ``qkv_conv``, ``LocalProp.0``); ``moe`` (``fc_a``, ``fc_b``, ``fc_c``, ``fuse``);
``tail``. The official model takes RGB in [0, 1] (``rgb_range: 1.0``, no mean shift) and pads to a multiple of 16
itself, so the model here does too.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import BodyLayerNorm, conv, pad_to_multiple


class MixedScaleGating(nn.Module):
    """MSGM (official ``MEM``): GELU(1x1 projection) gates a 1x1 -> depthwise 3x3 -> 1x1 branch, then a 1x1 out."""

    def __init__(self, dim: int, out_dim: int, expansion: float = 1.0, ratio: float = 1.0,
                 kernel_size: int = 3) -> None:
        super().__init__()
        hidden, mid = int(dim * expansion), int(dim * ratio)
        self.project_in1 = conv(dim, hidden, 1)
        self.project_in2 = nn.Sequential(
            conv(dim, mid, 1),
            conv(mid, mid, kernel_size, groups=mid, padding_mode="reflect"),
            conv(mid, hidden, 1),
        )
        self.project_out = conv(hidden, out_dim, 1)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.project_out(self.act(self.project_in1(x)) * self.project_in2(x))


class EfficientSparseAttention(nn.Module):
    """ESAM (official ``ESA``): halo block attention on a 2x max-pooled map, with relative position terms on the keys.

    Queries are ``block_size``^2 blocks; keys/values are the same blocks widened by ``halo_size`` on every side
    (zero-padded at the map border). Half of each head's key channels get a row term (``rel_h``), the other half a
    column term (``rel_w``). A depthwise 3x3 and bilinear (align_corners) upsampling bring the result back.
    """

    def __init__(self, channels: int, block_size: int = 8, halo_size: int = 1, num_heads: int = 4,
                 kernel_size: int = 3, sr: int = 2, *, bias: bool = False) -> None:
        super().__init__()
        if channels % num_heads or (channels // num_heads) % 2:
            raise ConfigError(f"SSIU attention: {channels} channels do not split into {num_heads} heads of even width")
        self.block_size = block_size
        self.halo_size = halo_size
        self.num_heads = num_heads
        self.head_ch = channels // num_heads
        self.sr = sr
        if sr > 1:
            self.sampler = nn.MaxPool2d(2, sr)
            self.LocalProp = nn.Sequential(
                conv(channels, channels, kernel_size, groups=channels, padding_mode="reflect"),
                nn.Upsample(scale_factor=sr, mode="bilinear", align_corners=True),
            )
        window = block_size + 2 * halo_size
        self.rel_h = nn.Parameter(torch.randn(1, window, 1, self.head_ch // 2))
        self.rel_w = nn.Parameter(torch.randn(1, 1, window, self.head_ch // 2))
        self.qkv_conv = nn.Conv2d(channels, channels * 3, kernel_size=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        out_h, out_w = x.shape[-2:]
        if self.sr > 1:
            x = self.sampler(x)
        x, h0, w0 = pad_to_multiple(x, self.block_size)
        # While exporting, always crop (a no-op when nothing was padded): a test of symbolic sizes would be decided
        # for the sample size, and the graph would keep or drop the crop for every size.
        padded = torch.compiler.is_exporting() or x.shape[-2:] != (h0, w0)
        b, c, h, w = x.shape
        bs, halo, heads, hc = self.block_size, self.halo_size, self.num_heads, self.head_ch
        window = bs + 2 * halo
        nh, nw = h // bs, w // bs
        q, k, v = self.qkv_conv(x).chunk(3, dim=1)

        # queries: (b * blocks * heads, bs*bs, head_ch); channel c = head * head_ch + d, as in the official rearrange
        q = q.reshape(b, heads, hc, nh, bs, nw, bs).permute(0, 3, 5, 1, 4, 6, 2).reshape(-1, bs * bs, hc)
        q = q * hc**-0.5
        # keys/values: overlapping (bs + 2 halo)^2 windows, one per block
        k = F.unfold(k, kernel_size=window, stride=bs, padding=halo).view(b, heads, hc, window * window, nh * nw)
        v = F.unfold(v, kernel_size=window, stride=bs, padding=halo).view(b, heads, hc, window * window, nh * nw)
        k = k.permute(0, 4, 1, 3, 2).reshape(-1, window, window, hc)
        v = v.permute(0, 4, 1, 3, 2).reshape(-1, window * window, hc)
        half = hc // 2
        rel = torch.cat([self.rel_h.expand(1, window, window, half), self.rel_w.expand(1, window, window, half)], -1)
        k = (k + rel).reshape(-1, window * window, hc)

        attn = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        out = attn @ v  # (b * nh * nw * heads, bs*bs, head_ch)
        out = out.view(b, nh, nw, heads, bs, bs, hc).permute(0, 3, 6, 1, 4, 2, 5).reshape(b, c, h, w)
        if self.sr > 1:
            out = self.LocalProp(out)
        if padded:  # the official code crops only when it padded
            out = out[:, :, :out_h, :out_w]
        return out


class UnfoldingStep(nn.Module):
    """One unfolding iteration (official ``SSRM``); ``y`` is the head feature fed into every step."""

    def __init__(self, channels: int, num_heads: int = 4, block_size: int = 8, halo_size: int = 1,
                 kernel_size: int = 3, sr: int = 2) -> None:
        super().__init__()
        self.norm = BodyLayerNorm(channels)
        self.s1 = MixedScaleGating(channels, channels, kernel_size=kernel_size)
        self.s2 = MixedScaleGating(channels, channels, kernel_size=kernel_size)
        self.s3 = EfficientSparseAttention(channels, block_size, halo_size, num_heads, sr=sr)
        self.s4 = MixedScaleGating(channels, channels, kernel_size=kernel_size)
        self.ffn = MixedScaleGating(channels, channels, kernel_size=kernel_size)

    def forward(self, a: Tensor, y: Tensor) -> Tensor:
        a = self.norm(a)  # the official step keeps no skip around the norm: later residuals start from norm(a)
        z = self.s1(a)
        b = self.s2(a)
        v = a + z + y
        v = self.s3(v) + v
        a = self.s4(v - b) + b
        return self.ffn(a) + a


class MoEFeatureSelector(nn.Module):
    """MoE-FS (official ``MOE``): a per-pixel, per-channel softmax over three experts' 1x1 gates, then 1x1 + skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc_a = conv(channels, channels, 1)
        self.fc_b = conv(channels, channels, 1)
        self.fc_c = conv(channels, channels, 1)
        self.fuse = conv(channels, channels, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        # The official selection: with four collected steps the last three, otherwise the first three.
        a, b, c = feats[1:4] if len(feats) == 4 else feats[:3]
        gates = torch.softmax(torch.stack([self.fc_a(a), self.fc_b(b), self.fc_c(c)], dim=0), dim=0)
        out = a * gates[0] + b * gates[1] + c * gates[2]
        return self.fuse(out) + out


def _detect(sd: StateDict) -> dict | None:
    if "head.weight" not in sd or "moe.fc_a.weight" not in sd or "body.0.s3.rel_h" not in sd:
        return None
    n_feats = sd["head.weight"].shape[0]
    n_blocks = len({m.group(1) for k in sd if (m := re.match(r"body\.(\d+)\.", k))})
    _, window, _, half_head = sd["body.0.s3.rel_h"].shape
    halo_size = 1  # rel_h holds block + 2 halo; the official code fixes the halo at 1, so read the block size off it
    if "tail.6.weight" in sd:
        scale = 4
    else:
        scale = math.isqrt(sd["tail.0.weight"].shape[0] // n_feats)
    return {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks, "num_heads": n_feats // (2 * half_head),
            "block_size": window - 2 * halo_size, "halo_size": halo_size}


@register_arch("ssiu", scales=(2, 3, 4), detect=_detect, paper="Ni et al., IEEE TIP 2025",
               tiny={"n_feats": 16, "n_blocks": 3})
class SSIU(SRModel):
    """SSIU: structural-similarity-inspired unfolding steps with sparse halo attention and a MoE feature selector."""

    # The official forward reflect-pads to lcm(window_sizes) and crops back; pad_multiple stays 1.
    window_sizes = (8, 16)

    def __init__(self, scale: int = 2, n_feats: int = 64, n_blocks: int = 9, num_heads: int = 4, block_size: int = 8,
                 halo_size: int = 1) -> None:
        super().__init__()
        if n_blocks < 3:
            raise ConfigError(f"SSIU needs n_blocks >= 3 (the feature selector takes every n_blocks // 3-th step), "
                              f"got {n_blocks}")
        self.scale = scale
        self.n_blocks = n_blocks
        self.size_multiple = math.lcm(*self.window_sizes)
        self.head = conv(3, n_feats, 3, padding_mode="reflect")
        self.body = nn.ModuleList(
            UnfoldingStep(n_feats, num_heads=num_heads, block_size=block_size, halo_size=halo_size)
            for _ in range(n_blocks)
        )
        self.moe = MoEFeatureSelector(n_feats)
        if scale == 4:
            stages: list[nn.Module] = []
            for _ in range(2):
                stages += [conv(n_feats, n_feats * 4, 1), nn.PixelShuffle(2), nn.GELU()]
        else:
            stages = [conv(n_feats, n_feats * scale * scale, 1), nn.PixelShuffle(scale), nn.GELU()]
        self.tail = nn.Sequential(*stages, conv(n_feats, 3, 3, padding_mode="reflect"))

    def check_image_size(self, x: Tensor) -> Tensor:
        """Reflect-pad bottom/right to a multiple of 16 (edge replication where an input is too small to reflect)."""
        return pad_to_multiple(x, self.size_multiple)[0]

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = self.check_image_size(x)
        res = self.head(x)
        a = res
        every = self.n_blocks // 3
        collected = []
        for i, step in enumerate(self.body, start=1):
            a = step(a, res)
            if i % every == 0 or i == self.n_blocks:
                collected.append(a)
        a = self.moe(collected) + res
        # The bilinear skip upsamples the padded input, as the official code does (it matters at the bottom/right edge).
        out = self.tail(a) + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out[:, :, : h * self.scale, : w * self.scale]


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_SSIU_PUBLISHED = {
    2: {"Set5": (38.31, 0.9632), "Set14": (34.20, 0.9255), "B100": (32.43, 0.9043), "Urban100": (33.25, 0.9393),
        "Manga109": (39.64, 0.9822)},
    3: {"Set5": (34.79, 0.9323), "Set14": (30.71, 0.8523), "B100": (29.35, 0.8138), "Urban100": (29.08, 0.8718),
        "Manga109": (34.73, 0.9547)},
    4: {"Set5": (32.64, 0.9032), "Set14": (28.96, 0.7939), "B100": (27.82, 0.7472), "Urban100": (26.83, 0.8098),
        "Manga109": (31.60, 0.9242)},
}
register_variant("ssiu", "ssiu", {}, description="SSIU (64 channels, 9 unfolding steps, 4 heads, 8x8 blocks, halo 1)"
                 " [published: SSIU (its SSIMs use another protocol); Mult-Adds: SSIU]",
                 paper_params={2: 777_827, 3: 798_627, 4: 794_467},
                 paper_psnr=_SSIU_PUBLISHED, paper_macs={2: 164, 3: 75, 4: 49},
                 # trained by litesr on T91 + BSD200 (MODEL_ZOO.md); the default model of `litesr upscale` at x2
                 pretrained={2: "ssiu_x2.safetensors", 3: "ssiu_x3.safetensors", 4: "ssiu_x4.safetensors"})
