"""ECBSR: Edge-oriented Convolution Block for Real-time Super Resolution on Mobile Devices (Zhang et al., ACM MM 2021).

Training form (``deploy=False``), with the official key names (xindongzhang/ECBSR ``models/ecb.py``, ``ecbsr.py``):
``backbone.i`` are ECBs, each the sum of a 3x3 conv (``conv3x3``), a 1x1-3x3 sequence (``conv1x1_3x3``: ``k0, b0, k1,
b1``) and 1x1 convs followed by fixed Sobel-x, Sobel-y and Laplacian depthwise filters with learned scales
(``conv1x1_sbx/sby/lpl``: ``k0, b0, scale, bias`` and the fixed ``mask``), then PReLU (``act``). The last ECB maps to
colours * s^2 channels without activation; the input repeated s^2 times is added and PixelShuffle upsamples.

Deploy form (``deploy=True``): every ECB re-parameterised into one 3x3 conv, with the key names of the ETDS authors'
``ECBSRT`` (``backbone.i.0`` conv, ``backbone.i.1`` PReLU), whose RGB re-trainings (ECBSR_M{4,6}C{16,32,40}_x*.pth)
litesr loads. :meth:`ECBSR.to_deploy` converts one into the other with equal outputs. RGB (or Y) in [0, 1].
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed

ActType = Literal["prelu", "relu"]

# Fixed 3x3 edge filters of the ECB branches (row, column) -> value.
_EDGE_FILTERS = {
    "sobelx": {(0, 0): 1.0, (1, 0): 2.0, (2, 0): 1.0, (0, 2): -1.0, (1, 2): -2.0, (2, 2): -1.0},
    "sobely": {(0, 0): 1.0, (0, 1): 2.0, (0, 2): 1.0, (2, 0): -1.0, (2, 1): -2.0, (2, 2): -1.0},
    "laplacian": {(0, 1): 1.0, (1, 0): 1.0, (1, 2): 1.0, (2, 1): 1.0, (1, 1): -4.0},
}


def _pad_with_bias(y: Tensor, bias: Tensor) -> Tensor:
    """Pad by one pixel with the 1x1 conv's bias instead of zeros, so the branch equals one 3x3 conv on ``x``."""
    b = bias.view(1, -1, 1, 1)
    return F.pad(y - b, (1, 1, 1, 1)) + b


class SeqConv3x3(nn.Module):
    """A 1x1 conv followed by a learned 3x3 conv (``"conv1x1-conv3x3"``) or by a scaled fixed edge filter."""

    def __init__(self, seq_type: str, in_planes: int, out_planes: int, depth_multiplier: float = 2.0) -> None:
        super().__init__()
        self.type = seq_type
        self.out_planes = out_planes
        if seq_type == "conv1x1-conv3x3":
            self.mid_planes = int(out_planes * depth_multiplier)
            conv0 = nn.Conv2d(in_planes, self.mid_planes, 1)
            conv1 = nn.Conv2d(self.mid_planes, out_planes, 3)
            self.k0, self.b0 = conv0.weight, conv0.bias
            self.k1, self.b1 = conv1.weight, conv1.bias
            return
        conv0 = nn.Conv2d(in_planes, out_planes, 1)
        self.k0, self.b0 = conv0.weight, conv0.bias
        self.scale = nn.Parameter(torch.randn(out_planes, 1, 1, 1) * 1e-3)
        self.bias = nn.Parameter(torch.randn(out_planes) * 1e-3)
        mask = torch.zeros(out_planes, 1, 3, 3)
        for (row, col), value in _EDGE_FILTERS[seq_type.removeprefix("conv1x1-")].items():
            mask[:, 0, row, col] = value
        # A parameter (frozen), not a buffer, because the official state dicts store it under ``mask``.
        self.mask = nn.Parameter(mask, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        y0 = _pad_with_bias(F.conv2d(x, self.k0, self.b0), self.b0)
        if self.type == "conv1x1-conv3x3":
            return F.conv2d(y0, self.k1, self.b1)
        return F.conv2d(y0, self.scale * self.mask, self.bias, groups=self.out_planes)

    def rep_params(self) -> tuple[Tensor, Tensor]:
        """The 3x3 kernel and bias of the equivalent single convolution."""
        if self.type == "conv1x1-conv3x3":
            k1, b1, mid = self.k1, self.b1, self.mid_planes
        else:
            k1 = torch.zeros(self.out_planes, self.out_planes, 3, 3, device=self.k0.device, dtype=self.k0.dtype)
            idx = torch.arange(self.out_planes, device=self.k0.device)
            k1[idx, idx] = (self.scale * self.mask)[:, 0]
            b1, mid = self.bias, self.out_planes
        kernel = F.conv2d(k1, self.k0.permute(1, 0, 2, 3))
        bias = F.conv2d(self.b0.view(1, -1, 1, 1).expand(1, mid, 3, 3), k1).view(-1) + b1
        return kernel, bias


def _activation(act_type: str, channels: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=channels)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "linear":
        return nn.Identity()
    raise ConfigError(f"ecbsr: act_type must be 'prelu' or 'relu', not {act_type!r}")


class ECB(nn.Module):
    """Edge-oriented convolution block: five parallel 3x3-equivalent branches summed, then the activation.

    In training mode the branches run separately; in eval mode they are fused first (same result, as the official
    code). ``with_idt`` adds the identity when input and output widths agree.
    """

    def __init__(self, in_planes: int, out_planes: int, depth_multiplier: float = 2.0, act_type: str = "prelu",
                 with_idt: bool = False) -> None:
        super().__init__()
        self.out_planes = out_planes
        self.with_idt = with_idt and in_planes == out_planes
        self.conv3x3 = nn.Conv2d(in_planes, out_planes, 3, padding=1)
        self.conv1x1_3x3 = SeqConv3x3("conv1x1-conv3x3", in_planes, out_planes, depth_multiplier)
        self.conv1x1_sbx = SeqConv3x3("conv1x1-sobelx", in_planes, out_planes)
        self.conv1x1_sby = SeqConv3x3("conv1x1-sobely", in_planes, out_planes)
        self.conv1x1_lpl = SeqConv3x3("conv1x1-laplacian", in_planes, out_planes)
        self.act = _activation(act_type, out_planes)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            y = (self.conv3x3(x) + self.conv1x1_3x3(x) + self.conv1x1_sbx(x) + self.conv1x1_sby(x)
                 + self.conv1x1_lpl(x))
            if self.with_idt:
                y = y + x
        else:
            kernel, bias = self.rep_params()
            y = F.conv2d(x, kernel, bias, padding=1)
        return self.act(y)

    def rep_params(self) -> tuple[Tensor, Tensor]:
        kernel, bias = self.conv3x3.weight, self.conv3x3.bias
        for branch in (self.conv1x1_3x3, self.conv1x1_sbx, self.conv1x1_sby, self.conv1x1_lpl):
            k, b = branch.rep_params()
            kernel, bias = kernel + k, bias + b
        if self.with_idt:
            idx = torch.arange(self.out_planes, device=kernel.device)
            identity = torch.zeros_like(kernel)
            identity[idx, idx, 1, 1] = 1.0
            kernel = kernel + identity
        return kernel, bias


def _plain_layer(in_planes: int, out_planes: int, act_type: str | None) -> nn.Sequential:
    """ECBSRT's deploy layer: ``0`` the 3x3 conv, ``1`` the activation (absent after the last conv)."""
    layers: list[nn.Module] = [nn.Conv2d(in_planes, out_planes, 3, padding=1)]
    if act_type is not None:
        layers.append(_activation(act_type, out_planes))
    return nn.Sequential(*layers)


def _detect(sd: StateDict) -> dict | None:
    if "backbone.0.conv3x3.weight" in sd:
        deploy, first, conv_key = False, "backbone.0.conv3x3.weight", "backbone.{}.conv3x3.weight"
    elif "backbone.0.0.weight" in sd:
        deploy, first, conv_key = True, "backbone.0.0.weight", "backbone.{}.0.weight"
    else:
        return None
    depth = count_indexed(sd, r"backbone\.(\d+)\.")
    num_feat, num_in_ch = sd[first].shape[:2]
    last_out = sd[conv_key.format(depth - 1)].shape[0]
    has_prelu = "backbone.0.act.weight" in sd if not deploy else "backbone.0.1.weight" in sd
    return {"scale": math.isqrt(last_out // num_in_ch), "num_in_ch": num_in_ch, "num_block": depth - 2,
            "num_feat": num_feat, "act_type": "prelu" if has_prelu else "relu", "deploy": deploy}


@register_arch("ecbsr", scales=(2, 3, 4), detect=_detect, paper="Zhang et al., ACM MM 2021",
               tiny={"num_block": 1, "num_feat": 8})
class ECBSR(SRModel):
    """ECBSR: a plain conv net trained with edge-oriented re-parameterisable blocks; RGB (or Y) in [0, 1]."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_block: int = 4, num_feat: int = 16,
                 act_type: ActType = "prelu", with_idt: bool = False, deploy: bool = False) -> None:
        super().__init__()
        if act_type not in ("prelu", "relu"):
            raise ConfigError(f"ecbsr: act_type must be 'prelu' or 'relu', not {act_type!r}")
        self.scale = scale
        self.color_space = "y" if num_in_ch == 1 else "rgb"
        self.deploy = deploy
        self._build_config = {"num_in_ch": num_in_ch, "num_block": num_block, "num_feat": num_feat,
                              "act_type": act_type, "with_idt": with_idt}
        widths = [num_in_ch] + [num_feat] * (num_block + 1) + [num_in_ch * scale**2]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            act = act_type if i < len(widths) - 2 else None
            if deploy:
                layers.append(_plain_layer(cin, cout, act))
            else:
                layers.append(ECB(cin, cout, 2.0, act or "linear", with_idt))
        self.backbone = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        # The official Y model adds x (one channel, broadcast); the RGB one repeats each channel s^2 times. Same thing.
        shortcut = torch.repeat_interleave(x, self.scale**2, dim=1)
        return self.upsampler(self.backbone(x) + shortcut)

    @torch.no_grad()
    def to_deploy(self) -> ECBSR:
        """The re-parameterised plain network (``deploy=True``) computing the same function."""
        if self.deploy:
            return self
        plain = ECBSR(self.scale, **self._build_config, deploy=True).to(next(self.parameters()).device)
        for block, layer in zip(self.backbone, plain.backbone):
            kernel, bias = block.rep_params()
            layer[0].weight.copy_(kernel)
            layer[0].bias.copy_(bias)
            if isinstance(block.act, nn.PReLU):
                layer[1].weight.copy_(block.act.weight)
        from ..descriptor import bind

        bind(plain, "ecbsr", {"scale": self.scale, **self._build_config, "deploy": True})
        return plain.eval()


# Counts of the ETDS authors' RGB re-trainings in deploy form (ECBSR_M*C*_x*.pth); the training form is larger.
_RELEASED_PARAMS = {
    (4, 16): {2: 11_548, 3: 13_723, 4: 16_768},
    (4, 32): {2: 41_516, 3: 45_851, 4: 51_920},
    (6, 40): {2: 92_372, 3: 97_787, 4: 105_368},
}
for (_blocks, _feat), _params in _RELEASED_PARAMS.items():
    register_variant(f"ecbsr_m{_blocks}c{_feat}", "ecbsr", {"num_block": _blocks, "num_feat": _feat},
                     description=f"ECBSR-M{_blocks}C{_feat}, RGB (training form; paper_params count the deploy form)",
                     paper_params=_params)
