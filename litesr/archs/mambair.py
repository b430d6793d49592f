"""MambaIR: A Simple Baseline for Image Restoration with State-Space Model (Guo, Li, Dai, Ouyang, Ren and Xia,
ECCV 2024). Official code: github.com/csguoh/MambaIR (``basicsr/archs/mambair_arch.py``; state-dict names follow it).

The SwinIR frame (conv, residual groups closed by a conv, LayerNorm, conv, reconstruction head) with residual
state-space blocks (``VSSBlock``): ``x * skip_scale + SS2D(ln_1(x))`` then ``x * skip_scale2 + CAB(ln_2(x))``.
SS2D, the 2D selective scan: a linear projection to 2 x ``d_inner`` (the gate ``z`` and the stream), a depthwise
3x3 + SiLU on the stream, then one selective scan (Mamba's S6) over four unfoldings of the map (row-major,
column-major, and both reversed) with per-direction projections to (dt, B, C), the four outputs folded back and
summed, LayerNorm, times SiLU(z), linear back. The lightweight models (``upsampler='pixelshuffledirect'``) use the
light CAB (1x1 down by 2, depthwise 3x3, GELU, 1x1 up, dilated depthwise 3x3, channel attention); the classical
ones HAT's CAB (3x3 down by 3, GELU, 3x3 up, channel attention). Channel attention squeezes by 30.

The scan is litesr's pure-PyTorch one (:mod:`litesr.archs._selective_scan`, the semantics of mamba_ssm's
``selective_scan_ref``): no CUDA kernel, mamba_ssm or triton needed, on every device.

Size rule: any input size (the scan runs over the whole map; nothing is padded, ``pad_multiple = 1``). The scan and
the channel attention see the whole image: tiled inference changes results near tile borders, as for any model with
a global receptive field. RGB in [0, 1] (``img_range`` 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from ._selective_scan import selective_scan
from .base import SRModel
from .blocks import DropPath, count_indexed, drop_path_rates
from .hat import CAB, ChannelAttention
from .swinir import (
    RGB_MEAN,
    RSTB,
    PatchEmbed,
    _init_weights,
    build_swin_tail,
    detect_swin_tail,
    residual_conv,
    run_swin_tail,
    tokens_to_image,
)

DIRECTIONS = 4  # row-major, column-major, and both reversed
SQUEEZE = 30  # channel-attention squeeze of every MambaIR CAB (fixed in the official code)


@torch.no_grad()
def reset_ssm_parameters(module: nn.Module, dt_min: float = 0.001, dt_max: float = 0.1, dt_floor: float = 1e-4) -> None:
    """Mamba's initialisation of a module holding the official scan parameters (``x_proj_weight``,
    ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``; ``d_inner``, ``dt_rank``, ``d_state``): x_proj as
    nn.Linear does, dt_proj uniform in +-rank^-0.5 with a bias whose softplus is log-uniform in [dt_min, dt_max],
    A = -(1..N) (S4D-real), D = 1. MambaIRv2 shares it."""
    nn.init.uniform_(module.x_proj_weight, -module.d_inner**-0.5, module.d_inner**-0.5)
    nn.init.uniform_(module.dt_projs_weight, -module.dt_rank**-0.5, module.dt_rank**-0.5)
    if module.dt_projs_bias.is_meta:
        return
    dt = torch.exp(torch.rand(module.dt_projs_bias.shape) * (math.log(dt_max) - math.log(dt_min))
                   + math.log(dt_min)).clamp(min=dt_floor)
    module.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
    module.A_logs.copy_(torch.log(torch.arange(1, module.d_state + 1, dtype=torch.float32)).expand_as(module.A_logs))
    module.Ds.fill_(1.0)


class SS2D(nn.Module):
    """2D selective scan module (see the module docstring); input and output (B, H, W, C)."""

    def __init__(self, d_model: int, d_state: int = 16, expand: float = 2.0, d_conv: int = 3) -> None:
        super().__init__()
        self.d_state = d_state
        self.d_inner = d_inner = int(expand * d_model)
        self.dt_rank = dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, d_inner * 2, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner)
        self.act = nn.SiLU()
        self.x_proj_weight = nn.Parameter(torch.empty(DIRECTIONS, dt_rank + 2 * d_state, d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(DIRECTIONS, d_inner, dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(DIRECTIONS, d_inner))
        self.A_logs = nn.Parameter(torch.empty(DIRECTIONS * d_inner, d_state))
        self.Ds = nn.Parameter(torch.empty(DIRECTIONS * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.reset_ssm_parameters()

    def reset_ssm_parameters(self) -> None:
        reset_ssm_parameters(self)

    def scan(self, x: Tensor) -> Tensor:
        """The four-direction selective scan of an NCHW map, folded back and summed: (B, d_inner, H * W)."""
        b, c, h, w = x.shape
        length = h * w
        rows = x.reshape(b, c, length)
        cols = x.transpose(2, 3).reshape(b, c, length)
        pair = torch.stack([rows, cols], dim=1)
        xs = torch.cat([pair, pair.flip(-1)], dim=1)  # (B, 4, C, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        work = torch.promote_types(x.dtype, torch.float32)  # the SSM parameters in fp32 at least, as officially
        ys = selective_scan(
            xs.reshape(b, -1, length), dts.reshape(b, -1, length), -torch.exp(self.A_logs.to(work)), Bs, Cs,
            self.Ds.to(work), delta_bias=self.dt_projs_bias.to(work).reshape(-1), delta_softplus=True,
        ).view(b, DIRECTIONS, -1, length)
        backward = ys[:, 2:4].flip(-1)

        def from_columns(y: Tensor) -> Tensor:  # a column-major sequence back to row-major order
            return y.reshape(b, -1, w, h).transpose(2, 3).reshape(b, -1, length)

        return ys[:, 0] + backward[:, 0] + from_columns(ys[:, 1]) + from_columns(backward[:, 1])

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        stream, gate = self.in_proj(x).chunk(2, dim=-1)
        stream = self.act(self.conv2d(stream.permute(0, 3, 1, 2).contiguous()))
        y = self.scan(stream).transpose(1, 2).reshape(b, h, w, -1)
        return self.out_proj(self.out_norm(y.to(x.dtype)) * F.silu(gate))


class LightCAB(nn.Module):
    """The lightweight models' channel-attention block: 1x1 down by 2, depthwise 3x3, GELU, 1x1 up, dilated (2)
    depthwise 3x3, channel attention (``cab.0`` ... ``cab.5``, as the official Sequential)."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        mid = num_feat // 2
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, mid, 1), nn.Conv2d(mid, mid, 3, 1, 1, groups=mid), nn.GELU(),
            nn.Conv2d(mid, num_feat, 1), nn.Conv2d(num_feat, num_feat, 3, 1, padding=2, groups=num_feat, dilation=2),
            ChannelAttention(num_feat, SQUEEZE),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)


class VSSBlock(nn.Module):
    """Residual state-space block: scaled skip + SS2D, then scaled skip + CAB, each on a LayerNorm of the tokens."""

    def __init__(self, dim: int, d_state: int, expand: float, light: bool, drop_path: float = 0.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = SS2D(dim, d_state, expand)
        self.drop_path = DropPath(drop_path)
        self.skip_scale = nn.Parameter(torch.ones(dim))
        self.conv_blk = LightCAB(dim) if light else CAB(dim, 3, SQUEEZE)
        self.ln_2 = nn.LayerNorm(dim)
        self.skip_scale2 = nn.Parameter(torch.ones(dim))

    def forward(self, tokens: Tensor, h: int, w: int, mask: Tensor | None = None) -> Tensor:
        b, _, c = tokens.shape
        x = tokens.view(b, h, w, c)
        x = x * self.skip_scale + self.drop_path(self.self_attention(self.ln_1(x)))
        conv = self.conv_blk(self.ln_2(x).permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)
        return (x * self.skip_scale2 + conv).reshape(b, h * w, c)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    block0 = "layers.0.residual_group.blocks.0."
    if "conv_first.weight" not in sd or block0 + "self_attention.A_logs" not in sd or block0 + "ln_1.weight" not in sd:
        return None
    embed_dim, in_chans = (int(n) for n in sd["conv_first.weight"].shape[:2])
    n_layers = count_indexed(sd, r"layers\.(\d+)\.residual_group\.blocks\.0\.ln_1\.weight")
    depths = tuple(count_indexed(sd, rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.ln_1\.weight")
                   for i in range(n_layers))
    upsampler, scale = detect_swin_tail(sd, in_chans)
    ratio = sd[block0 + "self_attention.in_proj.weight"].shape[0] / 2 / embed_dim
    return {
        "scale": scale, "in_chans": in_chans, "embed_dim": embed_dim, "depths": depths,
        "d_state": int(sd[block0 + "self_attention.A_logs"].shape[1]),
        "mlp_ratio": int(ratio) if ratio.is_integer() else ratio,
        "upsampler": upsampler, "patch_norm": "patch_embed.norm.weight" in sd,
        "resi_connection": "3conv" if "conv_after_body.0.weight" in sd else "1conv",
    }


@register_arch("mambair", scales=(2, 3, 4), detect=_detect, paper="Guo et al., ECCV 2024 (MambaIR)",
               tiny={"embed_dim": 30, "depths": (1,), "d_state": 2, "mlp_ratio": 1})
class MambaIR(SRModel):
    """MambaIR: residual state-space groups between a conv head and an SR reconstruction (defaults: MambaIR-light).

    ``mlp_ratio`` is the SS2D expansion (``d_inner = int(mlp_ratio * embed_dim)``), as in the official configs.
    ``upsampler``: 'pixelshuffledirect' (lightweight, with the light CAB), 'pixelshuffle' (classical) or '' (scale 1,
    restoration with a global residual).
    """

    upsamplers = ("pixelshuffledirect", "pixelshuffle", "")

    def __init__(self, scale: int = 4, in_chans: int = 3, embed_dim: int = 60, depths: Sequence[int] = (6, 6, 6, 6),
                 d_state: int = 10, mlp_ratio: float = 1.2, upsampler: str = "pixelshuffledirect",
                 resi_connection: str = "1conv", patch_norm: bool = True, img_range: float = 1.0,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if upsampler not in self.upsamplers:
            raise ConfigError(f"upsampler must be one of {', '.join(map(repr, self.upsamplers))}, not {upsampler!r}")
        if (scale == 1) != (upsampler == ""):
            raise ConfigError(f"upsampler {upsampler!r} does not fit x{scale}: '' is the scale-1 restoration head")
        if embed_dim < SQUEEZE:
            raise ConfigError(f"embed_dim {embed_dim} is below {SQUEEZE}: the channel attention squeezes by {SQUEEZE}")
        depths = tuple(int(d) for d in depths)
        self.scale, self.upsampler, self.img_range = scale, upsampler, img_range
        self.color_space = "rgb" if in_chans == 3 else "y"
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        light = upsampler == "pixelshuffledirect"  # the official is_light_sr rule

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=patch_norm)
        rates = drop_path_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList(
            RSTB(embed_dim, [VSSBlock(embed_dim, d_state, mlp_ratio, light, rates[i][j]) for j in range(depth)],
                 resi_connection)
            for i, depth in enumerate(depths)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        build_swin_tail(self, embed_dim, in_chans, scale, upsampler)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        first = self.conv_first(x)
        tokens = self.patch_embed(first)
        for layer in self.layers:
            tokens = layer(tokens, h, w, None)
        features = self.conv_after_body(tokens_to_image(self.norm(tokens), h, w)) + first
        return run_swin_tail(self, features, x, self.scale) / self.img_range + mean


# Parameters: the paper's lightweight-SR table as corrected in arXiv v3 (905K / 913K / 924K; equal to the official
# code's count, checked in tests/test_zoo_mambair.py). PSNR/SSIM (Y) and MACs (G, as printed): the MambaIR-light rows
# of the lightweight-SR table in the official README (assets/lightSR.png, "Table 3", the MambaIRv2 paper's, read in
# csguoh/MambaIR); the ESC paper's Table 2 prints the same rows. The README's model-zoo table gives other Urban100
# figures for the released checkpoints (MambaIR_light2/3/4: 32.92/0.9356, 29.00/0.8689, 26.75/0.8051).
_MAMBAIR_LIGHT = {
    2: {"Set5": (38.13, 0.9610), "Set14": (33.95, 0.9208), "B100": (32.31, 0.9013), "Urban100": (32.85, 0.9349),
        "Manga109": (39.20, 0.9782)},
    3: {"Set5": (34.63, 0.9288), "Set14": (30.54, 0.8459), "B100": (29.23, 0.8084), "Urban100": (28.70, 0.8631),
        "Manga109": (34.12, 0.9479)},
    4: {"Set5": (32.42, 0.8977), "Set14": (28.74, 0.7847), "B100": (27.68, 0.7400), "Urban100": (26.52, 0.7983),
        "Manga109": (30.94, 0.9135)},
}
register_variant("mambair_light", "mambair", {},
                 description="MambaIR-light (dim 60, 4 x 6 blocks, d_state 10, expand 1.2), DF2K [published: official "
                             "README lightweight-SR table; params: paper v3]",
                 paper_params={2: 905_000, 3: 913_000, 4: 924_000}, paper_psnr=_MAMBAIR_LIGHT,
                 paper_macs={2: 334.2, 3: 148.5, 4: 84.6})
