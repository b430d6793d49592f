"""SPAN: Swift Parameter-free Attention Network for Efficient Super-Resolution (Wan, Yu et al., CVPRW 2024;
NTIRE 2024 ESR winner).

State-dict names follow the official code (hongyuanyu/SPAN, ``basicsr/archs/span_arch.py``): ``conv_1``, six SPABs
``block_1..6`` (``c1_r``/``c2_r``/``c3_r``), ``conv_cat`` (1x1 over four concatenated features), ``conv_2`` and
``upsampler``. Every 3x3 is a re-parameterisable ``Conv3XC``: for training a 1x1 -> 3x3 -> 1x1 chain (``conv``) plus a
1x1 skip (``sk``); for inference the single fused 3x3 ``eval_conv``. The training form's state dict holds all three
(``eval_conv`` is a frozen parameter refreshed from the others at every eval forward, as in the official code); the
deploy ("slim") form holds only ``eval_conv``, like the NTIRE 2024 team38 ``SPAN30`` release.

SPAN subtracts the DIV2K mean and multiplies by ``img_range`` (255) internally and returns [0, 1]: feed it [0, 1].
Any size works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import conv, pixelshuffle_block

N_BLOCKS = 6  # fixed in the official code
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class Conv3XC(nn.Module):
    """A 3x3 conv trained as 1x1 (C_in -> gain*C_in) -> 3x3 (-> gain*C_out) -> 1x1 (-> C_out) plus a 1x1 skip, and
    fused into ``eval_conv`` for inference. ``deploy=True`` builds the fused conv alone."""

    def __init__(self, c_in: int, c_out: int, gain: int = 2, *, deploy: bool = False) -> None:
        super().__init__()
        self.deploy = deploy
        if not deploy:
            self.sk = nn.Conv2d(c_in, c_out, 1)
            self.conv = nn.Sequential(
                nn.Conv2d(c_in, c_in * gain, 1),
                nn.Conv2d(c_in * gain, c_out * gain, 3),  # unpadded: the input is zero-padded by 1 in forward
                nn.Conv2d(c_out * gain, c_out, 1),
            )
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        if not deploy:
            self.eval_conv.weight.requires_grad = False
            self.eval_conv.bias.requires_grad = False
            self.update_params()

    def fused_kernel(self) -> tuple[Tensor, Tensor]:
        """The single 3x3 kernel and bias equal to conv chain + skip (exact for zero bias of ``conv[0]``; otherwise
        the chain's padded border sees that bias where the fused conv sees zeros, as in the official code)."""
        w1, b1 = self.conv[0].weight.detach()[:, :, 0, 0], self.conv[0].bias.detach()
        w2, b2 = self.conv[1].weight.detach(), self.conv[1].bias.detach()
        w3, b3 = self.conv[2].weight.detach()[:, :, 0, 0], self.conv[2].bias.detach()
        # 1x1 -> 3x3 -> 1x1 is linear: contract the 1x1 matrices into the 3x3 kernel (the official code does the same
        # composition with conv2d on the weights).
        weight = torch.einsum("on,nmyx,mc->ocyx", w3, w2, w1)
        bias = w3 @ (torch.einsum("nmyx,m->n", w2, b1) + b2) + b3
        weight = weight + F.pad(self.sk.weight.detach(), [1, 1, 1, 1])
        return weight, bias + self.sk.bias.detach()

    @torch.no_grad()
    def update_params(self) -> None:
        weight, bias = self.fused_kernel()
        self.eval_conv.weight.data = weight.contiguous()
        self.eval_conv.bias.data = bias.contiguous()

    def forward(self, x: Tensor) -> Tensor:
        if self.deploy:
            return self.eval_conv(x)
        if self.training:
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        self.update_params()
        return self.eval_conv(x)


class SPAB(nn.Module):
    """Swift parameter-free attention block: three Conv3XC (SiLU between), attention sigmoid(out) - 0.5 applied to
    (out + x). Returns the block output and the first conv's pre-activation (the network concatenates it)."""

    def __init__(self, channels: int, *, deploy: bool = False) -> None:
        super().__init__()
        self.c1_r = Conv3XC(channels, channels, deploy=deploy)
        self.c2_r = Conv3XC(channels, channels, deploy=deploy)
        self.c3_r = Conv3XC(channels, channels, deploy=deploy)
        self.act1 = nn.SiLU(inplace=True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out1 = self.c1_r(x)
        out2 = self.c2_r(self.act1(out1))
        out3 = self.c3_r(self.act1(out2))
        attention = torch.sigmoid(out3) - 0.5
        return (out3 + x) * attention, out1


def _detect(sd: StateDict) -> dict | None:
    if "conv_1.eval_conv.weight" not in sd or "block_1.c1_r.eval_conv.weight" not in sd or "conv_cat.weight" not in sd:
        return None
    feature_channels, num_in_ch = sd["conv_1.eval_conv.weight"].shape[:2]
    scale = math.isqrt(sd["upsampler.0.weight"].shape[0] // num_in_ch)
    return {"scale": scale, "num_in_ch": num_in_ch, "num_out_ch": num_in_ch, "feature_channels": feature_channels,
            "deploy": "conv_1.sk.weight" not in sd}


@register_arch("span", scales=(2, 3, 4), detect=_detect, paper="Wan et al., CVPRW 2024 (NTIRE 2024 ESR)",
               tiny={"feature_channels": 8})
class SPAN(SRModel):
    """SPAN: six parameter-free-attention blocks of re-parameterisable 3x3 convs, 1x1 fusion, PixelShuffle."""

    input_range = 1.0  # the mean shift and x255 happen inside
    color_space = "rgb"
    pad_multiple = 1

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, feature_channels: int = 48,
                 img_range: float = 255.0, deploy: bool = False) -> None:
        super().__init__()
        self.scale = scale
        self.img_range = img_range
        self.deploy = deploy
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = Conv3XC(num_in_ch, feature_channels, deploy=deploy)
        for i in range(1, N_BLOCKS + 1):
            setattr(self, f"block_{i}", SPAB(feature_channels, deploy=deploy))
        self.conv_cat = conv(feature_channels * 4, feature_channels, 1)
        self.conv_2 = Conv3XC(feature_channels, feature_channels, deploy=deploy)
        self.upsampler = pixelshuffle_block(feature_channels, num_out_ch, scale)

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.mean.to(x.dtype)) * self.img_range
        first = self.conv_1(x)
        out, out_b1 = first, None
        for i in range(1, N_BLOCKS + 1):
            out, pre_act = getattr(self, f"block_{i}")(out)
            if i == 1:
                out_b1 = out
        # the last block's first conv output (pre-activation) joins the concatenation, as in the official code
        features = torch.cat([first, self.conv_2(out), out_b1, pre_act], dim=1)
        return self.upsampler(self.conv_cat(features))

    def to_deploy(self) -> SPAN:
        """A deploy-form copy (only ``eval_conv`` kernels) computing the same eval-mode function."""
        deployed = SPAN(self.scale, self.conv_1.eval_conv.in_channels, self.upsampler[0].out_channels // self.scale**2,
                        self.conv_1.eval_conv.out_channels, self.img_range, deploy=True)
        state = {}
        for name, module in self.named_modules():
            if isinstance(module, Conv3XC) and not module.deploy:
                weight, bias = module.fused_kernel()
                state[f"{name}.eval_conv.weight"], state[f"{name}.eval_conv.bias"] = weight, bias
        own = deployed.state_dict()
        state.update({k: v for k, v in self.state_dict().items() if k in own and k not in state})
        deployed.load_state_dict(state, strict=True)
        return deployed.to(self.conv_cat.weight.device).eval()


register_variant("span", "span", {}, description="SPAN (48 channels, training form with re-parameterisable convs)")
register_variant("span_ch28_slim", "span", {"feature_channels": 28, "deploy": True},
                 description="SPAN 28 channels, deploy form (NTIRE 2024 ESR team38 SPAN30 release)")
# DSCLoRA (Chai, Zhang et al., CVPRW 2025; NTIRE 2025 ESR overall-track winner, team23 "DSCF", code
# Yaozzz666/DSCF-SR): SPAN trained with ConvLoRA adapters and distillation, the adapters merged before release, so
# the released network is SPAN's deploy form with 26 channels and loads as ``span``. Published: 0.131M parameters,
# 8.54 GFLOPs for a 256x256 input, 26.92 dB on DIV2K_LSDIR_valid (the repository's results.txt); no Set5 table.
register_variant("dsclora", "span", {"feature_channels": 26, "deploy": True},
                 description="DSCLoRA (NTIRE 2025 ESR winner, team23 DSCF): SPAN deploy form, 26 channels, x4",
                 paper_params={4: 131_000})
