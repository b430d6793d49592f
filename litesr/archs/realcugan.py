"""Real-CUGAN (bilibili AI Lab, 2022; ``upcunet_v3.py``): cascaded U-Nets for anime super-resolution.

Two U-Nets in cascade on a reflect-padded input: ``unet1`` (one down/up level, squeeze-excitation in the middle)
produces an upscaled estimate with a transposed conv (x2, x3) or features (x4, x2-fast), ``unet2`` (two levels) refines
it, and the two are added. Convolutions are unpadded ("valid"), so each stage eats its border: the input is padded by
18 (x2), 14 (x3), 19 (x4) or 38 (x2-fast) pixels and the output is exact. x4 and x2-fast end with a conv to 4x the
output channels, PixelShuffle(2) and the nearest-upsampled input added; x2-fast first folds the image with
pixel-unshuffle 2. ``pro`` models (a ``pro`` entry in the state dict) were trained on inputs mapped to
[0.15, 0.85]: ``x * 0.7 + 0.15`` in, the inverse out.

State-dict names follow the official code (``unet1.conv1.conv.{0,2}``, ``unet1.conv1_down``, ``unet2.conv3.seblock``,
``conv_final`` ...). Input and output are RGB in [0, 1]. The height and width need not be multiples of anything
(the model pads them up to even or to a multiple of 4, x3), but the reflect padding needs at least ``min_size``
pixels; smaller inputs are padded further and cropped (``run_at_least``). The receptive field is large (the padding
sizes above), so tiles want an overlap of at least 38 pixels, which the engine's default of 32 nearly gives.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import run_at_least


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.1, inplace=True)


class SEBlock(nn.Module):
    """Squeeze-excitation with biased 1x1 convs (reduction 8); the mean is taken in fp32, as the official fp16 path."""

    # Tiled inference feeds it whole-image channel means (litesr.tiling), as the official tile mode caches them.
    whole_image_statistics: str | None = "mean"

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2d(channels // reduction, channels, 1)

    @property
    def conv_du(self) -> nn.Sequential:
        """squeeze -> attention, in the form litesr.tiling applies to whole-image statistics (no new parameters)."""
        return nn.Sequential(self.conv1, nn.ReLU(), self.conv2, nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        squeeze = x.float().mean(dim=(2, 3), keepdim=True).to(x.dtype)
        return x * torch.sigmoid(self.conv2(F.relu(self.conv1(squeeze), inplace=True)))


class UNetConv(nn.Module):
    """Two valid 3x3 convs with LeakyReLU(0.1), optionally squeeze-excitation."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, *, se: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_ch, mid_ch, 3), nn.LeakyReLU(0.1, inplace=True),
                                  nn.Conv2d(mid_ch, out_ch, 3), nn.LeakyReLU(0.1, inplace=True))
        self.seblock = SEBlock(out_ch) if se else None

    def forward(self, x: Tensor) -> Tensor:
        z = self.conv(x)
        return self.seblock(z) if self.seblock is not None else z


def _crop(x: Tensor, n: int) -> Tensor:
    return x[..., n:-n, n:-n]


class UNet1(nn.Module):
    """One-level U-Net; ``bottom``: a transposed conv (``(kernel, stride, padding)``) or None for a valid 3x3."""

    def __init__(self, in_ch: int, out_ch: int, bottom: tuple[int, int, int] | None, w: int = 64) -> None:
        super().__init__()
        self.conv1 = UNetConv(in_ch, w // 2, w, se=False)
        self.conv1_down = nn.Conv2d(w, w, 2, 2)
        self.conv2 = UNetConv(w, 2 * w, w, se=True)
        self.conv2_up = nn.ConvTranspose2d(w, w, 2, 2)
        self.conv3 = nn.Conv2d(w, w, 3)
        self.conv_bottom = nn.ConvTranspose2d(w, out_ch, *bottom) if bottom else nn.Conv2d(w, out_ch, 3)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.conv1(x)
        x2 = _lrelu(self.conv1_down(x1))
        x2 = _lrelu(self.conv2_up(self.conv2(x2)))
        return self.conv_bottom(_lrelu(self.conv3(_crop(x1, 4) + x2)))


class UNet2(nn.Module):
    """Two-level U-Net with squeeze-excitation in conv2..conv4; valid 3x3 output conv."""

    def __init__(self, in_ch: int, out_ch: int, w: int = 64) -> None:
        super().__init__()
        self.conv1 = UNetConv(in_ch, w // 2, w, se=False)
        self.conv1_down = nn.Conv2d(w, w, 2, 2)
        self.conv2 = UNetConv(w, w, 2 * w, se=True)
        self.conv2_down = nn.Conv2d(2 * w, 2 * w, 2, 2)
        self.conv3 = UNetConv(2 * w, 4 * w, 2 * w, se=True)
        self.conv3_up = nn.ConvTranspose2d(2 * w, 2 * w, 2, 2)
        self.conv4 = UNetConv(2 * w, w, w, se=True)
        self.conv4_up = nn.ConvTranspose2d(w, w, 2, 2)
        self.conv5 = nn.Conv2d(w, w, 3)
        self.conv_bottom = nn.Conv2d(w, out_ch, 3)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.conv1(x)
        x2 = self.conv2(_lrelu(self.conv1_down(x1)))
        x3 = self.conv3(_lrelu(self.conv2_down(x2)))
        x3 = _lrelu(self.conv3_up(x3))
        x4 = _lrelu(self.conv4_up(self.conv4(_crop(x2, 4) + x3)))
        return self.conv_bottom(_lrelu(self.conv5(_crop(x1, 16) + x4)))


# scale, fast -> (reflect padding, size multiple the padded image is rounded to)
_PADDING = {(2, False): (18, 2), (3, False): (14, 4), (4, False): (19, 2), (2, True): (38, 4)}


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "unet1.conv1.conv.0.weight" not in sd or "unet2.conv_bottom.weight" not in sd:
        return None
    in_ch = int(sd["unet1.conv1.conv.0.weight"].shape[1])
    pro, width = "pro" in sd, int(sd["unet1.conv1.conv.2.weight"].shape[0])
    if "conv_final.weight" in sd:
        out_ch = int(sd["conv_final.weight"].shape[0]) // 4
        if out_ch * 4 == in_ch:  # a 4x(in=4k) would look the same; spandrel assumes the fast x2 too
            return {"scale": 2, "in_channels": in_ch // 4, "out_channels": out_ch, "fast": True, "pro": pro,
                    "width": width}
        return {"scale": 4, "in_channels": in_ch, "out_channels": out_ch, "pro": pro, "width": width}
    scale = 3 if sd["unet1.conv_bottom.weight"].shape[2] == 5 else 2
    return {"scale": scale, "in_channels": in_ch, "out_channels": int(sd["unet2.conv_bottom.weight"].shape[0]),
            "pro": pro, "width": width}


@register_arch("realcugan", scales=(2, 3, 4), detect=_detect, paper="bilibili AI Lab, 2022 (Real-CUGAN)",
               tiny={"width": 16})
class RealCUGAN(SRModel):
    """Real-CUGAN UpCunet x2 / x3 / x4 / x2-fast (``fast``); ``pro`` for the pro models' input mapping.

    ``width`` (64 in every official model) scales all channel counts (width/2, width, 2 width, 4 width), for tests.
    """

    def __init__(self, scale: int = 2, in_channels: int = 3, out_channels: int = 3, pro: bool = False,
                 fast: bool = False, width: int = 64) -> None:
        super().__init__()
        if (scale, fast) not in _PADDING:
            raise ConfigError(f"Real-CUGAN has x2, x3, x4 and a fast x2, not x{scale}{' fast' if fast else ''}")
        if fast and pro:
            raise ConfigError("Real-CUGAN has no pro variant of the fast x2 model")
        self.scale, self.fast = scale, fast
        self.color_space = "rgb" if in_channels == 3 else "y"
        self.border, self.multiple = _PADDING[(scale, fast)]
        self.min_size = 40 if fast else 32
        if pro:
            self.register_buffer("pro", torch.zeros(1))
        self.is_pro = pro
        if scale == 4 or fast:
            self.unet1 = UNet1(in_channels * (4 if fast else 1), width, (4, 2, 3), width)
            self.unet2 = UNet2(width, width, width)
            self.ps = nn.PixelShuffle(2)
            self.conv_final = nn.Conv2d(width, 4 * out_channels, 3)
        else:
            self.unet1 = UNet1(in_channels, out_channels, (4, 2, 3) if scale == 2 else (5, 3, 2), width)
            self.unet2 = UNet2(in_channels, out_channels, width)

    def _forward(self, x: Tensor) -> Tensor:
        h0, w0 = x.shape[-2:]
        if self.is_pro:
            x = x * 0.7 + 0.15
        m, b = self.multiple, self.border
        ph, pw = -(-h0 // m) * m, -(-w0 // m) * m
        y = F.pad(x, (b, b + pw - w0, b, b + ph - h0), "reflect")
        if self.fast:
            y = F.pixel_unshuffle(y, 2)
        y = self.unet1(y)
        y = self.unet2(y) + _crop(y, 20)
        if hasattr(self, "conv_final"):
            y = self.ps(_crop(self.conv_final(y), 1))
        y = y[..., : h0 * self.scale, : w0 * self.scale]
        if hasattr(self, "conv_final"):
            y = y + F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return (y - 0.15) / 0.7 if self.is_pro else y

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


register_variant("realcugan", "realcugan", {}, description="Real-CUGAN UpCunet x2 (up2x-*.pth)")
register_variant("realcugan_pro", "realcugan", {"pro": True}, description="Real-CUGAN pro x2 / x3 (pro-*.pth)")
register_variant("realcugan_fast", "realcugan", {"fast": True}, description="Real-CUGAN fast x2 (pixel-unshuffle 2)")
