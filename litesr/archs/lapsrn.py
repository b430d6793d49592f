"""LapSRN: Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution (Lai et al., CVPR 2017).

Progressive reconstruction on Y: every pyramid level doubles the resolution. A feature branch (``depth`` 3x3 convs of
64 channels with LeakyReLU 0.2, then a 4x4 stride-2 transposed conv) feeds the next level and predicts a residual
(3x3 conv to 1 channel); the image branch upsamples the previous level's image with a 4x4 stride-2 transposed conv
(initialised bilinear) and adds the residual. x2 has one level, x4 two, x8 three; :meth:`LapSRN.pyramid` returns
every level's image (x2, x4, x8), ``forward`` the last. The paper trains with a Charbonnier loss at every level
against the HR image downscaled to that level (:func:`lapsrn_loss`, eps 1e-3 as the paper).

The authors' code is MatConvNet; key names follow the canonical PyTorch port (twtygqyy/pytorch-LapSRN ``lapsrn.py``,
no biases): ``conv_input``, per level k ``convt_F{k}.cov_block`` (convs at even indices, the transposed conv last),
``convt_R{k}`` and ``convt_I{k}``. At depth 10 that is 434,768 parameters per level plus 576 for ``conv_input``:
435,344 at x2, 870,112 at x4, 1,304,880 at x8 (the paper's Table 3 gives 812K at x4; we could not reconcile the two
from the paper's description and keep the port's layout).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ..imresize import imresize
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed


def bilinear_kernel(size: int) -> Tensor:
    """The 2-D bilinear upsampling kernel of a ``size`` x ``size`` transposed conv (FCN's ``get_upsample_filter``)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return torch.from_numpy((1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)).float()


class FeatureBlock(nn.Module):
    """``depth`` x (3x3 conv, LeakyReLU 0.2), then a 4x4 stride-2 transposed conv and LeakyReLU (the port's
    ``_Conv_Block``, its Sequential kept as ``cov_block`` for the key names)."""

    def __init__(self, n_feats: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(n_feats, n_feats, 3, padding=1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.ConvTranspose2d(n_feats, n_feats, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        self.cov_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.cov_block(x)


def _detect(sd: StateDict) -> dict | None:
    if "conv_input.weight" not in sd or "convt_I1.weight" not in sd or "convt_F1.cov_block.0.weight" not in sd:
        return None
    levels = count_indexed(sd, r"convt_I(\d+)\.weight$")
    convs = sum(1 for k, v in sd.items() if k.startswith("convt_F1.cov_block.") and v.dim() == 4) - 1
    n_feats, num_channels = sd["conv_input.weight"].shape[:2]
    return {"scale": 2**levels, "num_channels": int(num_channels), "n_feats": int(n_feats), "depth": convs}


@register_arch("lapsrn", scales=(2, 4, 8), detect=_detect, paper="Lai et al., CVPR 2017",
               tiny={"n_feats": 8, "depth": 2})
class LapSRN(SRModel):
    """LapSRN: a Laplacian pyramid of x2 levels (feature branch + bilinear-initialised image branch); Y."""

    def __init__(self, scale: int = 4, num_channels: int = 1, n_feats: int = 64, depth: int = 10) -> None:
        super().__init__()
        levels = int(round(math.log2(scale)))
        if scale < 2 or 2**levels != scale:
            raise ValueError(f"LapSRN upsamples by powers of two (2, 4, 8), not x{scale}")
        self.scale = scale
        self.levels = levels
        self.color_space = "y" if num_channels == 1 else "rgb"
        self.conv_input = nn.Conv2d(num_channels, n_feats, 3, padding=1, bias=False)
        self.relu = nn.LeakyReLU(0.2, inplace=True)
        for k in range(1, levels + 1):
            image_up = nn.ConvTranspose2d(num_channels, num_channels, 4, 2, 1, bias=False)
            setattr(self, f"convt_I{k}", image_up)
            setattr(self, f"convt_R{k}", nn.Conv2d(n_feats, num_channels, 3, padding=1, bias=False))
            setattr(self, f"convt_F{k}", FeatureBlock(n_feats, depth))
        for module in self.modules():  # the port's initialisation: He normal for convs, bilinear for upsampling
            if isinstance(module, nn.Conv2d):
                n = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(module, nn.ConvTranspose2d):
                with torch.no_grad():
                    module.weight.copy_(bilinear_kernel(module.kernel_size[0]).expand_as(module.weight))

    def pyramid(self, x: Tensor) -> list[Tensor]:
        """The image of every level: x2, then x4, then x8 (as many as the model's scale has)."""
        features, image, outs = self.relu(self.conv_input(x)), x, []
        for k in range(1, self.levels + 1):
            features = getattr(self, f"convt_F{k}")(features)
            image = getattr(self, f"convt_I{k}")(image) + getattr(self, f"convt_R{k}")(features)
            outs.append(image)
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.pyramid(x)[-1]


def lapsrn_loss(outputs: list[Tensor], hr: Tensor, eps: float = 1e-3) -> Tensor:
    """The paper's multi-level loss: sum over levels of the mean Charbonnier sqrt((y_l - hr_l)^2 + eps^2), hr_l the
    HR image bicubic-downscaled (MATLAB imresize) to level l's size."""
    total = hr.new_zeros(())
    for out in outputs:
        target = hr if out.shape[-2:] == hr.shape[-2:] else imresize(hr, size=tuple(out.shape[-2:]))
        total = total + torch.sqrt((out - target) ** 2 + eps * eps).mean()
    return total


register_variant("lapsrn", "lapsrn", {}, description="LapSRN (depth 10, 64 channels, Y; x2/x4/x8 pyramid levels)",
                 paper_params={4: 812_000})
