"""SAFMN: Spatially-Adaptive Feature Modulation for Efficient Image Super-Resolution (Sun et al., ICCV 2023),
and the same authors' challenge models, which are different architectures with their own state-dict layouts:

- ``safmn``: the paper model (``basicsr/archs/safmn_arch.py``): LayerNorm + SAFM + CCM blocks, long skip.
  Variants ``safmn`` (dim 36, 8 blocks) and ``safmn_l`` (dim 128, 16 blocks, the "classic SR" model).
- ``safmn_ntire23``: NTIRE 2023 ESR entry (``NTIRE2023_ESR/models/team15_SAFMN.py``): no LayerNorms, bias-free
  SAFM/CCM, a GRN after the head, pooling one level coarser, and a bilinear skip instead of the long skip.
- ``safmnpp``: SAFMN++, NTIRE 2024 ESR entry (``NTIRE2024_ESR/models/team23_safmnpp.py``): simplified single-level
  SAFM on a third of the channels, bias-free, per-block residual and a bilinear skip.
- ``safmnpp_light``: light SAFMN++, AIS 2024 real-time 4K entry (``AIS2024-RTSR/light_safmnpp_arch.py``): the same
  simplified SAFM on half the channels, no per-block residual, a long skip, no bilinear skip.
- ``safmn_bcie``: the x1 restoration form spandrel reads as SAFMN-BCIE (``to_feat.1``, ``feats.i.layers.j``,
  ``feats.i.conv``, ``to_img.{0,2}``): paper blocks in residual groups at a pixel-unshuffled resolution.

All take RGB in [0, 1]. The pooled branches need H and W of at least 8 (16 for ``safmn_ntire23``); the official test
code feeds whole images without padding (pooling sizes are floor(H / 2^k), so other sizes work as they are), so litesr
pads nothing either (``pad_multiple = 1``) and only pads inputs smaller than that minimum, inside ``forward``.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import LayerNorm2d, pad_to_multiple, run_at_least


def _count_blocks(sd: StateDict, prefix: str = "feats") -> int:
    return len({m.group(1) for k in sd if (m := re.match(rf"{prefix}\.(\d+)\.", k))})


def _ratio(hidden: int, dim: int) -> float | int:
    r = hidden / dim
    return int(r) if r == int(r) else r


def _scale_from_to_img(sd: StateDict) -> int:
    return math.isqrt(sd["to_img.0.weight"].shape[0] // 3)


def _to_img(dim: int, scale: int, *, bias: bool = True) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, 3 * scale**2, 3, 1, 1, bias=bias), nn.PixelShuffle(scale))


# ---------------------------------------------------------------------------------------------------------------------
# Paper SAFMN and the NTIRE 2023 variant


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation: channel chunks at 1, 1/2, 1/4 ... resolution (adaptive max-pool,
    depth-wise conv, nearest upsampling), fused by a 1x1 conv, GELU, and multiplied onto the input.

    ``pool_shift`` = 1 pools every coarse level one octave further (the NTIRE 2023 code uses h // 2^(i+1)).
    """

    def __init__(self, dim: int, n_levels: int = 4, *, pool_shift: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.n_levels = n_levels
        self.pool_shift = pool_shift
        chunk = dim // n_levels
        self.mfr = nn.ModuleList([nn.Conv2d(chunk, chunk, 3, 1, 1, groups=chunk, bias=bias) for _ in range(n_levels)])
        self.aggr = nn.Conv2d(dim, dim, 1, bias=bias)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        out = []
        for i, xc in enumerate(x.chunk(self.n_levels, dim=1)):
            if i == 0:
                out.append(self.mfr[0](xc))
                continue
            div = 2 ** (i + self.pool_shift)
            s = self.mfr[i](F.adaptive_max_pool2d(xc, (h // div, w // div)))
            out.append(F.interpolate(s, size=(h, w), mode="nearest"))
        return self.act(self.aggr(torch.cat(out, dim=1))) * x


class ChannelMixer(nn.Module):
    """Convolutional channel mixer (conv3x3 to hidden, GELU, conv1x1 back), kept under the official attribute name
    (``ccm`` in SAFMN, ``conv`` in light SAFMN++)."""

    def __init__(self, dim: int, growth_rate: float = 2.0, *, bias: bool = True, attr: str = "ccm") -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self._attr = attr
        setattr(self, attr, nn.Sequential(nn.Conv2d(dim, hidden, 3, 1, 1, bias=bias), nn.GELU(),
                                          nn.Conv2d(hidden, dim, 1, bias=bias)))

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self, self._attr)(x)


class AttBlock(nn.Module):
    """Feature mixing module of the paper: pre-LayerNorm SAFM and CCM, each with a residual."""

    def __init__(self, dim: int, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, eps=1e-6)
        self.norm2 = LayerNorm2d(dim, eps=1e-6)
        self.safm = SAFM(dim)
        self.ccm = ChannelMixer(dim, ffn_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.safm(self.norm1(x)) + x
        return self.ccm(self.norm2(x)) + x


def _detect_safmn(sd: StateDict) -> dict | None:
    if "feats.0.norm1.weight" not in sd or "feats.0.safm.aggr.weight" not in sd or "to_feat.weight" not in sd:
        return None
    dim = sd["to_feat.weight"].shape[0]
    return {"scale": _scale_from_to_img(sd), "dim": dim, "n_blocks": _count_blocks(sd),
            "ffn_scale": _ratio(sd["feats.0.ccm.ccm.0.weight"].shape[0], dim)}


@register_arch("safmn", scales=(2, 3, 4, 1, 8), detect=_detect_safmn, paper="Sun et al., ICCV 2023",
               tiny={"dim": 8, "n_blocks": 1})
class SAFMN(SRModel):
    """SAFMN: feature mixing modules of SAFM + convolutional channel mixer, long skip, PixelShuffle head."""

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1
    min_size = 8  # the coarsest of 4 levels pools to H // 8
    # BasicSR's test (options/test/SAFMN/*.yml, no param_key_g) loads ``params`` when a file also has ``params_ema``.
    preferred_param_key = "params"

    def __init__(self, scale: int = 4, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.scale = scale
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*[AttBlock(dim, ffn_scale) for _ in range(n_blocks)])
        self.to_img = _to_img(dim, scale)

    def _forward(self, x: Tensor) -> Tensor:
        x = self.to_feat(x)
        return self.to_img(self.feats(x) + x)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_SAFMN_PUBLISHED = {
    2: {"Set5": (38.00, 0.9605), "Set14": (33.54, 0.9177), "B100": (32.16, 0.8995), "Urban100": (31.84, 0.9256),
        "Manga109": (38.71, 0.9771)},
    3: {"Set5": (34.34, 0.9267), "Set14": (30.33, 0.8418), "B100": (29.08, 0.8048), "Urban100": (27.95, 0.8474),
        "Manga109": (33.52, 0.9437)},
    4: {"Set5": (32.18, 0.8948), "Set14": (28.60, 0.7813), "B100": (27.58, 0.7359), "Urban100": (25.97, 0.7809),
        "Manga109": (30.43, 0.9063)},
}
register_variant("safmn", "safmn", {}, description="SAFMN (dim 36, 8 FMMs), efficient SR"
                 " [published: SSIU/SAFMN]",
                 paper_params={2: 228_000, 3: 233_000, 4: 240_000},
                 paper_psnr=_SAFMN_PUBLISHED, paper_macs={2: 52, 3: 23, 4: 14})
register_variant("safmn_l", "safmn", {"dim": 128, "n_blocks": 16}, description="SAFMN-L (dim 128, 16 FMMs), classic SR",
                 paper_params={2: 5_560_000, 3: 5_580_000, 4: 5_600_000})


class BCIEGroup(nn.Module):
    """SAFMN-BCIE's residual group: ``layers`` of paper AttBlocks, then a 3x3 ``conv``, with a residual."""

    def __init__(self, num_layers: int, dim: int, ffn_scale: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[AttBlock(dim, ffn_scale) for _ in range(num_layers)])
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.layers(x)) + x


def _detect_bcie(sd: StateDict) -> dict | None:
    if "to_feat.1.weight" not in sd or "feats.0.layers.0.safm.aggr.weight" not in sd:
        return None
    dim = sd["to_feat.1.weight"].shape[0]
    return {"scale": 1, "dim": dim, "n_blocks": _count_blocks(sd),
            "num_layers": _count_blocks(sd, r"feats\.0\.layers"),
            "ffn_scale": _ratio(sd["feats.0.layers.0.ccm.ccm.0.weight"].shape[0], dim),
            "upscaling_factor": math.isqrt(sd["to_feat.1.weight"].shape[1] // 3)}


@register_arch("safmn_bcie", scales=(1,), detect=_detect_bcie, paper="SAFMN-BCIE (SAFMN blocks, as spandrel reads it)",
               tiny={"dim": 8, "n_blocks": 1, "num_layers": 1})
class SAFMNBCIE(SRModel):
    """SAFMN-BCIE: a same-size (x1) restoration model: pixel-unshuffle by ``upscaling_factor`` (spandrel's name for
    the fold) into SAFMN blocks in residual groups, then conv + PixelShuffle back and a conv to RGB.

    Defaults: spandrel's loader defaults (6 groups of 6 blocks, ffn 2, fold 2); ``dim`` 32 is litesr's choice (no
    published configuration was at hand). Detection reads every option from the shapes.
    """

    color_space = "rgb"
    safe_precisions = ("fp32", "bf16")  # as spandrel declares it (supports_half=False)

    def __init__(self, scale: int = 1, dim: int = 32, n_blocks: int = 6, num_layers: int = 6, ffn_scale: float = 2.0,
                 upscaling_factor: int = 2) -> None:
        super().__init__()
        self.scale, self.fold = scale, upscaling_factor
        # The pooled branch needs 8 pixels at the folded size; both the fold and pooling are handled in forward.
        self.min_size = 8 * upscaling_factor
        self.to_feat = nn.Sequential(nn.PixelUnshuffle(upscaling_factor),
                                     nn.Conv2d(3 * upscaling_factor**2, dim, 3, 1, 1))
        self.feats = nn.Sequential(*[BCIEGroup(num_layers, dim, ffn_scale) for _ in range(n_blocks)])
        self.to_img = nn.Sequential(nn.Conv2d(dim, dim * upscaling_factor**2, 3, 1, 1),
                                    nn.PixelShuffle(upscaling_factor), nn.Conv2d(dim, 3, 3, 1, 1))

    def _forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x, _, _ = pad_to_multiple(x, self.fold)
        x = self.to_feat(x)
        return self.to_img(self.feats(x) + x)[..., :h, :w]

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


class GRN(nn.Module):
    """ConvNeXt-V2 global response normalisation (``gamma``, ``beta`` shaped 1 x C x 1 x 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.norm(x, p=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class Ntire23Block(nn.Module):
    """NTIRE 2023 SAFMN block: bias-free SAFM (one octave coarser) and CCM, residuals, no normalisation."""

    def __init__(self, dim: int, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.safm = SAFM(dim, pool_shift=1, bias=False)
        self.ccm = ChannelMixer(dim, ffn_scale, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.safm(x) + x
        return self.ccm(x) + x


def _detect_ntire23(sd: StateDict) -> dict | None:
    if "norm.gamma" not in sd or "feats.0.safm.aggr.weight" not in sd or "to_feat.weight" not in sd:
        return None
    dim = sd["to_feat.weight"].shape[0]
    return {"scale": _scale_from_to_img(sd), "dim": dim, "n_blocks": _count_blocks(sd),
            "ffn_scale": _ratio(sd["feats.0.ccm.ccm.0.weight"].shape[0], dim)}


@register_arch("safmn_ntire23", scales=(2, 3, 4), detect=_detect_ntire23,
               paper="Sun et al., NTIRE 2023 ESR challenge (team15)", tiny={"dim": 8, "n_blocks": 1})
class SAFMNNtire23(SRModel):
    """SAFMN as entered in NTIRE 2023 ESR: GRN after the head, bias-free blocks, bilinear skip (not the paper model)."""

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1
    min_size = 16  # the coarsest level pools to H // 16

    def __init__(self, scale: int = 4, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.scale = scale
        self.norm = GRN(dim)
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*[Ntire23Block(dim, ffn_scale) for _ in range(n_blocks)])
        self.to_img = _to_img(dim, scale)

    def _forward(self, x: Tensor) -> Tensor:
        skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.to_img(self.feats(self.norm(self.to_feat(x)))) + skip

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


register_variant("safmn_ntire23", "safmn_ntire23", {},
                 description="SAFMN NTIRE 2023 ESR entry (dim 36, 8 blocks, GRN; team15_SAFMN.pth)")


# ---------------------------------------------------------------------------------------------------------------------
# SAFMN++ (NTIRE 2024) and light SAFMN++ (AIS 2024)


class SimpleSAFM(nn.Module):
    """SAFMN++'s single-level SAFM: conv3x3 projection; the first ``chunk_dim`` channels are max-pooled to 1/8,
    depth-wise filtered, bilinearly upsampled, GELU'd and multiplied back; concat with the rest, GELU, 1x1 conv."""

    def __init__(self, dim: int, chunk_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.chunk_dim = chunk_dim
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.dwconv = nn.Conv2d(chunk_dim, chunk_dim, 3, 1, 1, groups=chunk_dim, bias=False)
        self.out = nn.Conv2d(dim, dim, 1, bias=False)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x0, x1 = self.proj(x).split([self.chunk_dim, self.dim - self.chunk_dim], dim=1)
        s = self.dwconv(F.adaptive_max_pool2d(x0, (h // 8, w // 8)))
        s = self.act(F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)) * x0
        # The modulated chunk goes last: the official code concatenates [x1, x2] in that order.
        return self.out(self.act(torch.cat([x1, s], dim=1)))


class PPChannelMixer(nn.Module):
    """SAFMN++ (NTIRE 2024) CCM with named layers ``conv1``/``conv2``, bias-free."""

    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        hidden = int(dim * ffn_scale)
        self.conv1 = nn.Conv2d(dim, hidden, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(hidden, dim, 1, bias=False)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.act(self.conv1(x)))


class PPBlock(nn.Module):
    """SAFMN++ block: SimpleSAFM then CCM, one residual around both (``residual=False`` for light SAFMN++)."""

    def __init__(self, dim: int, ffn_scale: float, *, light: bool) -> None:
        super().__init__()
        self.residual = not light
        if light:
            self.conv1 = SimpleSAFM(dim, dim // 2)
            self.conv2: nn.Module = ChannelMixer(dim, ffn_scale, bias=False, attr="conv")
        else:
            self.conv1 = SimpleSAFM(dim, dim // 3)
            self.conv2 = PPChannelMixer(dim, ffn_scale)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.residual else out


def _detect_pp(sd: StateDict, ccm_key: str) -> dict | None:
    if "feats.0.conv1.proj.weight" not in sd or f"feats.0.conv2.{ccm_key}" not in sd or "to_feat.weight" not in sd:
        return None
    dim = sd["to_feat.weight"].shape[0]
    return {"scale": _scale_from_to_img(sd), "dim": dim, "n_blocks": _count_blocks(sd),
            "ffn_scale": _ratio(sd[f"feats.0.conv2.{ccm_key}"].shape[0], dim)}


def _detect_safmnpp(sd: StateDict) -> dict | None:
    return _detect_pp(sd, "conv1.weight")


def _detect_safmnpp_light(sd: StateDict) -> dict | None:
    return _detect_pp(sd, "conv.0.weight")


@register_arch("safmnpp", scales=(2, 3, 4), detect=_detect_safmnpp,
               paper="Sun et al., NTIRE 2024 ESR challenge (team23, SAFMN++)", tiny={"dim": 12, "n_blocks": 1})
class SAFMNPP(SRModel):
    """SAFMN++ (NTIRE 2024 ESR): bias-free SimpleSAFM + CCM blocks with residuals, bilinear skip."""

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1
    min_size = 8
    # The official NTIRE 2024 test (test_demo.py, model_id 23) loads the EMA weights.
    preferred_param_key = "params_ema"

    def __init__(self, scale: int = 4, dim: int = 36, n_blocks: int = 6, ffn_scale: float = 1.5) -> None:
        super().__init__()
        self.scale = scale
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1, bias=False)
        self.feats = nn.Sequential(*[PPBlock(dim, ffn_scale, light=False) for _ in range(n_blocks)])
        self.to_img = _to_img(dim, scale, bias=False)

    def _forward(self, x: Tensor) -> Tensor:
        skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.to_img(self.feats(self.to_feat(x))) + skip

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


register_variant("safmnpp", "safmnpp", {},
                 description="SAFMN++ NTIRE 2024 ESR entry (dim 36, 6 blocks; team23_safmnpp.pth)")


@register_arch("safmnpp_light", scales=(2, 3, 4), detect=_detect_safmnpp_light,
               paper="Sun et al., AIS 2024 real-time 4K SR challenge (light SAFMN++)", tiny={"dim": 8, "n_blocks": 1})
class SAFMNPPLight(SRModel):
    """Light SAFMN++ (AIS 2024 RTSR): SimpleSAFM + CCM blocks without inner residual, one long skip."""

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1
    min_size = 8
    # The official inference script (AIS2024-RTSR/inference.py) loads ``params``, which differ from ``params_ema``.
    preferred_param_key = "params"

    def __init__(self, scale: int = 4, dim: int = 32, n_blocks: int = 2, ffn_scale: float = 1.5) -> None:
        super().__init__()
        self.scale = scale
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1, bias=False)
        self.feats = nn.Sequential(*[PPBlock(dim, ffn_scale, light=True) for _ in range(n_blocks)])
        self.to_img = _to_img(dim, scale, bias=False)

    def _forward(self, x: Tensor) -> Tensor:
        x = self.to_feat(x)
        return self.to_img(self.feats(x) + x)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


register_variant("safmnpp_light", "safmnpp_light", {},
                 description="light SAFMN++ AIS 2024 RTSR entry (dim 32, 2 blocks; light_safmnpp.pth)")
