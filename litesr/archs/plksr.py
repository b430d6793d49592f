"""PLKSR: Partial Large Kernel CNNs for Efficient Super-Resolution (Lee, Yun and Ro, arXiv 2404.11848, 2024), and
RealPLKSR, the authors' variant for real-world training (``dslisleedh/PLKSR`` issue 4, trained with neosr).

Each block: a channel mixer (``channe_mixer`` in PLKSR's code, the typo kept; ``channel_mixer`` in RealPLKSR), a
large depth-dense kernel on the first ``split_ratio`` of the channels only (``lk``: partial large kernel conv; the
rest pass through), element-wise attention (``attn.f``: 3x3 conv + sigmoid, multiplied on), a 1x1 ``refine`` and a
residual. The whole trunk sits in one ``feats`` Sequential (first conv, blocks, last conv to ``3 * scale**2``), the
input repeated ``scale**2`` times per channel is added before the PixelShuffle.

State-dict names follow the official code (``plksr/archs/plksr_arch.py``) and spandrel's copy of both:
``feats.0`` / ``feats.{1..n}.{channe_mixer,lk.conv,attn.f.0,refine}`` / ``feats.{n+1}``. RealPLKSR adds
``feats.i.norm`` (GroupNorm, 4 groups) or ``feats.i.layer_norm`` (channel LayerNorm, then no GroupNorm), a
Dropout2d at ``feats.{n+1}`` (so the last conv is ``feats.{n+2}``), Mish in its DCCM, and optionally DySample
(``to_img.{offset,scope,end_conv}``, ``init_pos``) instead of PixelShuffle.

Not supported (ablations of the paper, not released): the sparse (dilated) kernel form ``SparsePLK``, whose kernel
sizes and dilations are not readable from a checkpoint, and ``with_idt``.

Size rule: fully convolutional, any input size, tiles freely. RGB in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from ._upsample import DySample
from .base import SRModel
from .blocks import LayerNorm2d, count_indexed

CcmType = Literal["CCM", "ICCM", "DCCM"]
LkType = Literal["PLK", "RectSparsePLK"]
# (first kernel, second kernel) of each channel mixer: detection reads the type back from these
_CCM_KERNELS: dict[str, tuple[int, int]] = {"CCM": (3, 1), "ICCM": (1, 3), "DCCM": (3, 3)}


def channel_mixer(dim: int, ccm_type: str, act: type[nn.Module] = nn.GELU) -> nn.Sequential:
    """Conv (k1) to 2*dim, activation, conv (k2) back: CCM 3/1, inverted ICCM 1/3, doubled DCCM 3/3."""
    if ccm_type not in _CCM_KERNELS:
        raise ConfigError(f"ccm_type must be one of {', '.join(_CCM_KERNELS)}, not {ccm_type!r}")
    k1, k2 = _CCM_KERNELS[ccm_type]
    mixer = nn.Sequential(nn.Conv2d(dim, dim * 2, k1, 1, k1 // 2), act(), nn.Conv2d(dim * 2, dim, k2, 1, k2 // 2))
    nn.init.trunc_normal_(mixer[-1].weight, std=0.02)
    return mixer


class PartialLargeKernel(nn.Module):
    """A large ``kernel_size`` conv on the first ``channels`` channels; the others pass unchanged (official
    ``PLKConv2d``; its eval path writes into the input in place, this concatenates, which computes the same)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, kernel_size, 1, kernel_size // 2)
        nn.init.trunc_normal_(self.conv.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        head, rest = torch.split(x, [self.channels, x.size(1) - self.channels], dim=1)
        return torch.cat([self.conv(head), rest], dim=1)


class RectPartialLargeKernel(nn.Module):
    """SLaK-style rectangular form (``RectSparsePLK``): m x n + n x m + n x n convs summed, n = m // 3."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels = channels
        m, n = kernel_size, kernel_size // 3
        self.mn_conv = nn.Conv2d(channels, channels, (m, n), 1, (m // 2, n // 2))
        self.nm_conv = nn.Conv2d(channels, channels, (n, m), 1, (n // 2, m // 2))
        self.nn_conv = nn.Conv2d(channels, channels, (n, n), 1, (n // 2, n // 2))

    def forward(self, x: Tensor) -> Tensor:
        head, rest = torch.split(x, [self.channels, x.size(1) - self.channels], dim=1)
        return torch.cat([self.mn_conv(head) + self.nm_conv(head) + self.nn_conv(head), rest], dim=1)


class ElementwiseAttention(nn.Module):
    """``x * sigmoid(conv3x3(x))`` (official ``EA``, key ``f.0``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1), nn.Sigmoid())
        nn.init.trunc_normal_(self.f[0].weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.f(x)


def _partial(dim: int, split_ratio: float, kernel_size: int, lk_type: str) -> nn.Module:
    channels = int(dim * split_ratio)
    if lk_type == "PLK":
        return PartialLargeKernel(channels, kernel_size)
    if lk_type == "RectSparsePLK":
        return RectPartialLargeKernel(channels, kernel_size)
    raise ConfigError(f"lk_type must be 'PLK' or 'RectSparsePLK', not {lk_type!r}")


class PLKBlock(nn.Module):
    """Channel mixer, partial large kernel, element-wise attention, 1x1 refine, residual."""

    def __init__(self, dim: int, ccm_type: str, kernel_size: int, split_ratio: float, lk_type: str,
                 use_ea: bool) -> None:
        super().__init__()
        self.channe_mixer = channel_mixer(dim, ccm_type)  # sic: the official key
        self.lk = _partial(dim, split_ratio, kernel_size, lk_type)
        self.attn = ElementwiseAttention(dim) if use_ea else nn.Identity()
        self.refine = nn.Conv2d(dim, dim, 1)
        nn.init.trunc_normal_(self.refine.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.refine(self.attn(self.lk(self.channe_mixer(x)))) + x


def _first_and_last(dim: int, scale: int) -> tuple[nn.Conv2d, nn.Conv2d]:
    first, last = nn.Conv2d(3, dim, 3, 1, 1), nn.Conv2d(dim, 3 * scale**2, 3, 1, 1)
    nn.init.trunc_normal_(first.weight, std=0.02)
    nn.init.trunc_normal_(last.weight, std=0.02)
    return first, last


def _ratio(channels: int, dim: int) -> float:
    return channels / dim


def _detect_plksr(sd: StateDict) -> dict[str, Any] | None:
    if "feats.0.weight" not in sd or "feats.1.channe_mixer.0.weight" not in sd or "feats.1.refine.weight" not in sd:
        return None
    dim = int(sd["feats.0.weight"].shape[0])
    n_blocks = count_indexed(sd, r"feats\.(\d+)\.") - 2
    k1 = sd["feats.1.channe_mixer.0.weight"].shape[2]
    k2 = sd["feats.1.channe_mixer.2.weight"].shape[2]
    ccm = next((name for name, ks in _CCM_KERNELS.items() if ks == (k1, k2)), None)
    if ccm is None:
        return None
    if "feats.1.lk.conv.weight" in sd:
        lk_type, lk = "PLK", sd["feats.1.lk.conv.weight"]
    elif "feats.1.lk.mn_conv.weight" in sd:
        lk_type, lk = "RectSparsePLK", sd["feats.1.lk.mn_conv.weight"]
    else:
        return None
    return {"scale": math.isqrt(sd[f"feats.{n_blocks + 1}.weight"].shape[0] // 3), "dim": dim, "n_blocks": n_blocks,
            "ccm_type": ccm, "kernel_size": int(lk.shape[2]), "split_ratio": _ratio(lk.shape[0], dim),
            "lk_type": lk_type, "use_ea": "feats.1.attn.f.0.weight" in sd}


@register_arch("plksr", scales=(4, 2, 3), detect=_detect_plksr, paper="Lee et al., arXiv 2404.11848 (2024)",
               tiny={"dim": 16, "n_blocks": 2, "kernel_size": 7})
class PLKSR(SRModel):
    """PLKSR: partial-large-kernel CNN blocks in one Sequential, repeated-input skip, PixelShuffle."""

    def __init__(self, scale: int = 4, dim: int = 64, n_blocks: int = 28, ccm_type: CcmType = "CCM",
                 kernel_size: int = 17, split_ratio: float = 0.25, lk_type: LkType = "PLK",
                 use_ea: bool = True) -> None:
        super().__init__()
        self.scale = scale
        first, last = _first_and_last(dim, scale)
        blocks = [PLKBlock(dim, ccm_type, kernel_size, split_ratio, lk_type, use_ea) for _ in range(n_blocks)]
        self.feats = nn.Sequential(first, *blocks, last)
        self.to_img = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.to_img(self.feats(x) + torch.repeat_interleave(x, self.scale**2, dim=1))


# Published PSNR/SSIM (Y) from the official README's tables (figs/Quantitative.png: PLKSR trained on DIV2K;
# figs/Quantitative_tiny.png: PLKSR-tiny trained on DF2K). The paper reports latency and memory, not parameters.
_PLKSR_DIV2K = {
    2: {"Set5": (38.25, 0.9613), "Set14": (34.03, 0.9214), "B100": (32.36, 0.9020), "Urban100": (32.99, 0.9365),
        "Manga109": (39.31, 0.9781)},
    3: {"Set5": (34.70, 0.9292), "Set14": (30.60, 0.8473), "B100": (29.27, 0.8096), "Urban100": (28.86, 0.8666),
        "Manga109": (34.13, 0.9485)},
    4: {"Set5": (32.54, 0.8996), "Set14": (28.84, 0.7880), "B100": (27.74, 0.7424), "Urban100": (26.69, 0.8054),
        "Manga109": (31.10, 0.9164)},
}
_PLKSR_TINY_DF2K = {
    2: {"Set5": (38.14, 0.9610), "Set14": (33.81, 0.9199), "B100": (32.29, 0.9011), "Urban100": (32.58, 0.9328),
        "Manga109": (39.18, 0.9782)},
    3: {"Set5": (34.54, 0.9282), "Set14": (30.48, 0.8455), "B100": (29.20, 0.8079), "Urban100": (28.51, 0.8599),
        "Manga109": (34.05, 0.9473)},
    4: {"Set5": (32.33, 0.8970), "Set14": (28.76, 0.7857), "B100": (27.68, 0.7398), "Urban100": (26.34, 0.7942),
        "Manga109": (30.83, 0.9119)},
}
register_variant("plksr", "plksr", {"ccm_type": "DCCM"},
                 description="PLKSR (dim 64, 28 blocks, kernel 17, DCCM, EA), DIV2K [published: official README]",
                 paper_psnr=_PLKSR_DIV2K)
register_variant("plksr_tiny", "plksr", {"ccm_type": "DCCM", "n_blocks": 12, "kernel_size": 13, "use_ea": False},
                 description="PLKSR-tiny (dim 64, 12 blocks, kernel 13, no EA), DF2K [published: official README]",
                 paper_psnr=_PLKSR_TINY_DF2K)


class RealPLKBlock(nn.Module):
    """RealPLKSR block: optional channel LayerNorm first, Mish DCCM, partial kernel, EA, refine, GroupNorm (when no
    LayerNorm), residual."""

    def __init__(self, dim: int, kernel_size: int, split_ratio: float, use_ea: bool, norm_groups: int,
                 layer_norm: bool) -> None:
        super().__init__()
        self.layer_norm = LayerNorm2d(dim) if layer_norm else nn.Identity()
        self.channel_mixer = channel_mixer(dim, "DCCM", nn.Mish)
        self.lk = PartialLargeKernel(int(dim * split_ratio), kernel_size)
        self.attn = ElementwiseAttention(dim) if use_ea else nn.Identity()
        self.refine = nn.Conv2d(dim, dim, 1)
        nn.init.trunc_normal_(self.refine.weight, std=0.02)
        self.norm = nn.Identity() if layer_norm else nn.GroupNorm(norm_groups, dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.refine(self.attn(self.lk(self.channel_mixer(self.layer_norm(x)))))
        return self.norm(y) + x


def _detect_realplksr(sd: StateDict) -> dict[str, Any] | None:
    if "feats.0.weight" not in sd or "feats.1.channel_mixer.0.weight" not in sd or "feats.1.lk.conv.weight" not in sd:
        return None
    dim = int(sd["feats.0.weight"].shape[0])
    n_blocks = count_indexed(sd, r"feats\.(\d+)\.") - 2  # the Dropout2d holds no tensors
    dysample = "to_img.init_pos" in sd
    last = sd[f"feats.{n_blocks + 2}.weight"] if f"feats.{n_blocks + 2}.weight" in sd else None
    if last is None:
        return None
    lk = sd["feats.1.lk.conv.weight"]
    return {"scale": math.isqrt(last.shape[0] // 3), "dim": dim, "n_blocks": n_blocks,
            "kernel_size": int(lk.shape[2]), "split_ratio": _ratio(lk.shape[0], dim),
            "use_ea": "feats.1.attn.f.0.weight" in sd, "dysample": dysample,
            "layer_norm": "feats.1.layer_norm.weight" in sd}


@register_arch("realplksr", scales=(4, 1, 2, 3), detect=_detect_realplksr,
               paper="Lee et al., RealPLKSR (dslisleedh/PLKSR issue 4; neosr), 2024",
               tiny={"dim": 16, "n_blocks": 2, "kernel_size": 7})
class RealPLKSR(SRModel):
    """RealPLKSR: PLKSR with GroupNorm (or LayerNorm) blocks, Mish, dropout before the last conv, optional DySample."""

    def __init__(self, scale: int = 4, dim: int = 64, n_blocks: int = 28, kernel_size: int = 17,
                 split_ratio: float = 0.25, use_ea: bool = True, norm_groups: int = 4, dropout: float = 0.0,
                 dysample: bool = False, layer_norm: bool = False) -> None:
        super().__init__()
        self.scale = scale
        first, last = _first_and_last(dim, scale)
        blocks = [RealPLKBlock(dim, kernel_size, split_ratio, use_ea, norm_groups, layer_norm)
                  for _ in range(n_blocks)]
        self.feats = nn.Sequential(first, *blocks, nn.Dropout2d(dropout), last)
        if dysample:
            # as the official code: 3 sampling groups at odd scales, 4 at even ones; no end conv at x1
            self.to_img = DySample(3 * scale**2, 3, scale, groups=3 if scale % 2 else 4, end_convolution=scale != 1)
        else:
            self.to_img = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.to_img(self.feats(x) + torch.repeat_interleave(x, self.scale**2, dim=1))


register_variant("realplksr", "realplksr", {}, description="RealPLKSR (dim 64, 28 blocks, kernel 17, GroupNorm), "
                 "real-world SR: no bicubic benchmark published")
register_variant("realplksr_layernorm", "realplksr", {"layer_norm": True},
                 description="RealPLKSR with channel LayerNorm instead of GroupNorm (the code's `layer_norm`)")
