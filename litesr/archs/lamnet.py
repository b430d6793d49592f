"""LAMNet: Unifying Dimensions: A Linear Adaptive Mixer for Lightweight Image Super-Resolution (Zhenyu Hu and Wanjie
Sun, IEEE TIP 2025; arXiv 2024). Official code: github.com/zononhzy/LAMNet (``basicsr/archs/lamnet_arch.py``, commit
5b73a79); state-dict names follow it, so official files load unchanged.

Groups of ``PreNormResidual`` pairs, ``x + alpha * fn(norm(x))``: an LSAMixer (the token mixer) and a DGFN (the
self-gated feed-forward). The LSAMixer splits a 1x1 projection in two halves: a 1x1-ReLU-1x1 channel branch, and the
focal separable attention (FSA), a horizontal then a vertical pass whose per-pixel tap weights (tanh of a depthwise
1 x P conv and a 1x1) weigh ``kernel_size`` box averages of the neighbourhood: the centre taps average one pixel, the
outer ones average 2 or 4 (``kernel_loc`` / ``kernel_stride``), so 13 taps span 17 pixels in the paper's model. The
information exchange module then gates the channel branch by a sigmoid of its product with the attention's
per-channel mean, and the attention by a sigmoid of its product with the channel branch's per-pixel mean.

The official FSA is a CUDA extension (``basicsr/ops/fsa``); here it is plain PyTorch (shifted slices of a zero-padded
map, the same sums and the same division by the tap length, zero outside the image), so it runs on every device.

Size rule: RGB in [0, 1] minus the DIV2K mean; any height and width (all convolutions are padded, no windows). The
exchange module pools the whole map (per-channel and per-pixel means): tiled inference changes the result slightly,
as for any model with global pooling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import UpsampleOneStep, pixelshuffle_scale
from .base import SRModel
from .blocks import count_indexed


def focal_taps(kernel_size: int, kernel_loc: Sequence[int], kernel_stride: Sequence[int]) -> tuple[list[int],
                                                                                                     list[int], int]:
    """The FSA taps as the official ``generate_kernel_map_1d`` lays them out: (start offsets, lengths, patch size).

    From the centre outwards, tap ``i`` (1-based on one side) has length ``kernel_stride[j]`` for the ``j`` with
    ``kernel_loc[j-1] <= i < kernel_loc[j]`` and starts where the previous tap ended; the other side mirrors it."""
    if len(kernel_loc) != len(kernel_stride) or not kernel_loc or kernel_loc[-1] != kernel_size // 2 + 1:
        raise ValueError(f"kernel_loc {list(kernel_loc)} must have one entry per kernel_stride {list(kernel_stride)} "
                         f"and end at kernel_size // 2 + 1 = {kernel_size // 2 + 1}")
    starts, lengths, first = [0], [1], 1
    for loc, stride in zip(kernel_loc, kernel_stride):
        last_start, last_length = starts[-1], lengths[-1]  # the official list comprehension reads these once per loc
        starts += [n * stride + last_start + last_length for n in range(loc - first)]
        lengths += [stride] * (loc - first)
        first = loc
    patch_size = (starts[-1] + lengths[-1]) * 2 - 1
    return [-s for s in starts[:0:-1]] + starts, lengths[:0:-1] + lengths, patch_size


def focal_separable_attention(x: Tensor, kernel: Tensor, starts: Sequence[int], lengths: Sequence[int], groups: int,
                              dim: int) -> Tensor:
    """One FSA pass along ``dim`` (-1: horizontal, -2: vertical), the official CUDA kernel's arithmetic.

    ``out[b, c, p] = sum_k kernel[b, g(c) * K + k, p] * (sum of x[b, c, p + start_k + i * sign(start_k)] over
    i < length_k, zero outside) / length_k`` with ``g(c)`` the channel's group (``groups`` equal slices of C)."""
    b, c, h, w = x.shape
    reach = max(abs(s) + n - 1 for s, n in zip(starts, lengths))
    size = x.shape[dim]
    padded = F.pad(x, (reach, reach) if dim == -1 else (0, 0, reach, reach))
    weights = kernel.view(b, groups, 1, len(starts), h, w)
    out = x.new_zeros(b, groups, c // groups, h, w)
    for k, (start, length) in enumerate(zip(starts, lengths)):
        step = 1 if start >= 0 else -1
        box = sum(padded.narrow(dim, reach + start + i * step, size) for i in range(length))
        out = out + box.view(b, groups, c // groups, h, w) * weights[:, :, :, k] / length
    return out.view(b, c, h, w)


class LayerNormUnchanged(nn.Module):
    """Channel LayerNorm with the official ``alpha``/``beta`` names (1, C, 1, 1) and eps 1e-5 (biased variance)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        std = x.var(dim=1, keepdim=True, correction=0).add(self.eps).sqrt()
        return self.alpha * (x - x.mean(dim=1, keepdim=True)) / std + self.beta


class PreNormResidual(nn.Module):
    """``x + alpha * fn(norm(x))``."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = LayerNormUnchanged(dim)
        self.fn = fn
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x)) * self.alpha + x


class DGFN(nn.Module):
    """Dual-gate feed-forward: 1x1 to 2 x hidden, depthwise 3x3, halves ``a, b`` -> ``[gelu(a) a, gelu(a) b]``, 1x1."""

    def __init__(self, dim: int, expansion_factor: float) -> None:
        super().__init__()
        hidden = int(dim * expansion_factor) * 2
        self.project_in = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.project_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        gate = F.gelu(a)
        return self.project_out(torch.cat([gate * a, gate * b], dim=1))


def _tap_predictor(channels: int, outputs: int, patch_size: int, horizontal: bool) -> nn.Sequential:
    shape, padding = ((1, patch_size), (0, patch_size // 2)) if horizontal else ((patch_size, 1), (patch_size // 2, 0))
    return nn.Sequential(nn.Conv2d(channels, channels, shape, padding=padding, groups=channels),
                         nn.Conv2d(channels, outputs, 1))


class LSAMixer(nn.Module):
    """Token mixer: channel branch and two-pass focal separable attention, joined by the information exchange module."""

    def __init__(self, dim: int, kernel_size: int, kernel_loc: Sequence[int], kernel_stride: Sequence[int],
                 num_heads: int) -> None:
        super().__init__()
        half = dim // 2
        self.groups = num_heads
        self.starts, self.lengths, self.patch_size = focal_taps(kernel_size, kernel_loc, kernel_stride)
        # Persistent, as in the official code: official files carry it (int32, (kernel_size, 2)).
        self.register_buffer("kernel_map", torch.tensor(list(zip(self.starts, self.lengths)), dtype=torch.int32))
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.h_kernel = _tap_predictor(half, num_heads * kernel_size, self.patch_size, horizontal=True)
        self.v_kernel = _tap_predictor(half, num_heads * kernel_size, self.patch_size, horizontal=False)
        self.channel_branch = nn.Sequential(nn.Conv2d(half, dim // 4, 1), nn.ReLU(inplace=True),
                                            nn.Conv2d(dim // 4, half, 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def _fsa(self, x: Tensor, predictor: nn.Module, dim: int) -> Tensor:
        return focal_separable_attention(x, torch.tanh(predictor(x)), self.starts, self.lengths, self.groups, dim)

    def forward(self, x: Tensor) -> Tensor:
        local, spatial = self.proj_in(x).chunk(2, dim=1)
        conv = self.channel_branch(local)
        attn = self._fsa(self._fsa(spatial, self.h_kernel, -1), self.v_kernel, -2)
        # Information exchange: each branch gated by a sigmoid of its product with the other's pooled map (matrix
        # products, as the official code computes them and litesr's MAC rule counts them).
        b, c, h, w = conv.shape
        conv, attn = conv.flatten(2), attn.flatten(2)  # (B, C, HW)
        spatial_gate = torch.sigmoid(attn.mean(dim=-1).unsqueeze(1) @ conv / c)  # (B, 1, HW)
        channel_gate = torch.sigmoid(attn @ conv.mean(dim=1).unsqueeze(2) / (h * w))  # (B, C, 1)
        mixed = torch.cat([spatial_gate * conv, channel_gate * attn], dim=1)
        return self.proj_out(mixed.view(b, 2 * c, h, w))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        stored = state_dict.get(prefix + "kernel_map")
        if isinstance(stored, Tensor) and not stored.is_meta and stored.shape == self.kernel_map.shape \
                and not torch.equal(stored.cpu().long(), torch.tensor(list(zip(self.starts, self.lengths)))):
            # The taps are fixed at construction: a file made with other kernel_loc / kernel_stride must not load
            # silently into these.
            raise ValueError(f"{prefix}kernel_map {stored.tolist()} does not match this model's taps: build it "
                             "with the file's kernel_loc / kernel_stride")
        super()._load_from_state_dict(state_dict, prefix, *args)


class LAMixerBlock(nn.Module):
    """``num_blocks`` (LSAMixer, DGFN) residual pairs and a scaled skip: ``x + alpha * mixers(x)``."""

    def __init__(self, dim: int, num_blocks: int, kernel_size: int, kernel_loc: Sequence[int],
                 kernel_stride: Sequence[int], num_head: int, expansion_factor: float) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for _ in range(num_blocks):
            body.append(PreNormResidual(dim, LSAMixer(dim, kernel_size, kernel_loc, kernel_stride, num_head)))
            body.append(PreNormResidual(dim, DGFN(dim, expansion_factor)))
        self.mixers = nn.Sequential(*body)
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.mixers(x) * self.alpha + x


def _detect(sd: StateDict) -> dict[str, Any] | None:
    key = "deep_feature_extraction.0.mixers.0.fn.kernel_map"
    if key not in sd or "shallow_feature_extraction.weight" not in sd or "upsample.0.weight" not in sd:
        return None
    dim = int(sd["shallow_feature_extraction.weight"].shape[0])
    kernel_size = int(sd[key].shape[0])
    ratio = sd["deep_feature_extraction.0.mixers.1.fn.project_in.weight"].shape[0] / 2 / dim
    return {"scale": pixelshuffle_scale(sd, "upsample.0.weight", 3), "dim": dim, "kernel_size": kernel_size,
            "num_groups": count_indexed(sd, r"deep_feature_extraction\.(\d+)\.mixers\."),
            "num_blocks": count_indexed(sd, r"deep_feature_extraction\.0\.mixers\.(\d+)\.") // 2,
            "num_head": int(sd["deep_feature_extraction.0.mixers.0.fn.h_kernel.1.weight"].shape[0]) // kernel_size,
            "expansion_factor": int(ratio) if ratio.is_integer() else ratio}


@register_arch("lamnet", scales=(4, 2, 3), detect=_detect, paper="Hu and Sun, IEEE TIP 2025",
               tiny={"dim": 8, "num_groups": 1, "num_blocks": 1})
class LAMNet(SRModel):
    """LAMNet: groups of LSAMixer + DGFN pairs on a 3x3 head, a 3x3 conv, a scaled long skip, one-step PixelShuffle."""

    def __init__(self, scale: int = 4, dim: int = 64, num_groups: int = 4, num_blocks: int = 6, kernel_size: int = 13,
                 kernel_loc: Sequence[int] = (4, 6, 7), kernel_stride: Sequence[int] = (1, 2, 4), num_head: int = 4,
                 expansion_factor: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1), persistent=False)
        self.shallow_feature_extraction = nn.Conv2d(3, dim, 3, 1, 1)
        groups: list[nn.Module] = [LAMixerBlock(dim, num_blocks, kernel_size, kernel_loc, kernel_stride, num_head,
                                                expansion_factor) for _ in range(num_groups)]
        self.deep_feature_extraction = nn.Sequential(*groups, nn.Conv2d(dim, dim, 3, 1, 1))
        self.alpha = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.upsample = UpsampleOneStep(scale, dim, 3)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = self.shallow_feature_extraction(x - mean)
        x = self.deep_feature_extraction(x) * self.alpha + x
        return self.upsample(x) + mean


# LAMNet-large as quoted, with its parameters, in Table 2 of LaST-SR (Li, Pan and Chen, arXiv 2026), which cites the
# TIP paper: the LAMNet paper's own tables could not be read here. Its 1,024K / 1,045K equal the official code's
# count for the large configuration (1,024,028 / 1,044,800), which supports the attribution. The README's
# imgs/performance.png shows the same Urban100 x4 figure (about 26.82 dB). The base model's figures were not found.
_LAMNET_LARGE = {
    2: {"Set5": (38.27, 0.9615), "Set14": (34.07, 0.9214), "B100": (32.38, 0.9023), "Urban100": (33.16, 0.9373),
        "Manga109": (39.38, 0.9785)},
    4: {"Set5": (32.60, 0.9000), "Set14": (28.87, 0.7886), "B100": (27.77, 0.7434), "Urban100": (26.82, 0.8078),
        "Manga109": (31.33, 0.9183)},
}
register_variant("lamnet", "lamnet", {}, description="LAMNet (dim 64, 4 groups x 6 blocks, 13 FSA taps), DIV2K "
                 "[config: official options/test_LAMNet_SRx*.yml; published figures not found]")
register_variant("lamnet_large", "lamnet", {"num_groups": 5},
                 description="LAMNet-large (dim 64, 5 groups x 6 blocks), DIV2K [published: via LaST-SR Table 2]",
                 paper_params={2: 1_024_000, 4: 1_045_000}, paper_psnr=_LAMNET_LARGE)
