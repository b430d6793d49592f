"""ADSRNet (HDSRNet): Adaptive convolutional neural network for image super-resolution (Tian, Zhang, Wang, Zhang, Zhu
and Lin, arXiv:2402.15704, 2024; the code calls it "heterogeneous dynamic convolutional network", HDSRNet).
Official code: github.com/hellloxiaotian/ADSRNet (``HDSRNet/model/hdsrnet.py``, class ``DDYCNNSR``); state-dict
names follow it.

Two parallel branches on the mean-subtracted input, multiplied together, then an upsampler and a 3x3 conv to RGB:

- the lower, symmetric branch (``conv1`` ... ``conv16``, conv + ReLU, no bias): nine plain layers, then seven more,
  each adding back the output of its mirror layer (``conv10`` + ``conv7`` ... ``conv16`` + ``conv1``; ``conv9`` +
  ``conv8`` first);
- the upper, heterogeneous branch (``Block``): a 3x3 conv from RGB, then five units of dilated (d=2) conv, dynamic
  conv, plain conv (each + ReLU), each unit with a residual. A dynamic conv mixes ``K = 4`` expert kernels with a
  softmax (temperature 40, the value of a freshly built official model: its training never lowers it) of a
  squeeze of the whole input (average pool, 1x1 down by 4, ReLU, 1x1 to K).

Size rule: RGB in [0, 255] (``rgb_range`` 255, DIV2K mean shift), any input size. The expert mixing is a statistic
of the whole map: tiled inference changes the result slightly, as for any model with global pooling (the mixing is
not a channel attention, so litesr's whole-image statistics hooks do not apply to it).

Published numbers: paper Tables II-V (the README's results/*.png). Table VII gives 1819K parameters "for x4", which
is the count of the x2 model (1,818,520; x4 has a second upsampling stage, 1,966,232): it is recorded at x2.
Its 110.99G "Flops" (x4, 1024x1024 output) match litesr's 122.85 G MACs less the five dynamic convolutions
(12.08 G), which a module-hook counter does not see (they run through ``F.conv2d``): no paper MACs are recorded.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import multistage_scale
from .base import SRModel
from .blocks import MeanShift, Upsample

# Convolutions of the lower branch; layers 10..16 each add the output of layer 17 - i (9 adds 8).
_LOWER_DEPTH = 16
# Units of the upper branch: (dilated conv, dynamic conv, plain conv) with a residual each.
_UPPER_UNITS = 5


def _conv_relu(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
                         nn.ReLU(inplace=True))


class ExpertAttention(nn.Module):
    """Softmax weights of the K expert kernels from the average of the whole input (official ``Attention``)."""

    def __init__(self, channels: int, reduction: int, num_experts: int, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature
        self.net = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(channels // reduction, num_experts, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        logits = self.net(x.mean(dim=(2, 3), keepdim=True)).flatten(1)
        return F.softmax(logits / self.temperature, dim=-1)


class DynamicConv(nn.Module):
    """3x3 convolution whose kernel and bias are a per-image softmax mixture of ``num_experts`` experts."""

    def __init__(self, channels: int, num_experts: int = 4, reduction: int = 4, temperature: float = 40.0) -> None:
        super().__init__()
        self.attention = ExpertAttention(channels, reduction, num_experts, temperature)
        self.weight = nn.Parameter(torch.empty(num_experts, channels, channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(num_experts, channels))
        for expert in self.weight.data:
            nn.init.kaiming_uniform_(expert)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        mix = self.attention(x)  # (B, K)
        weight = torch.einsum("bk,koihw->boihw", mix, self.weight).reshape(-1, c, 3, 3)
        bias = (mix @ self.bias).reshape(-1)
        # One grouped conv over the batch: each image with its own mixed kernel.
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, bias, padding=1, groups=b)
        return out.reshape(b, -1, h, w)


class HeterogeneousBlock(nn.Module):
    """The upper branch (official ``Block``): conv1 from RGB, then units (dilated, dynamic, plain) with residuals."""

    def __init__(self, num_feat: int, num_experts: int, reduction: int, temperature: float) -> None:
        super().__init__()
        self.conv1 = _conv_relu(3, num_feat)
        for unit in range(_UPPER_UNITS):
            first = 2 + 3 * unit
            setattr(self, f"conv{first}", _conv_relu(num_feat, num_feat, dilation=2))
            setattr(self, f"conv{first + 1}", nn.Sequential(DynamicConv(num_feat, num_experts, reduction, temperature),
                                                            nn.ReLU(inplace=True)))
            setattr(self, f"conv{first + 2}", _conv_relu(num_feat, num_feat))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        for unit in range(_UPPER_UNITS):
            first = 2 + 3 * unit
            y = getattr(self, f"conv{first}")(x)
            y = getattr(self, f"conv{first + 1}")(y)
            x = getattr(self, f"conv{first + 2}")(y) + x
        return x


class _Upsampler(nn.Module):
    """The official ``ops.UpsampleBlock`` (single scale): the EDSR sub-pixel stages under ``up.body``."""

    def __init__(self, num_feat: int, scale: int) -> None:
        super().__init__()
        self.up = nn.Module()
        self.up.body = Upsample(scale, num_feat)

    def forward(self, x: Tensor) -> Tensor:
        return self.up.body(x)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    needed = ("Block.conv3.0.attention.net.0.weight", "conv16.0.weight", "conv17.0.weight", "upsample.up.body.0.weight")
    if any(k not in sd for k in needed):
        return None
    experts = sd["Block.conv3.0.weight"]
    num_feat = int(experts.shape[1])
    return {"scale": multistage_scale(sd, "upsample.up.body"), "num_feat": num_feat,
            "num_experts": int(experts.shape[0]),
            "reduction": num_feat // int(sd["Block.conv3.0.attention.net.0.weight"].shape[0])}


@register_arch("adsrnet", scales=(2, 3, 4), detect=_detect, paper="Tian et al., arXiv:2402.15704 (2024)",
               tiny={"num_feat": 8, "num_experts": 2, "reduction": 4})
class ADSRNet(SRModel):
    """ADSRNet / HDSRNet: symmetric plain branch x heterogeneous dynamic-conv branch, sub-pixel tail, RGB 0-255."""

    input_range = 255.0

    def __init__(self, scale: int = 4, num_feat: int = 64, num_experts: int = 4, reduction: int = 4,
                 temperature: float = 40.0) -> None:
        super().__init__()
        self.scale = scale
        self.sub_mean = MeanShift(255.0)
        self.add_mean = MeanShift(255.0, sign=1)
        self.conv1 = _conv_relu(3, num_feat)
        for i in range(2, _LOWER_DEPTH + 1):
            setattr(self, f"conv{i}", _conv_relu(num_feat, num_feat))
        self.conv17 = nn.Sequential(nn.Conv2d(num_feat, 3, 3, padding=1, bias=False))
        self.upsample = _Upsampler(num_feat, scale)
        self.Block = HeterogeneousBlock(num_feat, num_experts, reduction, temperature)

    def _lower(self, x: Tensor) -> Tensor:
        outputs = []
        for i in range(1, 10):
            x = getattr(self, f"conv{i}")(x)
            outputs.append(x)
        x = outputs[8] + outputs[7]  # conv9 + conv8
        for i in range(10, _LOWER_DEPTH + 1):
            x = getattr(self, f"conv{i}")(x) + outputs[_LOWER_DEPTH - i]  # the mirror layer, conv(17 - i)
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.sub_mean(x)
        features = self.Block(x) * self._lower(x)
        return self.add_mean(self.conv17(self.upsample(features)))


# Published PSNR/SSIM (Y), DIV2K-trained, paper Tables II-V (the official README's results/Set5.png, Set14.png,
# B100.png, U100.png); no Manga109 figures are published.
_ADSRNET_PUBLISHED = {
    2: {"Set5": (37.95, 0.9604), "Set14": (33.52, 0.9170), "B100": (32.14, 0.8994), "Urban100": (32.00, 0.9267)},
    3: {"Set5": (34.31, 0.9263), "Set14": (30.27, 0.8412), "B100": (29.06, 0.8048), "Urban100": (28.02, 0.8493)},
    4: {"Set5": (32.15, 0.8927), "Set14": (28.56, 0.7799), "B100": (27.55, 0.7357), "Urban100": (26.01, 0.7827)},
}
register_variant("adsrnet", "adsrnet", {},
                 description="ADSRNet/HDSRNet (64 channels, K=4 experts) [published: paper Tables II-V, VII]",
                 paper_params={2: 1_819_000}, paper_psnr=_ADSRNET_PUBLISHED)
