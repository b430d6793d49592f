"""CSNLN: Image Super-Resolution with Cross-Scale Non-Local Attention and Exhaustive Self-Exemplars Mining
(Mei et al., CVPR 2020).

One self-exemplar mining (SEM) cell, applied recurrently ``depth`` times with shared weights, maps LR features to an
HR estimate and back:

- three branches: cross-scale non-local attention (LR features matched against a bilinearly downscaled copy of
  themselves; the matched ``s x s`` larger patches are pasted at scale ``s``), in-scale non-local attention
  (upsampled by a strided deconvolution) and the local branch;
- mutual-projected fusion: the in-scale map plus a residual encoding of (cross-scale - in-scale), then back-projection
  of the LR error (strided conv down, deconv up) onto the HR estimate;
- x4 runs the projection twice (two x2 stages); every recurrence's HR estimate is concatenated and one conv maps them
  to RGB.

State-dict names follow the official code (SHI-Labs/Cross-Scale-Non-Local-Attention ``src/model/csnln.py`` and
``attention.py``): ``head.{0,1}``, ``SEM.multi_source_projection.{up_attention,down_attention,upsample,encoder}``,
``SEM.down_sample_{1,2}``, ``SEM.error_encode``, ``SEM.post_conv`` (x4: ``multi_source_projection_2``,
``down_sample_{3,4}``, ``error_encode_2``), ``tail.0``, ``sub_mean``/``add_mean``; the cross-scale attention's
``escape_NaN`` buffer is part of it. The official model expects [0, 1] input (``rgb_range`` 1).

The official attention modules hard-code 128 channels; here they take the network's ``n_feats`` (the same thing for
the paper's 128). The cross-scale attention needs the LR size to be a multiple of its downscale factor (2 for x2/x4,
3 for x3): ``forward`` reflect-pads to it and crops the output, so any input size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import MeanShift, conv, pad_to_multiple
from .edsr import DIV2K_RGB_MEAN, detect_rgb_range

# scale -> (kernel, stride, padding) of the strided (de)convolutions between LR and HR, and the attention's factor
_PROJECTION = {2: (6, 2, 2), 3: (9, 3, 3), 4: (6, 2, 2)}
_ATTENTION_FACTOR = {2: 2, 3: 3, 4: 2}


def conv_prelu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """The official ``BasicBlock`` with PReLU: conv (``0``) then a single-parameter PReLU (``1``)."""
    return nn.Sequential(conv(in_channels, out_channels, kernel_size), nn.PReLU())


def strided(in_channels: int, kernel: int, stride: int, padding: int, *, transposed: bool) -> nn.Sequential:
    layer = nn.ConvTranspose2d if transposed else nn.Conv2d
    return nn.Sequential(layer(in_channels, in_channels, kernel, stride=stride, padding=padding), nn.PReLU())


class PReLUResBlock(nn.Module):
    """conv-PReLU-conv plus the input (the official ``ResBlock`` with ``act=nn.PReLU()``; keys ``body.{0,1,2}``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3), nn.PReLU(), conv(channels, channels, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class NonLocalAttention(nn.Module):
    """In-scale non-local attention: softmax(embed1 . embed2) over all positions, applied to the assembly embedding."""

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        self.conv_match1 = conv_prelu(channels, channels // reduction, 1)
        self.conv_match2 = conv_prelu(channels, channels // reduction, 1)
        self.conv_assembly = conv_prelu(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        query = self.conv_match1(x).flatten(2).transpose(1, 2)  # (B, HW, C/2)
        key = self.conv_match2(x).flatten(2)  # (B, C/2, HW)
        value = self.conv_assembly(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        score = F.softmax(query @ key, dim=2)
        return (score @ value).transpose(1, 2).reshape(b, -1, h, w)


class CrossScaleAttention(nn.Module):
    """Cross-scale non-local attention: 3x3 patches of the input matched against a 1/s downscaled copy; each match
    pastes the corresponding (3s x 3s) patch of the full-size assembly embedding, so the output is s times larger.

    The input size must be a multiple of ``scale`` (the official code has the same requirement).
    """

    def __init__(self, channels: int, reduction: int = 2, ksize: int = 3, scale: int = 2,
                 softmax_scale: float = 10.0) -> None:
        super().__init__()
        self.ksize = ksize
        self.scale = scale
        self.softmax_scale = softmax_scale
        self.register_buffer("escape_NaN", torch.tensor([1e-4]))
        self.conv_match_1 = conv_prelu(channels, channels // reduction, 1)
        self.conv_match_2 = conv_prelu(channels, channels // reduction, 1)
        self.conv_assembly = conv_prelu(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s, k = self.scale, self.ksize
        b, _, h, w = x.shape
        if h % s or w % s:
            raise ValueError(f"CrossScaleAttention needs a size that is a multiple of {s}, got {h}x{w}")
        embed = self.conv_assembly(x)
        match = self.conv_match_1(x)
        # (B, L, C, ks, ks): the patches that get pasted back, one per position of the downscaled map
        big = s * k
        raw = F.unfold(embed, big, padding=s, stride=s).view(b, embed.shape[1], big, big, -1).permute(0, 4, 1, 2, 3)
        ref = self.conv_match_2(F.interpolate(x, size=(h // s, w // s), mode="bilinear", align_corners=False))
        # (B, L, C/2, k, k): the patches of the downscaled map used as matching filters
        filters = F.unfold(ref, k, padding=k // 2).view(b, ref.shape[1], k, k, -1).permute(0, 4, 1, 2, 3)
        out = []
        for i in range(b):
            norm = filters[i].pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
            kernel = filters[i] / torch.max(norm, self.escape_NaN)
            score = F.softmax(F.conv2d(match[i : i + 1], kernel, padding=k // 2) * self.softmax_scale, dim=1)
            out.append(F.conv_transpose2d(score, raw[i], stride=s, padding=s) / 6.0)
        return torch.cat(out, dim=0)


class MultisourceProjection(nn.Module):
    """Mutual-projected fusion of the cross-scale and (upsampled) in-scale attention maps."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        kernel, stride, padding = _PROJECTION[scale]
        self.up_attention = CrossScaleAttention(channels, scale=_ATTENTION_FACTOR[scale])
        self.down_attention = NonLocalAttention(channels)
        self.upsample = strided(channels, kernel, stride, padding, transposed=True)
        self.encoder = PReLUResBlock(channels)

    def forward(self, x: Tensor) -> Tensor:
        down_map = self.upsample(self.down_attention(x))
        up_map = self.up_attention(x)
        return down_map + self.encoder(up_map - down_map)


class RecurrentProjection(nn.Module):
    """The self-exemplar mining cell: fusion up to HR, back-projection of the LR error, and the LR output feature."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        kernel, stride, padding = _PROJECTION[scale]
        self.multi_source_projection = MultisourceProjection(channels, scale)
        self.down_sample_1 = strided(channels, kernel, stride, padding, transposed=False)
        if scale != 4:
            self.down_sample_2 = strided(channels, kernel, stride, padding, transposed=False)
        self.error_encode = strided(channels, kernel, stride, padding, transposed=True)
        self.post_conv = conv_prelu(channels, channels, 3)
        if scale == 4:
            self.multi_source_projection_2 = MultisourceProjection(channels, scale)
            self.down_sample_3 = strided(channels, 8, 4, 2, transposed=False)
            self.down_sample_4 = strided(channels, 8, 4, 2, transposed=False)
            self.error_encode_2 = strided(channels, 8, 4, 2, transposed=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_up = self.multi_source_projection(x)
        h_estimate = x_up + self.error_encode(x - self.down_sample_1(x_up))
        if self.scale == 4:
            x_up_2 = self.multi_source_projection_2(h_estimate)
            h_estimate = x_up_2 + self.error_encode_2(x - self.down_sample_3(x_up_2))
            return self.post_conv(self.down_sample_4(h_estimate)), h_estimate
        return self.post_conv(self.down_sample_2(h_estimate)), h_estimate


def _detect(sd: StateDict) -> dict | None:
    key = "SEM.multi_source_projection.upsample.0.weight"
    if key not in sd or "tail.0.weight" not in sd or "head.0.0.weight" not in sd:
        return None
    n_feats, n_colors = sd["head.0.0.weight"].shape[:2]
    if "SEM.multi_source_projection_2.upsample.0.weight" in sd:
        scale = 4
    else:
        scale = 3 if sd[key].shape[-1] == 9 else 2
    return {"scale": scale, "n_feats": n_feats, "depth": sd["tail.0.weight"].shape[1] // n_feats,
            "n_colors": n_colors, "rgb_range": detect_rgb_range(sd, 1.0)}


@register_arch("csnln", scales=(2, 3, 4), detect=_detect, paper="Mei et al., CVPR 2020",
               tiny={"n_feats": 8, "depth": 2})
class CSNLN(SRModel):
    """CSNLN: a recurrent self-exemplar mining cell with cross-scale and in-scale non-local attention."""

    def __init__(self, scale: int = 2, n_feats: int = 128, depth: int = 12, n_colors: int = 3,
                 rgb_range: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.depth = depth
        self.input_range = rgb_range
        self.size_multiple = _ATTENTION_FACTOR[scale]
        self.sub_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN)
        self.head = nn.Sequential(conv_prelu(n_colors, n_feats, 3), conv_prelu(n_feats, n_feats, 3))
        self.SEM = RecurrentProjection(n_feats, scale)
        self.tail = nn.Sequential(nn.Conv2d(n_feats * depth, n_colors, 3, padding=1))
        self.add_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN, sign=1)

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = pad_to_multiple(x, self.size_multiple)
        feat = self.head(self.sub_mean(x))
        estimates = []
        for _ in range(self.depth):
            feat, h_estimate = self.SEM(feat)
            estimates.append(h_estimate)
        out = self.add_mean(self.tail(torch.cat(estimates, dim=1)))
        return out[..., : h * self.scale, : w * self.scale]


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_CSNLN_PUBLISHED = {
    2: {"Set5": (38.28, 0.9616), "Set14": (34.12, 0.9223), "B100": (32.40, 0.9024), "Urban100": (33.25, 0.9386),
        "Manga109": (39.37, 0.9785)},
    3: {"Set5": (34.74, 0.9300), "Set14": (30.66, 0.8482), "B100": (29.33, 0.8105), "Urban100": (29.13, 0.8712),
        "Manga109": (34.45, 0.9502)},
    4: {"Set5": (32.68, 0.9004), "Set14": (28.95, 0.7888), "B100": (27.80, 0.7439), "Urban100": (27.22, 0.8168),
        "Manga109": (31.43, 0.9201)},
}
register_variant("csnln", "csnln", {}, description="CSNLN (128 channels, 12 recurrences)"
                 " [published: CSNLN]",
                 paper_psnr=_CSNLN_PUBLISHED)
