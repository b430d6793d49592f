"""RLFN: Residual Local Feature Network for Efficient Super-Resolution (Kong et al., CVPR Workshops 2022).

State-dict names follow the official code (bytedance/RLFN, ``model/rlfn.py``, ``rlfn_s.py``, ``rlfn_ntire.py``):
``conv_1``, ``block_1..n`` (RLFB: ``c1_r``, ``c2_r``, ``c3_r``, ``c5``, ``esa``), ``conv_2``, ``upsampler.0``. The ESA
of RLFN is the pruned form without ``conv_max``/``conv3_``. RLFN and RLFN-S have six blocks, the pruned NTIRE 2022 model
(``RLFN_Prune``) four blocks with 48 inner channels. All released models take pixels in [0, 255].
"""

from __future__ import annotations

from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import pixelshuffle_scale, register_swappable_tail, tail_upsampler
from .base import SRModel
from .blocks import ESA, conv, count_indexed, run_at_least


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 conv + LeakyReLU with a residual, a 1x1 conv, then ESA."""

    def __init__(self, in_channels: int, mid_channels: int, esa_channels: int) -> None:
        super().__init__()
        self.c1_r = conv(in_channels, mid_channels, 3)
        self.c2_r = conv(mid_channels, mid_channels, 3)
        self.c3_r = conv(mid_channels, in_channels, 3)
        self.c5 = conv(in_channels, in_channels, 1)
        self.esa = ESA(in_channels, esa_channels, full=False)
        self.act = nn.LeakyReLU(0.05, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))


def _detect(sd: StateDict) -> dict | None:
    if "conv_1.weight" not in sd or "block_1.c1_r.weight" not in sd or "block_1.esa.conv1.weight" not in sd:
        return None
    feature_channels, in_channels = sd["conv_1.weight"].shape[:2]
    out_channels = in_channels
    config = {
        "scale": pixelshuffle_scale(sd, "upsampler.0.weight", out_channels),
        "in_channels": in_channels,
        "out_channels": out_channels,
        "feature_channels": feature_channels,
        "num_blocks": count_indexed(sd, r"block_(\d+)\."),
        "esa_channels": sd["block_1.esa.conv1.weight"].shape[0],
    }
    mid_channels = sd["block_1.c1_r.weight"].shape[0]
    if mid_channels != feature_channels:  # only the pruned NTIRE model has a different inner width
        config["mid_channels"] = mid_channels
    return config


@register_arch("rlfn", scales=(2, 3, 4), detect=_detect, paper="Kong et al., CVPR Workshops (NTIRE) 2022",
               tiny={"feature_channels": 16, "num_blocks": 2, "esa_channels": 8})
class RLFN(SRModel):
    """RLFN: residual local feature blocks (three convs + ESA), long skip, pixel-shuffle; input in [0, 255]."""

    input_range = 255.0
    min_size = ESA.min_size  # smaller inputs are padded

    def __init__(self, scale: int = 4, in_channels: int = 3, out_channels: int = 3, feature_channels: int = 52,
                 mid_channels: int | None = None, num_blocks: int = 6, esa_channels: int = 16,
                 upsampler: str = "pixelshuffle") -> None:
        super().__init__()
        mid_channels = mid_channels or feature_channels  # official RLFB: inner width defaults to the block width
        self.scale = scale
        self.num_blocks = num_blocks
        self.conv_1 = conv(in_channels, feature_channels, 3)
        for i in range(1, num_blocks + 1):
            setattr(self, f"block_{i}", RLFB(feature_channels, mid_channels, esa_channels))
        self.conv_2 = conv(feature_channels, feature_channels, 3)
        self.upsampler = tail_upsampler("rlfn", upsampler, feature_channels, scale, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)

    def _forward(self, x: Tensor) -> Tensor:
        feature = self.conv_1(x)
        out = feature
        for i in range(1, self.num_blocks + 1):
            out = getattr(self, f"block_{i}")(out)
        return self.upsampler(self.conv_2(out) + feature)


# RLFN paper Table 1 prints 527K (x2) and 543K (x4); the released rlfn_x2/x4.pth hold exactly these counts.
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_RLFN_PUBLISHED = {
    2: {"Set5": (38.07, 0.9607), "Set14": (33.72, 0.9187), "B100": (32.22, 0.9000), "Urban100": (32.33, 0.9299)},
    4: {"Set5": (32.24, 0.8952), "Set14": (28.62, 0.7813), "B100": (27.60, 0.7364), "Urban100": (26.17, 0.7877)},
}
register_variant("rlfn", "rlfn", {}, description="RLFN (52 channels, 6 RLFBs, ESA 16)"
                 " [published: CATA, secondary: RLFN paper Table 1]",
                 paper_params={2: 526_856, 4: 543_740},
                 paper_psnr=_RLFN_PUBLISHED)
register_variant("rlfn_s", "rlfn", {"feature_channels": 48},
                 description="RLFN-S (48 channels, 6 RLFBs, ESA 16)")
register_variant("rlfn_ntire", "rlfn", {"feature_channels": 46, "mid_channels": 48, "num_blocks": 4},
                 description="RLFN_Prune, the NTIRE 2022 efficient-SR winner (46 channels, 48 inner, 4 RLFBs)",
                 paper_params={4: 317_218})

register_swappable_tail("rlfn")  # --model-opt upsampler=NAME (litesr.upsamplers)
