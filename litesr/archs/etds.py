"""ETDS: Equivalent Transformation and Dual Stream Network Construction for Mobile Image Super-Resolution (Chao et al.,
CVPR 2023).

Training form (``deploy=False``), as the official ``ETDS`` class (ECNUSR/ETDS, ``core/archs/ir/ETDS/arch.py``): a
backbone stream of ``num_feat - num_residual_feat`` channels (``conv_first``, ``backbone_convs``, ``conv_last``) and a
residual stream of ``num_residual_feat`` channels (``conv_residual_first``, ``residual_convs``, ``conv_residual_last``)
initialised to carry the input through (identity kernels, repeat to s^2 outputs), with ``add_residual_convs`` feeding
the residual stream into the backbone; output = PixelShuffle(backbone + residual). The official training code also
supervises the residual stream alone; :meth:`ETDS.forward_streams` returns both.

Inference form (``deploy=True``), as ``ETDSForInference``: the equivalent transformation merges both streams into one
plain network of ``num_feat`` channels (``conv_first``, ``backbone_convs``, ``conv_last`` with 3s^2 channels, plus one
for x3 to keep a multiple of 4, and a 1x1 ``conv_clip``); ``relu(1 - relu(1 - y))`` clamps to [0, 1], so the inference
network equals ``clamp(training output, 0, 1)``. The released checkpoints are in this form. RGB in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


def _deploy_out_channels(num_in_ch: int, scale: int) -> int:
    # The official inference net adds one channel at x3 (27 -> 28) for mobile kernels that want multiples of 4.
    return num_in_ch * scale**2 + (1 if scale == 3 else 0)


def _detect(sd: StateDict) -> dict | None:
    if "conv_first.weight" not in sd or "conv_last.weight" not in sd or "backbone_convs.0.weight" not in sd:
        return None
    num_block = count_indexed(sd, r"backbone_convs\.(\d+)\.")
    first_out, num_in_ch = sd["conv_first.weight"].shape[:2]
    scale = math.isqrt(sd["conv_last.weight"].shape[0] // num_in_ch)
    config = {"scale": scale, "num_in_ch": num_in_ch, "num_block": num_block}
    if "conv_residual_first.weight" in sd:
        residual = sd["conv_residual_first.weight"].shape[0]
        return {**config, "num_feat": first_out + residual, "num_residual_feat": residual, "deploy": False}
    if "conv_clip.weight" not in sd:
        return None
    # The stream split does not survive the transformation; the inference net's shapes do not depend on it.
    return {**config, "num_feat": first_out, "deploy": True}


@register_arch("etds", scales=(2, 3, 4), detect=_detect, paper="Chao et al., CVPR 2023",
               tiny={"num_block": 1, "num_feat": 8})
class ETDS(SRModel):
    """ETDS: dual-stream plain CNN for mobile SR, trained in two streams and deployed as one; RGB in [0, 1]."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_block: int = 4, num_feat: int = 32,
                 num_residual_feat: int = 3, deploy: bool = False) -> None:
        super().__init__()
        if not deploy and not num_feat > num_residual_feat >= num_in_ch:
            raise ConfigError(f"etds: need num_feat ({num_feat}) > num_residual_feat ({num_residual_feat}) >= "
                              f"num_in_ch ({num_in_ch})")
        self.scale = scale
        self.deploy = deploy
        self.color_space = "y" if num_in_ch == 1 else "rgb"
        self._build_config = {"num_in_ch": num_in_ch, "num_block": num_block, "num_feat": num_feat,
                              "num_residual_feat": num_residual_feat}
        out_channels = num_in_ch * scale**2
        if deploy:
            self.conv_first = _conv3x3(num_in_ch, num_feat)
            self.backbone_convs = nn.ModuleList(_conv3x3(num_feat, num_feat) for _ in range(num_block))
            clip_channels = _deploy_out_channels(num_in_ch, scale)
            self.conv_last = _conv3x3(num_feat, clip_channels)
            self.conv_clip = nn.Conv2d(clip_channels, clip_channels, 1)
        else:
            backbone = num_feat - num_residual_feat
            self.conv_first = _conv3x3(num_in_ch, backbone)
            self.conv_residual_first = _conv3x3(num_in_ch, num_residual_feat)
            self.backbone_convs = nn.ModuleList(_conv3x3(backbone, backbone) for _ in range(num_block))
            self.residual_convs = nn.ModuleList(_conv3x3(num_residual_feat, num_residual_feat)
                                                for _ in range(num_block))
            self.add_residual_convs = nn.ModuleList(_conv3x3(num_residual_feat, backbone) for _ in range(num_block))
            self.conv_last = _conv3x3(backbone, out_channels)
            self.conv_residual_last = _conv3x3(num_residual_feat, out_channels)
            self._init_residual_stream()
        self.upsampler = nn.PixelShuffle(scale)

    @torch.no_grad()
    def _init_residual_stream(self) -> None:
        """Official initialisation: the residual stream passes the input through and repeats it s^2 times."""
        colors, s2 = self._build_config["num_in_ch"], self.scale**2
        self.conv_residual_first.weight.zero_()
        self.conv_residual_first.bias.zero_()
        for c in range(colors):
            self.conv_residual_first.weight[c, c, 1, 1] = 1.0
        for conv in self.residual_convs:
            conv.weight.zero_()
            conv.bias.zero_()
            for c in range(conv.weight.shape[0]):
                conv.weight[c, c, 1, 1] = 1.0
        for conv in self.add_residual_convs:
            conv.weight.zero_()
            conv.bias.zero_()
        self.conv_residual_last.weight.zero_()
        self.conv_residual_last.bias.zero_()
        for c in range(colors):
            for j in range(s2):
                self.conv_residual_last.weight[c * s2 + j, c, 1, 1] = 1.0

    def forward_streams(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Training form only: (SR output, residual-stream output), both upsampled, as the official ``forward``."""
        if self.deploy:
            raise RuntimeError("the inference form of ETDS has a single stream")
        feat = F.relu(self.conv_first(x))
        res = F.relu(self.conv_residual_first(x))
        for backbone, residual, add in zip(self.backbone_convs, self.residual_convs, self.add_residual_convs):
            feat, res = F.relu(backbone(feat) + add(res)), F.relu(residual(res))
        res_out = self.upsampler(self.conv_residual_last(res))
        return self.upsampler(self.conv_last(feat)) + res_out, res_out

    def forward(self, x: Tensor) -> Tensor:
        if not self.deploy:
            return self.forward_streams(x)[0]
        feat = F.relu(self.conv_first(x))
        for conv in self.backbone_convs:
            feat = F.relu(conv(feat))
        out = F.relu(self.conv_clip(F.relu(self.conv_last(feat))))
        if out.shape[1] != self._build_config["num_in_ch"] * self.scale**2:
            out = out[:, :-1]  # the x3 padding channel
        return self.upsampler(out)

    @torch.no_grad()
    def to_deploy(self) -> ETDS:
        """The equivalent inference network (``deploy=True``): outputs equal ``clamp(self(x), 0, 1)``."""
        if self.deploy:
            return self
        plain = ETDS(self.scale, **self._build_config, deploy=True).to(self.conv_first.weight.device)
        plain.conv_first.weight.copy_(torch.cat([self.conv_first.weight, self.conv_residual_first.weight]))
        plain.conv_first.bias.copy_(torch.cat([self.conv_first.bias, self.conv_residual_first.bias]))
        for backbone, residual, add, layer in zip(self.backbone_convs, self.residual_convs, self.add_residual_convs,
                                                  plain.backbone_convs):
            # Backbone rows read both streams; residual rows read only the residual stream.
            top = torch.cat([backbone.weight, add.weight], dim=1)
            blind = residual.weight.new_zeros(residual.weight.shape[0], backbone.weight.shape[1], 3, 3)
            bottom = torch.cat([blind, residual.weight], dim=1)
            layer.weight.copy_(torch.cat([top, bottom]))
            layer.bias.copy_(torch.cat([backbone.bias + add.bias, residual.bias]))
        # conv_last computes 1 - y and conv_clip 1 - relu(1 - y): with the ReLUs, a clamp of y to [0, 1].
        out_channels = self.conv_last.weight.shape[0]
        plain.conv_last.weight.zero_()
        plain.conv_last.bias.fill_(1.0)
        plain.conv_last.weight[:out_channels] = -torch.cat([self.conv_last.weight, self.conv_residual_last.weight],
                                                           dim=1)
        plain.conv_last.bias[:out_channels] = 1.0 - (self.conv_last.bias + self.conv_residual_last.bias)
        clip = plain.conv_clip.weight.shape[0]
        plain.conv_clip.weight.copy_(-torch.eye(clip).view(clip, clip, 1, 1))
        plain.conv_clip.bias.fill_(1.0)
        from ..descriptor import bind

        bind(plain, "etds", {"scale": self.scale, **self._build_config, "deploy": True})
        return plain.eval()


# ETDS paper Table 2 (params in K, two decimals), which counts the inference form (deploy=True).
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_ETDS_T_PUBLISHED = {
    2: {"Set5": (37.18, 0.9578), "Set14": (32.76, 0.9103), "B100": (31.62, 0.8930), "Urban100": (30.10, 0.9058)},
    3: {"Set5": (33.14, 0.9160), "Set14": (29.53, 0.8274), "B100": (28.54, 0.7920), "Urban100": (26.48, 0.8111)},
    4: {"Set5": (30.87, 0.8738), "Set14": (27.75, 0.7618), "B100": (27.04, 0.7194), "Urban100": (24.71, 0.7350)},
}
register_variant("etds_t", "etds", {"num_block": 5, "num_feat": 16}, description="ETDS-T (M5C16)"
                 " [published: ETDS Table 2, its own bicubic protocol; Mult-Adds: ETDS]",
                 paper_params={2: 13_940, 3: 16_920, 4: 21_360},
                 paper_psnr=_ETDS_T_PUBLISHED, paper_macs={2: 3.19, 3: 3.86, 4: 4.88})
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_ETDS_S_PUBLISHED = {
    2: {"Set5": (37.38, 0.9587), "Set14": (32.96, 0.9124), "B100": (31.77, 0.8951), "Urban100": (30.62, 0.9121)},
    3: {"Set5": (33.49, 0.9194), "Set14": (29.76, 0.8314), "B100": (28.71, 0.7961), "Urban100": (26.90, 0.8221)},
    4: {"Set5": (31.19, 0.8806), "Set14": (28.01, 0.7678), "B100": (27.18, 0.7240), "Urban100": (25.03, 0.7479)},
}
register_variant("etds_s", "etds", {"num_block": 4, "num_feat": 32}, description="ETDS-S (M4C32)"
                 " [published: ETDS Table 2, its own bicubic protocol; Mult-Adds: ETDS]",
                 paper_params={2: 41_510, 3: 46_790, 4: 54_110},
                 paper_psnr=_ETDS_S_PUBLISHED, paper_macs={2: 9.52, 3: 10.73, 4: 12.41})
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_ETDS_M_PUBLISHED = {
    2: {"Set5": (37.54, 0.9593), "Set14": (33.09, 0.9133), "B100": (31.86, 0.8963), "Urban100": (30.87, 0.9149)},
    3: {"Set5": (33.65, 0.9214), "Set14": (29.86, 0.8333), "B100": (28.78, 0.7981), "Urban100": (27.12, 0.8278)},
    4: {"Set5": (31.41, 0.8843), "Set14": (28.13, 0.7705), "B100": (27.27, 0.7265), "Urban100": (25.20, 0.7544)},
}
register_variant("etds_m", "etds", {"num_block": 6, "num_feat": 32}, description="ETDS-M (M6C32)"
                 " [published: ETDS Table 2, its own bicubic protocol; Mult-Adds: ETDS]",
                 paper_params={2: 60_010, 3: 65_290, 4: 72_610},
                 paper_psnr=_ETDS_M_PUBLISHED, paper_macs={2: 13.77, 3: 14.98, 4: 16.66})
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_ETDS_L_PUBLISHED = {
    2: {"Set5": (37.64, 0.9597), "Set14": (33.24, 0.9145), "B100": (31.98, 0.8977), "Urban100": (31.22, 0.9188)},
    3: {"Set5": (33.88, 0.9235), "Set14": (30.00, 0.8359), "B100": (28.90, 0.8010), "Urban100": (27.45, 0.8359)},
    4: {"Set5": (31.69, 0.8889), "Set14": (28.31, 0.7751), "B100": (27.37, 0.7302), "Urban100": (25.47, 0.7643)},
}
register_variant("etds_l", "etds", {"num_block": 7, "num_feat": 48}, description="ETDS-L (M7C48)"
                 " [published: ETDS Table 2, its own bicubic protocol; Mult-Adds: ETDS]",
                 paper_params={2: 152_180, 3: 159_770, 4: 169_970},
                 paper_psnr=_ETDS_L_PUBLISHED, paper_macs={2: 34.97, 3: 36.71, 4: 39.05})
