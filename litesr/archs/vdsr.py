"""VDSR: Accurate Image Super-Resolution Using Very Deep Convolutional Networks (Kim et al., CVPR 2016).

Twenty 3x3 convolutions of 64 channels without bias (ReLU after all but the last) predict the residual between the
bicubic-upsampled Y channel and the HR Y channel. One network handles x2, x3 and x4 (trained on a mix of scales), so
the model is ``multi_scale``: ``forward(x, scale)`` upsamples the LR input with MATLAB bicubic, then adds the residual.

The authors' code is MATLAB; state-dict names follow the canonical PyTorch port (twtygqyy/pytorch-vdsr ``vdsr.py``):
``input`` (1 -> 64), ``residual_layer.{0..17}.conv`` (64 -> 64), ``output`` (64 -> 1). 664,704 parameters.

Notes for multi-scale training: each batch (or sample) draws its scale from {2, 3, 4} and calls ``model(lr, scale)``
with LR patches (the bicubic upsampling is part of the model, so the loss sees HR-sized output). The port trains on
41 x 41 HR-sized patches of the 291 images (T91 + BSD200, flips, rotations, downsizings 1 / 0.7 / 0.5), batch 128,
SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 every 10 epochs, gradient norm clipped to 0.4, 50 epochs
(``main_vdsr.py``, ``data/generate_train.m``). Patch borders differ slightly from the port, which upsampled whole
images before cropping, and HR patch sizes must be multiples of the scale (41 is not: 48 fits x2, x3 and x4).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..imresize import imresize, to_uint8_range
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed


class ConvReLU(nn.Module):
    """One hidden layer of VDSR (the port's ``Conv_ReLU_Block``): 3x3 conv without bias, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        for module in self.modules():  # the port's initialisation: N(0, 2 / (k * k * out_channels))
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x))


def _detect(sd: StateDict) -> dict | None:
    if "input.weight" not in sd or "output.weight" not in sd or "residual_layer.0.conv.weight" not in sd:
        return None
    hidden = count_indexed(sd, r"residual_layer\.(\d+)\.conv\.weight$")
    num_feat, num_channels = sd["input.weight"].shape[:2]
    return {"scale": 2, "num_channels": num_channels, "num_feat": num_feat, "num_layers": hidden + 2}


@register_arch("vdsr", scales=(2, 3, 4), detect=_detect, paper="Kim et al., CVPR 2016",
               tiny={"num_layers": 4, "num_feat": 8})
class VDSR(SRModel):
    """VDSR: 20 bias-free 3x3 convolutions, global residual on the bicubic-upsampled Y channel; one model for x2-x4."""

    multi_scale = True

    def __init__(self, scale: int = 2, num_channels: int = 1, num_feat: int = 64, num_layers: int = 20,
                 uint8_upsampling: bool = True) -> None:
        """``uint8_upsampling``: round the bicubic-upsampled input to 8-bit levels, as MATLAB ``imresize`` of a uint8
        Y plane does in the VDSR test code; the official port's weights need it for their Set5 numbers (x4: 31.10
        with it, 31.44 without, against 31.10 measured with the reference pipeline)."""
        super().__init__()
        self.uint8_upsampling = uint8_upsampling
        if num_layers < 2:
            raise ValueError(f"VDSR needs at least 2 layers (input and output), not {num_layers}")
        self.scale = scale
        self.color_space = "y" if num_channels == 1 else "rgb"
        self.residual_layer = nn.Sequential(*(ConvReLU(num_feat) for _ in range(num_layers - 2)))
        self.input = nn.Conv2d(num_channels, num_feat, 3, padding=1, bias=False)
        self.output = nn.Conv2d(num_feat, num_channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        for module in self.modules():  # the port's initialisation: N(0, 2 / (k * k * out_channels))
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        upsampled = imresize(x, scale=scale or self.scale)
        if self.uint8_upsampling:
            upsampled = to_uint8_range(upsampled * 255.0) / 255.0
        return self.output(self.residual_layer(self.relu(self.input(upsampled)))) + upsampled


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_VDSR_PUBLISHED = {
    2: {"Set5": (37.53, 0.9590), "Set14": (33.05, 0.9130), "B100": (31.90, 0.8960), "Urban100": (30.77, 0.9140),
        "Manga109": (37.22, 0.9750)},
    3: {"Set5": (33.67, 0.9210), "Set14": (29.78, 0.8320), "B100": (28.83, 0.7990), "Urban100": (27.14, 0.8290),
        "Manga109": (32.01, 0.9340)},
    4: {"Set5": (31.35, 0.8838), "Set14": (28.01, 0.7674), "B100": (27.29, 0.7251), "Urban100": (25.18, 0.7524),
        "Manga109": (28.83, 0.8809)},
}
register_variant("vdsr", "vdsr", {}, description="VDSR (20 layers, 64 channels, Y; one model for x2/x3/x4)"
                 " [published: RCAN x2/x3, SAFMN x4 (RCAN's x4 B100 SSIM is a typo); Mult-Adds: SAFMN]",
                 paper_params={2: 665_000, 3: 665_000, 4: 665_000},
                 paper_psnr=_VDSR_PUBLISHED, paper_macs={2: 613, 3: 613, 4: 613})
