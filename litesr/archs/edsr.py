"""EDSR and MDSR: Enhanced Deep Residual Networks for Single Image Super-Resolution (Lim et al., CVPRW 2017).

EDSR: residual blocks without batch normalisation (conv-ReLU-conv, output scaled by ``res_scale``), a global skip
over the body, a sub-pixel upsampler, and the DIV2K RGB mean subtracted at the input and added back at the output.
The paper model is 32 blocks of 256 channels with residual scaling 0.1; EDSR-baseline is 16 blocks of 64, no scaling.

MDSR: one network for x2, x3 and x4. Each scale has its own pre-processing head (two residual blocks with 5x5
kernels) and its own upsampler; the 80-block body and the final conv are shared.

State-dict names follow the official code (sanghyun-son/EDSR-PyTorch ``src/model/edsr.py`` and ``mdsr.py``):
``sub_mean``, ``add_mean``, ``head.0``, ``body.N.body.{0,2}`` (+ ``body.{n}`` the conv after the blocks), ``tail.0``
(the upsampler) and ``tail.1`` for EDSR; ``pre_process.i``, ``upsample.i`` and ``tail.0`` for MDSR. The official
checkpoints expect pixels in [0, 255] (``rgb_range`` 255), which is this module's ``input_range``.

The paper trains x3 and x4 EDSR starting from the x2 model: :func:`warm_start` copies every tensor whose name and shape
agree (all but the upsampler convolutions whose channel count depends on the scale), as the official loader does.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import multistage_scale
from .base import SRModel
from .blocks import MeanShift, Upsample, conv, count_indexed

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class ResBlock(nn.Module):
    """EDSR residual block: conv-ReLU-conv (``body.0``, ``body.2``), scaled by ``res_scale``, plus the input."""

    def __init__(self, n_feats: int, kernel_size: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats, kernel_size), nn.ReLU(inplace=True),
                                  conv(n_feats, n_feats, kernel_size))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mul(self.res_scale) + x


def detect_rgb_range(sd: StateDict, default: float) -> float:
    """The ``rgb_range`` (1 or 255) an EDSR-family checkpoint was trained with, read off its frozen mean shift.

    ``sub_mean.bias`` is ``-rgb_range * mean``; DIV2K and DF2K means are about 0.45, so the bias is about -0.45 for
    [0, 1] models and about -115 for [0, 255] ones.
    """
    bias = sd.get("sub_mean.bias")
    if bias is None or bias.is_meta:
        return default
    return 255.0 if float(bias.abs().mean()) > 10.0 else 1.0


def upsampler_scale(sd: StateDict, prefix: str, n_feats: int) -> int:
    """The scale of an ``Upsample`` stored under ``prefix`` (:func:`litesr.upsamplers.multistage_scale`)."""
    if f"{prefix}.0.weight" not in sd:
        raise KeyError(prefix)
    return multistage_scale(sd, prefix)


def _detect_edsr(sd: StateDict) -> dict | None:
    if "head.0.weight" not in sd or "tail.1.weight" not in sd or "body.0.body.0.weight" not in sd:
        return None
    if any("conv_du" in k or k.startswith("pre_process") for k in sd):
        return None
    n_feats, n_colors = sd["head.0.weight"].shape[:2]
    n_resblocks = count_indexed(sd, r"body\.(\d+)\.body\.0\.weight$")
    return {
        "scale": upsampler_scale(sd, "tail.0", n_feats),
        "n_resblocks": n_resblocks,
        "n_feats": n_feats,
        # Not stored in the weights: the paper uses 0.1 for its 256-channel model and 1 for the baseline.
        "res_scale": 0.1 if n_feats >= 256 else 1.0,
        "n_colors": n_colors,
        "rgb_range": detect_rgb_range(sd, 255.0),
    }


@register_arch("edsr", scales=(2, 3, 4), detect=_detect_edsr, paper="Lim et al., CVPRW 2017",
               tiny={"n_resblocks": 2, "n_feats": 8, "res_scale": 1.0})
class EDSR(SRModel):
    """EDSR: BN-free residual blocks, global skip, sub-pixel upsampler (paper: 32 blocks x 256 ch, res_scale 0.1)."""

    def __init__(self, scale: int = 2, n_resblocks: int = 32, n_feats: int = 256, res_scale: float = 0.1,
                 n_colors: int = 3, rgb_range: float = 255.0) -> None:
        super().__init__()
        self.scale = scale
        self.input_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN)
        self.add_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN, sign=1)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.body = nn.Sequential(*(ResBlock(n_feats, 3, res_scale) for _ in range(n_resblocks)),
                                  conv(n_feats, n_feats, 3))
        self.tail = nn.Sequential(Upsample(scale, n_feats), conv(n_feats, n_colors, 3))

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.sub_mean(x))
        x = self.body(x) + x
        return self.add_mean(self.tail(x))


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_EDSR_BASELINE_PUBLISHED = {
    2: {"Set5": (37.99, 0.9604), "Set14": (33.57, 0.9175), "B100": (32.16, 0.8994), "Urban100": (31.98, 0.9272),
        "Manga109": (38.54, 0.9769)},
    3: {"Set5": (34.37, 0.9270), "Set14": (30.28, 0.8417), "B100": (29.09, 0.8052), "Urban100": (28.15, 0.8527),
        "Manga109": (33.45, 0.9439)},
    4: {"Set5": (32.09, 0.8938), "Set14": (28.58, 0.7813), "B100": (27.57, 0.7357), "Urban100": (26.04, 0.7849),
        "Manga109": (30.35, 0.9067)},
}
register_variant("edsr_baseline", "edsr", {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0},
                 description="EDSR-baseline (16 blocks, 64 channels)"
                 " [published: IMDN/SSIU/SAFMN; Mult-Adds: SSIU/SAFMN]",
                 paper_params={2: 1_370_000, 3: 1_555_000, 4: 1_518_000},
                 paper_psnr=_EDSR_BASELINE_PUBLISHED, paper_macs={2: 316, 3: 160, 4: 114})
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_EDSR_PUBLISHED = {
    2: {"Set5": (38.11, 0.9602), "Set14": (33.92, 0.9195), "B100": (32.32, 0.9013), "Urban100": (32.93, 0.9351),
        "Manga109": (39.10, 0.9773)},
    3: {"Set5": (34.65, 0.9280), "Set14": (30.52, 0.8462), "B100": (29.25, 0.8093), "Urban100": (28.80, 0.8653),
        "Manga109": (34.17, 0.9476)},
    4: {"Set5": (32.46, 0.8968), "Set14": (28.80, 0.7876), "B100": (27.71, 0.7420), "Urban100": (26.64, 0.8033),
        "Manga109": (31.02, 0.9148)},
}
register_variant("edsr", "edsr", {}, description="EDSR (32 blocks, 256 channels, residual scaling 0.1)"
                 " [published: RCAN/CSNLN]",
                 paper_params={2: 40_700_000, 3: 43_700_000, 4: 43_100_000},
                 paper_psnr=_EDSR_PUBLISHED)


def _detect_mdsr(sd: StateDict) -> dict | None:
    if "pre_process.0.0.body.0.weight" not in sd or "upsample.0.0.weight" not in sd:
        return None
    n_feats, n_colors = sd["head.0.weight"].shape[:2]
    n_scales = count_indexed(sd, r"upsample\.(\d+)\.")
    scales = tuple(upsampler_scale(sd, f"upsample.{i}", n_feats) for i in range(n_scales))
    return {
        "scale": scales[0],
        "n_resblocks": count_indexed(sd, r"body\.(\d+)\.body\.0\.weight$"),
        "n_feats": n_feats,
        "scales": scales,
        "n_colors": n_colors,
        "rgb_range": detect_rgb_range(sd, 255.0),
    }


@register_arch("mdsr", scales=(2, 3, 4), detect=_detect_mdsr, paper="Lim et al., CVPRW 2017",
               tiny={"n_resblocks": 2, "n_feats": 8})
class MDSR(SRModel):
    """MDSR: one shared body with scale-specific 5x5 pre-processing blocks and upsamplers (x2, x3, x4 in one model)."""

    multi_scale = True

    def __init__(self, scale: int = 2, n_resblocks: int = 80, n_feats: int = 64, scales: tuple[int, ...] = (2, 3, 4),
                 n_colors: int = 3, rgb_range: float = 255.0) -> None:
        super().__init__()
        self.scales = tuple(scales)
        if scale not in self.scales:
            raise ValueError(f"MDSR built for scales {self.scales} cannot run at x{scale}")
        self.scale = scale
        self.input_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN)
        self.add_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN, sign=1)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.pre_process = nn.ModuleList(
            nn.Sequential(ResBlock(n_feats, 5), ResBlock(n_feats, 5)) for _ in self.scales
        )
        self.body = nn.Sequential(*(ResBlock(n_feats, 3) for _ in range(n_resblocks)), conv(n_feats, n_feats, 3))
        self.upsample = nn.ModuleList(Upsample(s, n_feats) for s in self.scales)
        self.tail = nn.Sequential(conv(n_feats, n_colors, 3))

    def set_scale(self, scale: int) -> None:
        if scale not in self.scales:
            raise ValueError(f"MDSR built for scales {self.scales} cannot run at x{scale}")
        self.scale = scale

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        index = self.scales.index(scale or self.scale)
        x = self.pre_process[index](self.head(self.sub_mean(x)))
        x = self.body(x) + x
        return self.add_mean(self.tail(self.upsample[index](x)))


register_variant("mdsr_baseline", "mdsr", {"n_resblocks": 16}, description="MDSR-baseline (16 shared blocks, 64 ch)")
register_variant("mdsr", "mdsr", {}, description="MDSR (80 shared blocks, 64 channels; x2/x3/x4 in one model)")


def warm_start(model: nn.Module, state_dict: Mapping[str, Tensor], *, source: str = "checkpoint") -> list[str]:
    """Initialise ``model`` from a checkpoint of another scale (EDSR x3/x4 from x2); returns the keys left as they were.

    Tensors whose name and shape agree are copied. Only the upsampler (``tail``, MDSR ``upsample``) may differ; any
    other missing or mis-shaped tensor means the checkpoint is another configuration and raises ``CheckpointError``.
    """
    own = model.state_dict()
    skipped = [k for k in own if k not in state_dict or tuple(state_dict[k].shape) != tuple(own[k].shape)]
    foreign = [k for k in skipped if not k.startswith(("tail.", "upsample."))]
    foreign += [k for k in state_dict if k not in own and not k.startswith(("tail.", "upsample."))]
    if foreign:
        raise CheckpointError(f"{source}: cannot warm-start {type(model).__name__} from it: {len(foreign)} tensors "
                              f"outside the upsampler do not match (e.g. {', '.join(foreign[:3])})")
    with torch.no_grad():
        for k, v in own.items():
            if k not in skipped:
                v.copy_(state_dict[k])
    return skipped

