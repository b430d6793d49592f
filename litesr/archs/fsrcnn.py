"""FSRCNN: Accelerating the Super-Resolution Convolutional Neural Network (Dong et al., ECCV 2016).

State-dict names follow the PyTorch port yjn870/FSRCNN-pytorch (``models.py``), which the ETDS authors' RGB version
(``core/archs/ir/FSRCNN/arch.py``) shares: ``first_part`` (5x5 conv to d + PReLU), ``mid_part`` (1x1 shrink to s,
m x (3x3 conv + PReLU), 1x1 expand to d, PReLUs between), ``last_part`` (9x9 transposed conv, stride = scale).
The yjn870 weights work on the Y channel in [0, 1]; the ETDS ones on RGB in [0, 1].

The tensors do not record the scale (the transposed conv's stride), so detection reads it off the weights instead: an
SR network must keep the brightness of a flat image, and the transposed conv spreads its taps over scale^2 output
phases, so the flat-image gain of the tap sums is scale^2. When that test is not clear-cut (random weights), the scale
is left to the caller.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import TransposedConvUpsampler
from .base import SRModel

_SCALES = (2, 3, 4)


def _flat_image_scale(sd: StateDict, conv_indices: list[int]) -> int | None:
    """The stride for which a flat 0.5 image comes out at 0.5 (within 5%), or None if none or several do."""
    weights = {k: v.detach().float().cpu() for k, v in sd.items()}
    x = torch.full((1, weights["first_part.0.weight"].shape[1], 9, 9), 0.5)
    x = F.prelu(F.conv2d(x, weights["first_part.0.weight"], weights["first_part.0.bias"], padding=2),
                weights["first_part.1.weight"])
    for i in conv_indices:
        w = weights[f"mid_part.{i}.weight"]
        x = F.prelu(F.conv2d(x, w, weights[f"mid_part.{i}.bias"], padding=w.shape[-1] // 2),
                    weights[f"mid_part.{i + 1}.weight"])
    feature = x[0, :, 4, 4]  # away from the zero padding: the response to an unbounded flat image
    tap_sum = torch.einsum("c,cokl->o", feature, weights["last_part.weight"])
    gain = tap_sum / (0.5 - weights["last_part.bias"])
    if not torch.isfinite(gain).all() or (gain <= 0).any():
        return None
    estimate = gain.median().sqrt().item()
    found = [s for s in _SCALES if abs(estimate - s) < 0.05 * s]
    return found[0] if len(found) == 1 else None


def _detect(sd: StateDict) -> dict | None:
    if "first_part.0.weight" not in sd or "mid_part.0.weight" not in sd or "last_part.weight" not in sd:
        return None
    d, num_channels = sd["first_part.0.weight"].shape[:2]
    conv_indices = sorted(int(m.group(1)) for k in sd if (m := re.match(r"mid_part\.(\d+)\.bias$", k)))
    config: dict = {"num_channels": num_channels, "d": d, "s": sd["mid_part.0.weight"].shape[0],
                    "m": len(conv_indices) - 2}
    try:
        scale = _flat_image_scale(sd, conv_indices)
    except (RuntimeError, KeyError, NotImplementedError):  # meta or odd tensors: no estimate
        scale = None
    if scale is not None:
        config["scale"] = scale
    return config


@register_arch("fsrcnn", scales=_SCALES, detect=_detect, paper="Dong et al., ECCV 2016",
               tiny={"d": 16, "s": 8, "m": 1})
class FSRCNN(SRModel):
    """FSRCNN: feature extraction, shrinking, m mapping layers, expanding, transposed-conv upsampling (LR input)."""

    def __init__(self, scale: int = 2, num_channels: int = 3, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.color_space = "y" if num_channels == 1 else "rgb"
        self.first_part = nn.Sequential(nn.Conv2d(num_channels, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = TransposedConvUpsampler(d, scale, num_channels, kernel_size=9)  # keys last_part.weight/bias
        self._init_weights()

    def _init_weights(self) -> None:
        # As the official code: He-normal convs with zero bias, N(0, 0.001) for the transposed conv.
        for layer in [*self.first_part, *self.mid_part]:
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, 0.0, math.sqrt(2 / (layer.out_channels * layer.weight[0][0].numel())))
                nn.init.zeros_(layer.bias)
        nn.init.normal_(self.last_part.weight, 0.0, 0.001)
        nn.init.zeros_(self.last_part.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))


# FSRCNN counts: 13K in the IMDN table (12,809 with biases and PReLUs; the paper's 12.46K counts weights only).
register_variant("fsrcnn", "fsrcnn", {}, description="FSRCNN (56, 12, 4), RGB re-training of the ETDS authors",
                 paper_params={2: 24_683, 3: 24_683, 4: 24_683})
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_FSRCNN_Y_PUBLISHED = {
    2: {"Set5": (37.05, 0.9560), "Set14": (32.66, 0.9090), "B100": (31.53, 0.8920), "Urban100": (29.88, 0.9020),
        "Manga109": (36.67, 0.9710)},
    3: {"Set5": (33.18, 0.9140), "Set14": (29.37, 0.8240), "B100": (28.53, 0.7910), "Urban100": (26.43, 0.8080),
        "Manga109": (31.10, 0.9210)},
    4: {"Set5": (30.72, 0.8660), "Set14": (27.61, 0.7550), "B100": (26.98, 0.7150), "Urban100": (24.62, 0.7280),
        "Manga109": (27.90, 0.8610)},
}
register_variant("fsrcnn_y", "fsrcnn", {"num_channels": 1},
                 description="FSRCNN (56, 12, 4) on the Y channel, as in the paper (yjn870 weights)"
                 " [published: RCAN; Mult-Adds: SAFMN]",
                 paper_params={2: 13_000, 3: 13_000, 4: 13_000},
                 paper_psnr=_FSRCNN_Y_PUBLISHED, paper_macs={2: 6, 3: 5, 4: 5})
register_variant("fsrcnn_s", "fsrcnn", {"num_channels": 1, "d": 32, "s": 5, "m": 1},
                 description="FSRCNN-s (32, 5, 1) on the Y channel, the paper's small configuration")
