"""RCAN: Image Super-Resolution Using Very Deep Residual Channel Attention Networks (Zhang et al., ECCV 2018).

Residual-in-residual: ``n_resgroups`` residual groups (each ``n_resblocks`` residual channel-attention blocks and a
conv, with a short skip), a conv and a long skip over all groups, then the EDSR upsampler. A block (RCAB) is
conv-ReLU-conv followed by squeeze-and-excitation channel attention (``CALayer``, reduction 16), plus its input.
The paper model is 10 groups x 20 blocks of 64 channels (about 15.6M parameters at x4).

State-dict names follow the official code (yulunzhang/RCAN ``RCAN_TestCode/code/model/rcan.py``): ``sub_mean``,
``head.0``, ``body.G.body.B.body.{0,2,3}`` (``.3`` is the ``CALayer``, keys ``conv_du.0``/``conv_du.2``),
``body.G.body.{n_resblocks}`` (the group's conv), ``body.{n_resgroups}``, ``tail.0`` (upsampler), ``tail.1``,
``add_mean``. Official weights expect pixels in [0, 255].
"""

from __future__ import annotations

from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import CALayer, MeanShift, Upsample, conv, count_indexed
from .edsr import DIV2K_RGB_MEAN, detect_rgb_range, upsampler_scale


class RCAB(nn.Module):
    """Residual channel attention block: conv, ReLU, conv, channel attention, plus the input."""

    def __init__(self, n_feats: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats, 3), nn.ReLU(inplace=True), conv(n_feats, n_feats, 3),
                                  CALayer(n_feats, reduction))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    """``n_resblocks`` RCABs and a conv, with a short skip connection."""

    def __init__(self, n_feats: int, reduction: int, n_resblocks: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(RCAB(n_feats, reduction) for _ in range(n_resblocks)), conv(n_feats, n_feats, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


def _detect(sd: StateDict) -> dict | None:
    if "body.0.body.0.body.3.conv_du.0.weight" not in sd or "tail.1.weight" not in sd or "head.0.weight" not in sd:
        return None
    n_feats, n_colors = sd["head.0.weight"].shape[:2]
    return {
        "scale": upsampler_scale(sd, "tail.0", n_feats),
        "n_resgroups": count_indexed(sd, r"body\.(\d+)\.body\.0\.body\.0\.weight$"),
        "n_resblocks": count_indexed(sd, r"body\.0\.body\.(\d+)\.body\.0\.weight$"),
        "n_feats": n_feats,
        "reduction": n_feats // sd["body.0.body.0.body.3.conv_du.0.weight"].shape[0],
        "n_colors": n_colors,
        "rgb_range": detect_rgb_range(sd, 255.0),
    }


@register_arch("rcan", scales=(2, 3, 4, 8), detect=_detect, paper="Zhang et al., ECCV 2018",
               tiny={"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4})
class RCAN(SRModel):
    """RCAN: residual groups of residual channel-attention blocks (paper: 10 groups x 20 blocks, 64 channels)."""

    def __init__(self, scale: int = 4, n_resgroups: int = 10, n_resblocks: int = 20, n_feats: int = 64,
                 reduction: int = 16, n_colors: int = 3, rgb_range: float = 255.0) -> None:
        super().__init__()
        self.scale = scale
        self.input_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.body = nn.Sequential(*(ResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)),
                                  conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(Upsample(scale, n_feats), conv(n_feats, n_colors, 3))
        self.add_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN, sign=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        return self.add_mean(self.tail(x))


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_RCAN_PUBLISHED = {
    2: {"Set5": (38.27, 0.9614), "Set14": (34.12, 0.9216), "B100": (32.41, 0.9027), "Urban100": (33.34, 0.9384),
        "Manga109": (39.44, 0.9786)},
    3: {"Set5": (34.74, 0.9299), "Set14": (30.65, 0.8482), "B100": (29.32, 0.8111), "Urban100": (29.09, 0.8702),
        "Manga109": (34.44, 0.9499)},
    4: {"Set5": (32.63, 0.9002), "Set14": (28.87, 0.7889), "B100": (27.77, 0.7436), "Urban100": (26.82, 0.8087),
        "Manga109": (31.22, 0.9173)},
}
register_variant("rcan", "rcan", {}, description="RCAN (10 residual groups x 20 RCAB, 64 channels, reduction 16)"
                 " [published: RCAN]",
                 paper_params={4: 15_600_000},
                 paper_psnr=_RCAN_PUBLISHED)
