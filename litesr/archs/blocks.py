"""Building blocks shared by several architectures. Each lives here once; architectures import them.

Names of sub-modules follow the official code of the architectures that use them, so state-dict keys match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..upsamplers import Upsample, UpsampleOneStep, multistage_scale, pixelshuffle_block  # noqa: F401 (re-exported)


def conv(in_channels: int, out_channels: int, kernel_size: int = 3, *, bias: bool = True, stride: int = 1,
         groups: int = 1, dilation: int = 1, padding_mode: str = "zeros") -> nn.Conv2d:
    """A 'same'-padded convolution (padding = dilation * (k - 1) / 2), the default layer of most SR code."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=dilation * (kernel_size - 1) // 2,
                     bias=bias, groups=groups, dilation=dilation, padding_mode=padding_mode)


# The upsamplers live in litesr.upsamplers (one module for every upsampler); re-exported here for the architectures.
upsample_scale = multistage_scale


class MeanShift(nn.Conv2d):
    """Subtract (sign=-1) or add (sign=+1) the dataset RGB mean, as a frozen 1x1 conv (EDSR/RCAN/CARN keys)."""

    def __init__(self, rgb_range: float = 1.0, rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040),
                 rgb_std: tuple[float, float, float] = (1.0, 1.0, 1.0), sign: int = -1) -> None:
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


def channel_mean(x: Tensor) -> Tensor:
    return x.mean(dim=(2, 3), keepdim=True)


def strictly_channels_last(x: Tensor) -> bool:
    """A 4-D tensor laid out channels-last and not also NCHW-contiguous (1x1 images or one channel are both)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def channel_std(x: Tensor) -> Tensor:
    """Per-channel standard deviation over H, W (population), summed in IMDN's ``stdv_channels`` order.

    The order matters: sqrt is steep near 0, and deep CCA stacks (BSRN) turn a last-bit difference into 1e-2 at the
    output.
    """
    count = x.size(2) * x.size(3)
    if strictly_channels_last(x):
        # The same sums on the dense (N, H, W, C) view: PyTorch's CPU reductions over W then H of a channels-last
        # tensor run 9x slower than over the view's middle dimensions (IMDN bf16: 15 of 114 ms).
        view = x.permute(0, 2, 3, 1)
        var = (view - view.sum(2, keepdim=True).sum(1, keepdim=True) / count).pow(2)
        return (var.sum(2, keepdim=True).sum(1, keepdim=True) / count).pow(0.5).permute(0, 3, 1, 2)
    var = (x - x.sum(3, keepdim=True).sum(2, keepdim=True) / count).pow(2)
    return (var.sum(3, keepdim=True).sum(2, keepdim=True) / count).pow(0.5)


class CALayer(nn.Module):
    """Squeeze-and-excitation channel attention of RCAN (``conv_du``: 1x1 down, ReLU, 1x1 up, sigmoid)."""

    # Declared for tiled inference (litesr.descriptor / litesr.tiling): the output is ``x * conv_du(squeeze)`` with
    # the squeeze a per-channel statistic of the whole input, so tiles can be fed whole-image statistics.
    whole_image_statistics: str | None = "mean"

    def __init__(self, channels: int, reduction: int = 16, *, bias: bool = True) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(self.avg_pool(x))


class CCALayer(CALayer):
    """IMDN's contrast-aware channel attention: the squeeze is mean + standard deviation of each channel."""

    whole_image_statistics = "mean+std"

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(channel_std(x) + self.avg_pool(x))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor (Restormer/NAFNet style ``weight``/``bias``)."""

    def __init__(self, channels: int, eps: float = 1e-6, *, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        y = y * self.weight.view(1, -1, 1, 1)
        return y + self.bias.view(1, -1, 1, 1) if self.bias is not None else y


class BodyLayerNorm(nn.Module):
    """Restormer's ``LayerNorm(dim, 'WithBias')``: channel LayerNorm with its parameters under ``body``.

    Restormer and DITN use eps 1e-5; the default 1e-6 is SSIU's.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.body = LayerNorm2d(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def pad_to_multiple(x: Tensor, multiple: int, mode: str = "reflect") -> tuple[Tensor, int, int]:
    """Pad the bottom/right of an NCHW tensor to a multiple; returns the tensor and the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    # While exporting with symbolic sizes, ``ph or pw`` would be decided for the sample size and the padding left out
    # of the graph (ONNX reshapes then fail at other sizes): always pad there, a zero pad being a no-op.
    if torch.compiler.is_exporting() or ph or pw:
        if mode == "reflect" and (ph >= h or pw >= w):
            mode = "replicate"  # reflect needs pad < size; tiny inputs fall back to edge replication
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def run_at_least(fn: Callable[[Tensor], Tensor], x: Tensor, min_size: int, scale: int) -> Tensor:
    """``fn(x)``, but inputs smaller than ``min_size`` (pooling branches: SAFMN, ESA) are padded first and the output
    cropped; other sizes run as they are, so results on normal images stay those of the official code."""
    h, w = x.shape[-2:]
    if h >= min_size and w >= min_size:
        return fn(x)
    padded, _, _ = pad_to_multiple(x, min_size)
    return fn(padded)[..., : h * scale, : w * scale]


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) -> (B * nW, ws, ws, C); H and W must be multiples of ``window_size``."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_reverse(windows: Tensor, window_size: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws, ws, C) -> (B, H, W, C)."""
    b = windows.shape[0] // ((h // window_size) * (w // window_size))
    x = windows.view(b, h // window_size, w // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


# --- Transformer pieces (Swin-style window attention and friends) --------------------------------------------------


def drop_path_rates(rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Stochastic-depth rates rising linearly from 0 to ``rate`` over all blocks, split per stage (Swin/SwinIR rule).

    Plain Python rather than ``torch.linspace(...).item()`` so that building on the meta device works.
    """
    total = sum(depths)
    flat = [rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(flat[start : start + depth])
        start += depth
    return out


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``drop_prob`` (training only)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Transformer feed-forward: ``fc1`` -> activation -> dropout -> ``fc2`` -> dropout (timm/Swin key names)."""

    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 act_layer: Callable[[], nn.Module] = nn.GELU, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features or in_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features or in_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def relative_position_index(window_size: int | tuple[int, int], device: torch.device | str | None = None) -> Tensor:
    """(Wh*Ww, Wh*Ww) int64 index of each token pair's relative offset into a (2Wh-1)*(2Ww-1) bias table (Swin)."""
    wh, ww = (window_size, window_size) if isinstance(window_size, int) else window_size
    coords = torch.stack(torch.meshgrid(torch.arange(wh, device=device), torch.arange(ww, device=device),
                                        indexing="ij")).flatten(1)  # 2, N
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N
    return (rel[0] + wh - 1) * (2 * ww - 1) + (rel[1] + ww - 1)


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int,
                        device: torch.device | str | None = None) -> Tensor:
    """Additive attention mask (nW, ws*ws, ws*ws) of shifted-window attention for a padded H x W feature map.

    After the cyclic shift, a window at the bottom/right edge holds tokens from up to 3 x 3 image regions that are not
    neighbours; pairs from different regions get -100 (the Swin value), pairs from one region 0. Works for any H, W
    that are multiples of ``window_size``, so no fixed training size is baked in.
    """

    def region(n: int) -> Tensor:
        pos = torch.arange(n, device=device)
        return (pos >= n - window_size).long() + (pos >= n - shift_size).long()

    ids = (region(height)[:, None] * 3 + region(width)[None, :]).to(torch.float32)
    windows = window_partition(ids[None, :, :, None], window_size).reshape(-1, window_size * window_size)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class DerivedBuffers(nn.Module):
    """Mixin for modules whose buffers are pure functions of the configuration (relative position indices, masks).

    Official checkpoints carry such buffers, so they stay in the state dict (strict loading needs the keys), but
    loading keeps the freshly computed values: a checkpoint cast to fp16 or edited cannot corrupt an index table.
    """

    derived_buffers: tuple[str, ...] = ()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        for name in self.derived_buffers:
            own, key = getattr(self, name, None), prefix + name
            if isinstance(own, Tensor) and key in state_dict and tuple(state_dict[key].shape) == tuple(own.shape):
                state_dict[key] = own
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, 1)


class BSConvU(nn.Module):
    """Blueprint-separable convolution, unconstrained (Haase & Amthor, CVPR 2020), as BSRN uses it.

    A pointwise 1x1 without bias (``pw``) then a depthwise k x k (``dw``). ``pointwise`` replaces the 1x1 (BSRN-S stores
    it as a biased ``nn.Linear``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 *, bias: bool = True, pointwise: Callable[[int, int], nn.Module] | None = None) -> None:
        super().__init__()
        self.pw = pointwise(in_channels, out_channels) if pointwise else nn.Conv2d(in_channels, out_channels, 1,
                                                                                    bias=False)
        self.dw = nn.Conv2d(out_channels, out_channels, kernel_size, stride=stride, padding=padding,
                            groups=out_channels, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.dw(self.pw(x))


class ESA(nn.Module):
    """Enhanced spatial attention (RFANet, CVPR 2020) in the forms of RFDN, RLFN and BSRN.

    ``full=True`` is RFDN's form: ``conv_max`` and ``conv3_`` exist, with ``act`` after ``conv_max`` and ``conv3``.
    ``full=False`` is RLFN's pruned form: one ``conv3`` straight after the max-pool and no activation, so its keys lack
    ``conv_max``/``conv3_``. ``esa_channels`` defaults to ``n_feats // 4`` (RFDN, BSRN); RLFN fixes it to 16.
    ``conv`` builds the 3x3 convs and ``down_conv`` the strided one (BSRN: BSConvU), ``pointwise`` the 1x1 convs.
    """

    # The strided 3x3 (no padding) and the 7x7 / 3 max-pool need this many pixels per side (see ``run_at_least``).
    min_size = 15

    def __init__(self, n_feats: int, esa_channels: int | None = None, *, full: bool = True,
                 conv: Callable[..., nn.Module] = nn.Conv2d, down_conv: Callable[..., nn.Module] | None = None,
                 pointwise: Callable[[int, int], nn.Module] = _conv1x1,
                 act: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        f = esa_channels or n_feats // 4
        self.full = full
        self.conv1 = pointwise(n_feats, f)
        self.conv_f = pointwise(f, f)
        if full:
            self.conv_max = conv(f, f, kernel_size=3, padding=1)
        self.conv2 = (down_conv or conv)(f, f, kernel_size=3, stride=2, padding=0)
        self.conv3 = conv(f, f, kernel_size=3, padding=1)
        if full:
            self.conv3_ = conv(f, f, kernel_size=3, padding=1)
        self.conv4 = pointwise(f, n_feats)
        self.act = act() if full else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        c1_ = self.conv1(x)
        c1 = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        if self.full:
            c3 = self.conv3_(self.act(self.conv3(self.act(self.conv_max(c1)))))
        else:
            c3 = self.conv3(c1)
        c3 = F.interpolate(c3, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


def count_indexed(state_dict: Mapping[str, Tensor], pattern: str) -> int:
    """How many distinct indices the first group of ``pattern`` takes over the keys (``r"body\\.(\\d+)\\."`` -> blocks).

    For ``detect`` functions; the pattern is matched from the start of each key (``re.match``).
    """
    regex = re.compile(pattern)
    return len({m.group(1) for key in state_dict if (m := regex.match(key))})
