"""Upsamplers as building blocks: every one takes (channels in, scale, channels out) and is registered by name.

    from litesr.upsamplers import build_upsampler, list_upsamplers
    tail = build_upsampler("decomposed", 48, 3, 3)        # 48 feature channels -> RGB, x3
    y = tail(features)                                   # (B, 3, 3H, 3W)

Fixed-scale blocks (integer factors): ``pixelshuffle`` (one conv to out * s^2 + PixelShuffle: the lightweight tail of
IMDN/RFDN/RLFN/RDESA), ``pixelshuffle_multistage`` (EDSR/RCAN: conv to 4C + PixelShuffle(2) per factor 2, or 9C + PS(3),
then a conv to out), ``transposed`` (one strided transposed convolution, FSRCNN's), ``decomposed`` (the transposed
convolution split into a vertical k x 1 and a horizontal depth-wise 1 x k one: 2k taps instead of k^2),
``nearest_conv`` (nearest interpolation + conv, LReLU, conv; SwinIR's real-world tail in one stage) and
``attention`` (PAN's U-PA: nearest interpolation, conv, pixel attention, conv). ``nearest_conv`` and ``attention``
also run at non-integer factors (they interpolate to a size).

Arbitrary-scale blocks: ``meta`` (Meta-SR's meta-upscale: a small network predicts a k x k x in x out filter per output
position from its offset to the LR pixel and 1/scale; Hu et al., CVPR 2019) and ``liif`` (local implicit image
function: an MLP decodes the unfolded nearest latent, the relative coordinate and the cell size, with a 4-neighbour
area-weighted ensemble; Chen et al., CVPR 2021). Their ``forward(x, scale=None, size=None)`` takes any scale >= 1.

Scale detection (reading the factor of an upsampler off its tensor shapes) lives here too:
:func:`pixelshuffle_scale` for one conv + PixelShuffle and :func:`multistage_scale` for the EDSR form.

The registry is a :class:`litesr.registry_base.Registry`. Zoo models whose tail is
a plain upsampler declare it with :func:`register_swappable_tail`; ``--model-opt upsampler=NAME`` then swaps it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError
from .registry_base import Registry

# ---------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class UpsamplerSpec:
    name: str
    builder: Callable[..., nn.Module]
    arbitrary: bool  # forward(x, scale=None, size=None) accepts any scale >= 1
    fractional: bool  # a fixed-scale block that also builds for non-integer factors
    description: str


_UPSAMPLERS: Registry[UpsamplerSpec] = Registry("upsampler")
_SWAPPABLE: dict[str, str] = {}  # architecture -> attribute name of its tail


def register_upsampler(name: str, *, arbitrary: bool = False, fractional: bool = False,
                       description: str = "") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        doc = description or (builder.__doc__ or "").strip().split("\n")[0]
        _UPSAMPLERS.register(name, UpsamplerSpec(name, builder, arbitrary, fractional or arbitrary, doc))
        return builder

    return decorator


def list_upsamplers() -> list[str]:
    return _UPSAMPLERS.names()


def get_upsampler(name: str) -> UpsamplerSpec:
    """The spec of ``name``; an unknown name raises ConfigError with the closest names."""
    return _UPSAMPLERS.get(name)


def build_upsampler(name: str, in_channels: int, scale: float, out_channels: int) -> nn.Module:
    """The upsampler ``name`` from ``in_channels`` features to ``out_channels`` at ``scale``."""
    spec = get_upsampler(name)
    if scale < 1 or (not spec.fractional and int(scale) != scale):
        kind = "integer factors" if not spec.fractional else "factors >= 1"
        raise ConfigError(f"upsampler {name!r} supports {kind}, not x{scale:g}")
    return spec.builder(in_channels, int(scale) if int(scale) == scale else scale, out_channels)


def register_swappable_tail(arch: str, attribute: str = "upsampler") -> None:
    """Declare that ``arch``'s tail (``model.<attribute>``) is a plain upsampler that ``upsampler=NAME`` may swap."""
    _SWAPPABLE[arch] = attribute


def swappable_tail_archs() -> dict[str, str]:
    """Architectures whose tail is a plain upsampler (``--model-opt upsampler=NAME``), and the tail's attribute."""
    from . import archs  # noqa: F401  (importing the architectures registers their tails)

    return dict(_SWAPPABLE)


def tail_upsampler(arch: str, name: str, in_channels: int, scale: int, out_channels: int) -> nn.Module:
    """The tail of a swappable architecture; ``pixelshuffle`` is the published one (official state-dict names)."""
    if name == "pixelshuffle":
        return pixelshuffle_block(in_channels, out_channels, scale)
    try:
        return build_upsampler(name, in_channels, scale, out_channels)
    except ConfigError as exc:
        raise ConfigError(f"{arch}: option upsampler: {exc}") from None


# ---------------------------------------------------------------------------------------------- scale detection


def pixelshuffle_scale(state_dict: Mapping[str, Tensor], key: str, out_channels: int) -> int:
    """The factor of a one-conv sub-pixel tail whose conv weight is ``key``: it has out_channels * s^2 filters."""
    return math.isqrt(state_dict[key].shape[0] // out_channels)


def multistage_scale(state_dict: Mapping[str, Tensor], prefix: str) -> int:
    """The factor of an EDSR-style :class:`Upsample` under ``prefix``: each conv (``prefix.0``, ``prefix.2`` ...)
    multiplies the channels by f^2 before a PixelShuffle(f). 1 when there is none (an empty upsampler)."""
    indices = sorted(int(m.group(1)) for k in state_dict
                     if (m := re.match(re.escape(prefix) + r"\.(\d+)\.weight$", k)))
    scale = 1
    for i in indices:
        weight = state_dict[f"{prefix}.{i}.weight"]
        scale *= math.isqrt(weight.shape[0] // weight.shape[1])
    return scale


# ------------------------------------------------------------------------------------------- fixed-scale blocks


def _conv(in_channels: int, out_channels: int, kernel_size: int = 3, *, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


def pixelshuffle_block(in_channels: int, out_channels: int, scale: int, kernel_size: int = 3) -> nn.Sequential:
    """One conv to ``out_channels * scale^2`` then PixelShuffle (IMDN/RFDN/RLFN ``upsampler``; keys ``0.weight``)."""
    return nn.Sequential(_conv(in_channels, out_channels * scale**2, kernel_size), nn.PixelShuffle(scale))


@register_upsampler("pixelshuffle")
def _pixelshuffle(in_channels: int, scale: int, out_channels: int) -> nn.Module:
    """Sub-pixel convolution, lightweight form: one 3x3 conv to out * s^2 and PixelShuffle(s) (ESPCN, IMDN)."""
    return pixelshuffle_block(in_channels, out_channels, scale)


class Upsample(nn.Sequential):
    """EDSR/RCAN/SwinIR upsampler: log2(s) x (conv to 4C + PixelShuffle(2)) for powers of 2; conv to 9C + PS(3)."""

    def __init__(self, scale: int, num_feat: int, *, bias: bool = True) -> None:
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1, bias=bias), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1, bias=bias), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale {scale} is not supported; supported scales are 2^n and 3")
        super().__init__(*layers)


@register_upsampler("pixelshuffle_multistage")
def _pixelshuffle_multistage(in_channels: int, scale: int, out_channels: int) -> nn.Module:
    """Sub-pixel convolution, multi-stage form of EDSR/RCAN (x4 = two x2 stages), then a 3x3 conv to out."""
    try:
        return nn.Sequential(Upsample(scale, in_channels), _conv(in_channels, out_channels))
    except ValueError as exc:
        raise ConfigError(f"upsampler 'pixelshuffle_multistage': {exc}") from None


class UpsampleOneStep(nn.Sequential):
    """SwinIR 'pixelshuffledirect': a single conv to out_ch * s^2 and PixelShuffle(s)."""

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        super().__init__(nn.Conv2d(num_feat, (scale**2) * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))


class TransposedConvUpsampler(nn.ConvTranspose2d):
    """One transposed convolution with stride s (FSRCNN's ``last_part``): exactly s*H x s*W out for odd kernels.

    Being the ConvTranspose2d itself, its tensors are ``weight``/``bias`` where the module sits (FSRCNN's names)."""

    def __init__(self, in_channels: int, scale: int, out_channels: int, kernel_size: int = 9) -> None:
        if kernel_size % 2 == 0:
            raise ConfigError(f"transposed upsampler: kernel_size must be odd, not {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, stride=scale, padding=kernel_size // 2,
                         output_padding=scale - 1)


@register_upsampler("transposed")
def _transposed(in_channels: int, scale: int, out_channels: int) -> nn.Module:
    """Transposed convolution (deconvolution), 9x9 taps, stride s (FSRCNN)."""
    return TransposedConvUpsampler(in_channels, scale, out_channels)


class DecomposedTransposedConv(nn.Module):
    """A k x k transposed convolution decomposed into 1-D ones: vertical k x 1 (in -> out, stride (s, 1)) then
    horizontal depth-wise 1 x k (stride (1, s)). 2k taps per output channel pair instead of k^2."""

    def __init__(self, in_channels: int, scale: int, out_channels: int, kernel_size: int = 9) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ConfigError(f"decomposed upsampler: kernel_size must be odd, not {kernel_size}")
        pad = kernel_size // 2
        self.vertical = nn.ConvTranspose2d(in_channels, out_channels, (kernel_size, 1), stride=(scale, 1),
                                           padding=(pad, 0), output_padding=(scale - 1, 0))
        self.horizontal = nn.ConvTranspose2d(out_channels, out_channels, (1, kernel_size), stride=(1, scale),
                                             padding=(0, pad), output_padding=(0, scale - 1), groups=out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.horizontal(self.vertical(x))


@register_upsampler("decomposed")
def _decomposed(in_channels: int, scale: int, out_channels: int) -> nn.Module:
    """Decomposed transposed convolution: 9x1 then depth-wise 1x9 (2k instead of k^2 taps)."""
    return DecomposedTransposedConv(in_channels, scale, out_channels)


def _interpolate(x: Tensor, scale: float, size: tuple[int, int] | None, mode: str) -> Tensor:
    size = size or (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
    return F.interpolate(x, size=size, mode=mode)


class InterpolateConv(nn.Module):
    """Interpolation + convolution: resize the features (nearest by default), conv 3x3, LReLU, conv 3x3 to out.

    Any factor >= 1 (the resize goes to a size); ``forward(x, size=...)`` picks the output size."""

    def __init__(self, in_channels: int, scale: float, out_channels: int, mode: str = "nearest") -> None:
        super().__init__()
        self.scale, self.mode = scale, mode
        self.conv_up = _conv(in_channels, in_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.conv_last = _conv(in_channels, out_channels)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        return self.conv_last(self.act(self.conv_up(_interpolate(x, self.scale, size, self.mode))))


@register_upsampler("nearest_conv", fractional=True)
def _nearest_conv(in_channels: int, scale: float, out_channels: int) -> nn.Module:
    """Interpolation + conv: nearest resize, 3x3 conv, LReLU, 3x3 conv to out (SwinIR real-world, one stage)."""
    return InterpolateConv(in_channels, scale, out_channels)


class PixelAttentionUpsampler(nn.Module):
    """PAN's U-PA (Zhao et al., ECCVW 2020): nearest resize, conv, pixel attention x * sigmoid(1x1(x)), LReLU, conv."""

    def __init__(self, in_channels: int, scale: float, out_channels: int) -> None:
        super().__init__()
        self.scale = scale
        self.conv_up = _conv(in_channels, in_channels)
        self.attention = nn.Conv2d(in_channels, in_channels, 1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.conv_last = _conv(in_channels, out_channels)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        y = self.conv_up(_interpolate(x, self.scale, size, "nearest"))
        return self.conv_last(self.act(y * torch.sigmoid(self.attention(y))))


@register_upsampler("attention", fractional=True)
def _attention(in_channels: int, scale: float, out_channels: int) -> nn.Module:
    """Attention-based upsampling: nearest resize, conv, pixel attention, LReLU, conv (PAN's U-PA)."""
    return PixelAttentionUpsampler(in_channels, scale, out_channels)


# -------------------------------------------------------------------------------------------- arbitrary scale


def output_size(in_hw: tuple[int, int], scale: float | None, size: tuple[int, int] | None,
                default_scale: float) -> tuple[int, int]:
    """The output size of an arbitrary-scale block: ``size`` if given, else round(in * scale)."""
    if size is not None:
        return int(size[0]), int(size[1])
    s = default_scale if scale is None else float(scale)
    if s < 1:
        raise ValueError(f"arbitrary-scale upsampling needs a scale >= 1, not {s:g}")
    return max(1, round(in_hw[0] * s)), max(1, round(in_hw[1] * s))


def meta_projection(in_len: int, out_len: int) -> tuple[Tensor, Tensor]:
    """Meta-SR's location projection along one axis: output i reads LR pixel floor(i / r) at offset i / r - floor.

    r = out_len / in_len (the real factor of this size pair). Returns (source index, offset in [0, 1))."""
    r = out_len / in_len
    position = torch.arange(out_len, dtype=torch.float64) / r
    source = torch.floor(position + 1e-9)
    offset = (position - source).clamp_min(0.0)
    return source.long().clamp_max(in_len - 1), offset.float()


class MetaUpscale(nn.Module):
    """Meta-SR's meta-upscale module: per output pixel, a k x k x in x out filter from (offset_y, offset_x, 1/r).

    ``meta_block`` is the official weight-prediction network (FC 3 -> 256, ReLU, FC 256 -> k*k*in*out). The filter
    depends only on the two offsets, so it is predicted once per distinct (row offset, column offset) pair.
    """

    def __init__(self, in_channels: int, scale: float, out_channels: int, kernel_size: int = 3,
                 hidden: int = 256) -> None:
        super().__init__()
        self.scale, self.out_channels, self.kernel_size = scale, out_channels, kernel_size
        self.meta_block = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, kernel_size * kernel_size * in_channels * out_channels))

    def forward(self, x: Tensor, scale: float | None = None, size: tuple[int, int] | None = None) -> Tensor:
        b, c, h, w = x.shape
        out_h, out_w = output_size((h, w), scale, size, self.scale)
        src_y, off_y = meta_projection(h, out_h)
        src_x, off_x = meta_projection(w, out_w)
        uy, inv_y = torch.unique(off_y, return_inverse=True)
        ux, inv_x = torch.unique(off_x, return_inverse=True)
        # 1/r as the official code feeds it (one value: the mean of the two axes' factors).
        inv_r = 0.5 * (h / out_h + w / out_w)
        grid = torch.stack(torch.meshgrid(uy, ux, indexing="ij"), dim=-1)  # Uy, Ux, 2
        pos = torch.cat([grid, torch.full_like(grid[..., :1], inv_r)], dim=-1).to(x.device, x.dtype)
        q = c * self.kernel_size**2
        weights = self.meta_block(pos).view(len(uy), len(ux), q, self.out_channels)
        feat = F.unfold(x, self.kernel_size, padding=self.kernel_size // 2).view(b, q, h, w)
        src_y, src_x, inv_y, inv_x = (t.to(x.device) for t in (src_y, src_x, inv_y, inv_x))
        rows = max(1, (1 << 23) // max(1, out_w * q * max(b, self.out_channels)))  # bound the gathered tensors
        out = []
        for top in range(0, out_h, rows):
            ys = slice(top, min(out_h, top + rows))
            f = feat[:, :, src_y[ys]][:, :, :, src_x]  # B, q, R, W
            wgt = weights[inv_y[ys]][:, inv_x]  # R, W, q, out
            out.append(torch.einsum("bqhw,hwqo->bohw", f, wgt))
        return torch.cat(out, dim=2)


@register_upsampler("meta", arbitrary=True)
def _meta(in_channels: int, scale: float, out_channels: int) -> nn.Module:
    """Meta-SR meta-upscale: filters predicted per position from (offset, 1/scale); any scale."""
    return MetaUpscale(in_channels, scale, out_channels)


def make_coord(hw: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """LIIF's pixel-centre coordinates in [-1, 1], shaped (H, W, 2) as (y, x)."""
    axes = [(-1 + (2 * torch.arange(n, device=device, dtype=torch.float32) + 1) / n) for n in hw]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


class MLP(nn.Module):
    """LIIF's ``imnet``: Linear + ReLU per hidden width, then a Linear to out (``layers.{0,2,...}``)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), nn.ReLU(inplace=True)]
            in_dim = width
        layers.append(nn.Linear(in_dim, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class LIIF(nn.Module):
    """Local implicit image function as an upsampler (the official ``LIIF`` minus its encoder).

    Features are unfolded 3x3 (in * 9 channels); a query at coordinate c reads the nearest latent of each of its 4
    neighbours (local ensemble), concatenates the coordinate relative to it (times the feature size) and the cell
    size (times the feature size), and the MLP's 4 predictions are blended by the areas of the opposite rectangles.
    ``hidden`` is the MLP (the paper: 256 x 4).
    """

    def __init__(self, in_channels: int, scale: float, out_channels: int, hidden: tuple[int, ...] = (256,) * 4,
                 query_chunk: int = 30000) -> None:
        super().__init__()
        self.scale, self.query_chunk = scale, query_chunk
        self.imnet = MLP(in_channels * 9 + 4, out_channels, tuple(hidden))

    def query(self, feat: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """Predictions at ``coord`` (B, Q, 2) in [-1, 1] with cell sizes ``cell`` (B, Q, 2): returns (B, Q, out)."""
        b, c, h, w = feat.shape
        return self._query(F.unfold(feat, 3, padding=1).view(b, c * 9, h, w), coord, cell)

    def _query(self, feat: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        b, _, h, w = feat.shape
        feat_coord = make_coord((h, w), feat.device).permute(2, 0, 1)[None].expand(b, 2, h, w)
        radius = torch.tensor([1.0 / h, 1.0 / w], device=feat.device)
        size = torch.tensor([float(h), float(w)], device=feat.device)
        preds, areas = [], []
        for vy in (-1, 1):
            for vx in (-1, 1):
                shifted = coord + torch.tensor([vy, vx], device=feat.device) * radius + 1e-6
                grid = shifted.clamp(-1 + 1e-6, 1 - 1e-6).flip(-1).unsqueeze(1)  # grid_sample wants (x, y)
                q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
                q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
                rel = (coord - q_coord) * size
                preds.append(self.imnet(torch.cat([q_feat, rel, cell * size], dim=-1)))
                areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
        total = torch.stack(areas).sum(0)
        # Each prediction is weighted by the area of the diagonally opposite rectangle (official swap 0<->3, 1<->2).
        return sum(p * (a / total).unsqueeze(-1) for p, a in zip(preds, areas[::-1]))

    def forward(self, x: Tensor, scale: float | None = None, size: tuple[int, int] | None = None) -> Tensor:
        b = x.shape[0]
        out_h, out_w = output_size(tuple(x.shape[-2:]), scale, size, self.scale)
        coord = make_coord((out_h, out_w), x.device).view(1, -1, 2).expand(b, -1, -1)
        cell = torch.tensor([2.0 / out_h, 2.0 / out_w], device=x.device).expand_as(coord)
        feat = F.unfold(x, 3, padding=1).view(b, x.shape[1] * 9, *x.shape[-2:])
        out = [self._query(feat, coord[:, i : i + self.query_chunk], cell[:, i : i + self.query_chunk])
               for i in range(0, coord.shape[1], self.query_chunk)]
        return torch.cat(out, dim=1).permute(0, 2, 1).reshape(b, -1, out_h, out_w)


@register_upsampler("liif", arbitrary=True)
def _liif(in_channels: int, scale: float, out_channels: int) -> nn.Module:
    """LIIF: an MLP decodes nearest latent + relative coordinate + cell, 4-neighbour ensemble; any scale."""
    return LIIF(in_channels, scale, out_channels)


def is_arbitrary_scale(module: nn.Module) -> bool:
    return isinstance(module, MetaUpscale | LIIF)
