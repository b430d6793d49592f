"""DITN: Unfolding Once is Enough, a Deployment-Friendly Transformer Unit for SR (Liu et al., ACM MM 2023).

A UFONE unit unfolds the features once into non-overlapping patches, runs Inner-patch Transformer Layers (ITL:
channel self-attention inside each patch, then a gated depthwise feed-forward) on them, folds them back and runs
Spatial-Aware Layers (SAL: large-kernel depthwise "SDA" attention, then the feed-forward) on the whole map.

Two forms, with the official key names (yongliuy/DITN, ``models/DITN_Real.py``):

- ``ditn_real`` (DITN_Real, the released deployment-friendly model): every normalisation is replaced by ``act``
  (tanh) followed by a 1x1 conv (``conv1``/``conv2``). ``DITN_Real_x4.pth`` loads with ``strict=True``.
- ``ditn`` (the paper's DITN): pre-norm layers with Restormer's 'WithBias' LayerNorm (``norm1``/``norm2`` with
  ``body.weight``/``body.bias``, eps 1e-5). No official code or weights of this form are public; it is rebuilt from
  the paper and the unused ``LayerNorm_type`` argument of the released code, so its key names are an assumption.

Both reflect-pad the input to a multiple of lcm(8, patch_size) (the official code pads to 8, its patch size) and crop
the output, so any input size works.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import BodyLayerNorm, UpsampleOneStep, count_indexed, pad_to_multiple


class FeedForward(nn.Module):
    """Gated depthwise feed-forward (Restormer GDFN): 1x1 to 2 x hidden, 3x3 depthwise, GELU(a) * b, 1x1 back."""

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class ISA(nn.Module):
    """Inner-patch self-attention: a (C x C) attention between channels over the pixels of each patch."""

    def __init__(self, dim: int, bias: bool) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(1, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x.view(b, c, h * w).transpose(1, 2)).chunk(3, dim=-1)
        q, k, v = F.normalize(q.transpose(1, 2), dim=-1), F.normalize(k.transpose(1, 2), dim=-1), v.transpose(1, 2)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).view(b, c, h, w))


class SDA(nn.Module):
    """Spatial attention of SAL: half the projected channels pass 5x5 and dilated 7x7 depthwise convs and gate the
    other half; the result is scaled per channel by ``scale`` (initialised at 0, so SAL starts as identity)."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, n_feats, 1, 1))
        self.DConvs = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 5, 1, 2, groups=n_feats),
            nn.Conv2d(n_feats, n_feats, 7, 1, 9, groups=n_feats, dilation=3),
            nn.Conv2d(n_feats, n_feats, 1),
        )
        self.proj_first = nn.Sequential(nn.Conv2d(n_feats, 2 * n_feats, 1))
        self.proj_last = nn.Sequential(nn.Conv2d(n_feats, n_feats, 1))

    def forward(self, x: Tensor) -> Tensor:
        gate, x = self.proj_first(x).chunk(2, dim=1)
        return self.proj_last(x * self.DConvs(gate)) * self.scale


class UnitLayer(nn.Module):
    """x + mixer(N1(x)), then x + ffn(N2(x)). N is tanh + 1x1 conv (deployment form) or a LayerNorm (paper form)."""

    mixer_name = ""

    def __init__(self, n_feats: int, expansion: float, bias: bool, deploy: bool, mixer: nn.Module) -> None:
        super().__init__()
        setattr(self, self.mixer_name, mixer)
        self.deploy = deploy
        if deploy:
            self.act = nn.Tanh()
            self.conv1 = nn.Conv2d(n_feats, n_feats, 1)
            self.conv2 = nn.Conv2d(n_feats, n_feats, 1)
        else:
            self.norm1 = BodyLayerNorm(n_feats, eps=1e-5)
            self.norm2 = BodyLayerNorm(n_feats, eps=1e-5)
        self.ffn = FeedForward(n_feats, expansion, bias)

    def forward(self, x: Tensor) -> Tensor:
        mixer = getattr(self, self.mixer_name)
        if self.deploy:
            x = x + mixer(self.conv1(self.act(x)))
            return x + self.ffn(self.conv2(self.act(x)))
        x = x + mixer(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class ITL(UnitLayer):
    mixer_name = "attn"

    def __init__(self, n_feats: int, expansion: float, bias: bool, deploy: bool) -> None:
        super().__init__(n_feats, expansion, bias, deploy, ISA(n_feats, bias))


class SAL(UnitLayer):
    mixer_name = "SDA"

    def __init__(self, n_feats: int, expansion: float, bias: bool, deploy: bool) -> None:
        super().__init__(n_feats, expansion, bias, deploy, SDA(n_feats))


class UFONE(nn.Module):
    """Unfold into patch_size x patch_size patches once, ITLs on the patches, fold back, SALs on the whole map."""

    def __init__(self, dim: int, expansion: float, bias: bool, itl_blocks: int, sal_blocks: int, patch_size: int,
                 deploy: bool) -> None:
        super().__init__()
        self.ITLs = nn.Sequential(*[ITL(dim, expansion, bias, deploy) for _ in range(itl_blocks)])
        self.SALs = nn.Sequential(*[SAL(dim, expansion, bias, deploy) for _ in range(sal_blocks)])
        self.patch_size = patch_size

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        p = self.patch_size
        patches = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, p, p)
        patches = self.ITLs(patches).view(b, h // p, w // p, c, p, p)
        return self.SALs(patches.permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w))


class _DITNBase(SRModel):
    deploy = True

    def __init__(self, scale: int = 4, inp_channels: int = 3, dim: int = 60, itl_blocks: int = 4, sal_blocks: int = 4,
                 ufone_blocks: int = 1, ffn_expansion_factor: float = 2.0, bias: bool = False,
                 patch_size: int = 8) -> None:
        super().__init__()
        if patch_size < 1:
            raise ConfigError(f"patch_size must be positive, not {patch_size}")
        self.scale = scale
        self.patch_size = patch_size
        self.size_multiple = math.lcm(8, patch_size)
        self.sft = nn.Conv2d(inp_channels, dim, 3, 1, 1)
        self.UFONE = nn.Sequential(*[
            UFONE(dim, ffn_expansion_factor, bias, itl_blocks, sal_blocks, patch_size, self.deploy)
            for _ in range(ufone_blocks)
        ])
        self.conv_after_body = nn.Conv2d(dim, dim, 3, 1, 1)
        self.upsample = UpsampleOneStep(scale, dim, 3)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x, _, _ = pad_to_multiple(x, self.size_multiple)
        shallow = self.sft(x)
        out = self.upsample(self.conv_after_body(self.UFONE(shallow)) + shallow)
        return out[..., : h * self.scale, : w * self.scale]


def _detect(sd: StateDict, deploy: bool) -> dict[str, Any] | None:
    marker = "conv1.weight" if deploy else "norm1.body.weight"
    if "sft.weight" not in sd or not any(re.match(rf"UFONE\.\d+\.(ITLs|SALs)\.\d+\.{re.escape(marker)}$", k)
                                         for k in sd):
        return None
    dim, inp_channels = sd["sft.weight"].shape[:2]
    project_in = next(v for k, v in sd.items() if re.match(r"UFONE\.0\.(ITLs|SALs)\.\d+\.ffn\.project_in\.weight$", k))
    return {
        "scale": math.isqrt(sd["upsample.0.weight"].shape[0] // 3),
        "inp_channels": int(inp_channels), "dim": int(dim),
        "itl_blocks": count_indexed(sd, r"UFONE\.0\.ITLs\.(\d+)\.attn\.temperature$"),
        "sal_blocks": count_indexed(sd, r"UFONE\.0\.SALs\.(\d+)\.SDA\.scale$"),
        "ufone_blocks": count_indexed(sd, r"UFONE\.(\d+)\."),
        "ffn_expansion_factor": project_in.shape[0] / 2 / dim,
        "bias": any(k.endswith("ffn.project_in.bias") for k in sd),
        # patch_size leaves no trace in the weights; 8 is the only released value.
    }


_TINY = {"dim": 8, "itl_blocks": 1, "sal_blocks": 1, "patch_size": 4}


@register_arch("ditn_real", scales=(2, 3, 4), detect=lambda sd: _detect(sd, deploy=True), tiny=_TINY,
               paper="Liu et al., ACM MM 2023 (DITN), released DITN_Real")
class DITNReal(_DITNBase):
    """DITN_Real: the deployment-friendly DITN (tanh + 1x1 conv instead of LayerNorm), the released model."""

    deploy = True


@register_arch("ditn", scales=(2, 3, 4), detect=lambda sd: _detect(sd, deploy=False), tiny=_TINY,
               paper="Liu et al., ACM MM 2023 (DITN)")
class DITN(_DITNBase):
    """DITN as in the paper: pre-norm ITL/SAL layers with LayerNorm (rebuilt: no official code of this form)."""

    deploy = False


register_variant("ditn_real", "ditn_real", {},
                 description="DITN_Real (dim 60, 4 ITL + 4 SAL, 1 UFONE, patch 8); official x4 weights: 444,112 params")
register_variant("ditn", "ditn", {}, description="DITN (dim 60, 4 ITL + 4 SAL, 1 UFONE, patch 8, LayerNorm)")
