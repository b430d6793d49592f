"""ESRGAN / RRDBNet: Enhanced Super-Resolution Generative Adversarial Networks (Wang et al., ECCVW 2018), and the
RRDBNet generators of Real-ESRGAN (Wang et al., ICCVW 2021), BSRGAN (Zhang et al., ICCV 2021) and ESRGAN+
(Rakotonirina & Rasoanaivo, ICASSP 2020).

A conv, ``num_block`` residual-in-residual dense blocks (RRDB: three 5-conv dense blocks with growth ``num_grow_ch``,
each scaled by 0.2 and added to its input, and the whole again scaled by 0.2 plus input), a conv and a skip over the
trunk, then per factor 2 a nearest x2 + conv + LeakyReLU(0.2), a conv + LeakyReLU and the output conv. Real-ESRGAN's
x2 and x1 models first fold the image with ``pixel_unshuffle`` (2 or 4), so their trunk runs at 1/4 of the pixels and
upsamples x4 (``pixel_unshuffle`` here; their first conv takes 12 or 48 channels). ESRGAN+ (``plus``) adds a 1x1
conv residual inside each dense block.

Three state-dict layouts are in circulation; ``key_format`` names the one a model uses (detected from the keys):

- ``"basicsr"``: xinntao's current code (ESRGAN repo ``RRDBNet_arch.py`` after 2019, BasicSR, Real-ESRGAN):
  ``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up{1,2,..}``, ``conv_hr``, ``conv_last``.
- ``"bsrgan"``: BSRGAN / RealSR ``network_rrdbnet.py``: ``RRDB_trunk.N.RDB{1,2,3}``, ``trunk_conv``, ``upconv{i}``,
  ``HRconv`` (others as basicsr).
- ``"esrgan_old"``: the original ESRGAN code and most community models: one flattened ``nn.Sequential`` ``model``
  (``model.0`` conv, ``model.1.sub.N.RDB{1,2,3}.conv{k}.0``, ``model.1.sub.{num_block}``, upsampling convs at
  ``model.3, 6, 9 ..``, then ``model.{3u+2}`` and ``model.{3u+4}``). litesr's checkpoint reader removes the common
  ``model.`` prefix, so this layout's keys are ``0.weight``, ``1.sub.0.RDB1.conv1.0.weight`` ...

Input and output are RGB in [0, 1]. Fully convolutional: any size, tiles freely; the unshuffle models need a
multiple of their fold (``pad_multiple``; ``forward`` also reflect-pads on its own, as spandrel does).
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
from .blocks import conv, count_indexed, pad_to_multiple

KEY_FORMATS = ("basicsr", "bsrgan", "esrgan_old")


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs (growth ``gc``), LeakyReLU after the first four; ``x + 0.2 * conv5``.

    ``wrapped``: each conv sits at index 0 of a Sequential with its activation (old layout: ``conv1.0.weight``).
    ``plus``: ESRGAN+'s bias-free 1x1 ``conv1x1`` from the input added after conv2, and conv2's output after conv4.
    """

    def __init__(self, nf: int, gc: int, *, wrapped: bool, plus: bool) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.conv1x1 = nn.Conv2d(nf, gc, 1, bias=False) if plus else None
        for i in range(1, 6):
            layer = conv(nf + (i - 1) * gc, gc if i < 5 else nf, 3)
            if wrapped:
                layer = nn.Sequential(layer, _lrelu()) if i < 5 else nn.Sequential(layer)
            setattr(self, f"conv{i}", layer)
        self.lrelu = nn.Identity() if wrapped else _lrelu()

    def forward(self, x: Tensor) -> Tensor:
        act = self.lrelu
        x1 = act(self.conv1(x))
        x2 = act(self.conv2(torch.cat((x, x1), 1)))
        if self.conv1x1 is not None:
            x2 = x2 + self.conv1x1(x)
        x3 = act(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = act(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        if self.conv1x1 is not None:
            x4 = x4 + x2
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, ``x + 0.2 * out``; names ``rdb1`` or ``RDB1``."""

    def __init__(self, nf: int, gc: int, *, upper: bool, wrapped: bool, plus: bool) -> None:
        super().__init__()
        self.names = tuple(f"{'RDB' if upper else 'rdb'}{i}" for i in (1, 2, 3))
        for name in self.names:
            setattr(self, name, ResidualDenseBlock(nf, gc, wrapped=wrapped, plus=plus))

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for name in self.names:
            out = getattr(self, name)(out)
        return out * 0.2 + x


class _Shortcut(nn.Module):
    """The old layout's ``ShortcutBlock``: ``x + sub(x)``."""

    def __init__(self, sub: nn.Module) -> None:
        super().__init__()
        self.sub = sub

    def forward(self, x: Tensor) -> Tensor:
        return x + self.sub(x)


def _unshuffle_factor(in_ch: int, out_ch: int) -> int:
    """spandrel's rule: a first conv with 4x or 16x the output channels means a pixel-unshuffled input."""
    for factor in (2, 4):
        if in_ch == out_ch * factor**2:
            return factor
    return 1


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "conv_first.weight" in sd and "body.0.rdb1.conv1.weight" in sd:
        fmt, first, block, trunk = "basicsr", "conv_first", r"body\.(\d+)\.rdb1\.conv1\.weight$", "body.0.rdb1"
        up, last = r"conv_up(\d+)\.weight$", "conv_last"
    elif "conv_first.weight" in sd and "RRDB_trunk.0.RDB1.conv1.weight" in sd:
        fmt, first, trunk = "bsrgan", "conv_first", "RRDB_trunk.0.RDB1"
        block = r"RRDB_trunk\.(\d+)\.RDB1\.conv1\.weight$"
        up, last = r"upconv(\d+)\.weight$", "conv_last"
    elif "0.weight" in sd and "1.sub.0.RDB1.conv1.0.weight" in sd:
        fmt, first, block, trunk = "esrgan_old", "0", r"1\.sub\.(\d+)\.RDB1\.conv1\.0\.weight$", "1.sub.0.RDB1"
        top = max(int(m.group(1)) for k in sd if (m := re.match(r"(\d+)\.weight$", k)))
        up, last = None, str(top)
    else:
        return None
    ups = count_indexed(sd, up) if up else (int(last) - 4) // 3
    in_ch, out_ch = sd[f"{first}.weight"].shape[1], sd[f"{last}.weight"].shape[0]
    factor = _unshuffle_factor(in_ch, out_ch)
    conv1 = sd[f"{trunk}.conv1.weight" if fmt != "esrgan_old" else f"{trunk}.conv1.0.weight"]
    return {
        "scale": 2**ups // factor,
        "in_chans": int(in_ch) // factor**2,
        "out_chans": int(out_ch),
        "num_feat": int(conv1.shape[1]),
        "num_block": count_indexed(sd, block),
        "num_grow_ch": int(conv1.shape[0]),
        "pixel_unshuffle": factor,
        "plus": f"{trunk}.conv1x1.weight" in sd,
        "key_format": fmt,
    }


@register_arch("esrgan", scales=(4, 1, 2, 8, 16), detect=_detect, paper="Wang et al., ECCVW 2018 (ESRGAN)",
               tiny={"num_feat": 8, "num_block": 1, "num_grow_ch": 4})
class RRDBNet(SRModel):
    """ESRGAN's RRDBNet (23 RRDB of 64 channels, growth 32); also Real-ESRGAN, BSRGAN and ESRGAN+ generators.

    ``scale`` is the model's factor; it upsamples ``scale * pixel_unshuffle`` times after folding the input.
    """

    def __init__(self, scale: int = 4, in_chans: int = 3, out_chans: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, pixel_unshuffle: int = 1, plus: bool = False,
                 key_format: str = "basicsr") -> None:
        super().__init__()
        if key_format not in KEY_FORMATS:
            raise ConfigError(f"key_format must be one of {', '.join(KEY_FORMATS)}, not {key_format!r}")
        if pixel_unshuffle not in (1, 2, 4):
            raise ConfigError(f"pixel_unshuffle must be 1, 2 or 4, not {pixel_unshuffle}")
        ups = scale * pixel_unshuffle
        if ups & (ups - 1):
            raise ConfigError(f"RRDBNet upsamples by powers of 2: x{scale} with pixel_unshuffle {pixel_unshuffle} "
                              "is not one")
        self.scale, self.pixel_unshuffle, self.key_format = scale, pixel_unshuffle, key_format
        self.pad_multiple = pixel_unshuffle
        self.n_up = int(math.log2(ups))
        first_in = in_chans * pixel_unshuffle**2
        old = key_format == "esrgan_old"
        blocks = [RRDB(num_feat, num_grow_ch, upper=key_format != "basicsr", wrapped=old, plus=plus)
                  for _ in range(num_block)]
        if old:
            # One flattened Sequential; parameter-free layers keep their slots so the indices match.
            layers: list[nn.Module] = [conv(first_in, num_feat, 3),
                                       _Shortcut(nn.Sequential(*blocks, conv(num_feat, num_feat, 3)))]
            for _ in range(self.n_up):
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(num_feat, num_feat, 3), _lrelu()]
            layers += [conv(num_feat, num_feat, 3), _lrelu(), conv(num_feat, out_chans, 3)]
            for i, layer in enumerate(layers):
                self.add_module(str(i), layer)
            self._sequence = [str(i) for i in range(len(layers))]
            return
        names = ({"trunk": "body", "body_conv": "conv_body", "up": "conv_up", "hr": "conv_hr"}
                 if key_format == "basicsr" else
                 {"trunk": "RRDB_trunk", "body_conv": "trunk_conv", "up": "upconv", "hr": "HRconv"})
        self.names = names
        self.conv_first = conv(first_in, num_feat, 3)
        setattr(self, names["trunk"], nn.Sequential(*blocks))
        setattr(self, names["body_conv"], conv(num_feat, num_feat, 3))
        for i in range(1, self.n_up + 1):
            setattr(self, f"{names['up']}{i}", conv(num_feat, num_feat, 3))
        setattr(self, names["hr"], conv(num_feat, num_feat, 3))
        self.conv_last = conv(num_feat, out_chans, 3)
        self.lrelu = _lrelu()

    def _body(self, feat: Tensor) -> Tensor:
        if self.key_format == "esrgan_old":
            for name in self._sequence:
                feat = getattr(self, name)(feat)
            return feat
        n = self.names
        feat = self.conv_first(feat)
        feat = feat + getattr(self, n["body_conv"])(getattr(self, n["trunk"])(feat))
        for i in range(1, self.n_up + 1):
            feat = self.lrelu(getattr(self, f"{n['up']}{i}")(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(getattr(self, n["hr"])(feat)))

    def forward(self, x: Tensor) -> Tensor:
        if self.pixel_unshuffle == 1:
            return self._body(x)
        x, h, w = pad_to_multiple(x, self.pixel_unshuffle)
        out = self._body(F.pixel_unshuffle(x, self.pixel_unshuffle))
        return out[..., : h * self.scale, : w * self.scale]


register_variant("esrgan", "esrgan", {}, description="ESRGAN RRDBNet x4 (23 RRDB, 64 channels, growth 32)")
register_variant("realesrgan_x4plus", "esrgan", {},
                 description="Real-ESRGAN RealESRGAN_x4plus: RRDBNet x4 (23 blocks), BasicSR keys")
register_variant("realesrgan_x4plus_anime_6b", "esrgan", {"num_block": 6},
                 description="Real-ESRGAN RealESRGAN_x4plus_anime_6B: RRDBNet x4 with 6 blocks")
register_variant("esrgan_old", "esrgan", {"key_format": "esrgan_old"},
                 description="ESRGAN in the original code's flattened `model.N` layout (RRDB_ESRGAN_x4.pth, community)")
register_variant("bsrgan", "esrgan", {"key_format": "bsrgan"},
                 description="BSRGAN / RealSR RRDBNet x4 (RRDB_trunk / trunk_conv / upconv / HRconv keys)")
