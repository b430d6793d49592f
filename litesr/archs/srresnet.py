"""SRResNet and SRGAN: Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network
(Ledig et al., CVPR 2017), the BN-free MSRResNet of BasicSR, and an unofficial SRGAN generator.

- ``srresnet``: the paper generator. conv 9x9 + PReLU; 16 residual blocks (conv-BN-PReLU-conv-BN, plus the input);
  conv 3x3 + BN and a skip from the first conv; per factor 2 a conv to 4C, PixelShuffle(2), PReLU; conv 9x9 to RGB.
  SRGAN is this generator trained with the perceptual (VGG + adversarial) loss, registered as the variant ``srgan``.
  Ledig et al. released no code or weights; the state-dict names are those of the most used PyTorch reproduction of
  the paper model (Lornatang/SRGAN-PyTorch ``model.py``: ``conv_block1``, ``trunk.N.rcb``, ``conv_block2``,
  ``upsampling.N.upsample_block``, ``conv_block3``; convolutions before a BN carry no bias). Unlike that code, the
  output is not clamped (clamping belongs to the engine and would stop gradients). Input and output are RGB in [0, 1].
- ``msrresnet``: BasicSR's "modified SRResNet" (``basicsr/archs/srresnet_arch.py``), a different model: no BN,
  ReLU residual blocks, LeakyReLU 0.1 elsewhere, 3x3 first/last convs, plus a bilinear upscale of the input.
- ``srgan_leftthomas``: the UNOFFICIAL leftthomas/SRGAN generator (``model.py`` at b0323c6): 5 BN residual blocks, a
  conv + PReLU (no BN) after them, and output ``(tanh + 1) / 2``; keys ``block1`` .. ``block{N+3}``.
- :class:`SRGANDiscriminator`: the paper's VGG-style discriminator (not an SR model, so not registered).

Notes for a GAN training loop (SRGAN): train ``srresnet`` with L2 first (the paper's SRResNet-MSE, 10^6 updates at
lr 1e-4), then alternate updates of the generator (content loss from ``litesr.perceptual.PerceptualLoss`` on VGG54,
i.e. ``relu5_4``, plus 1e-3 x the adversarial loss ``BCEWithLogits(D(G(lr)), 1)``) and of :class:`SRGANDiscriminator`
(``BCEWithLogits(D(hr), 1) + BCEWithLogits(D(G(lr).detach()), 0)``); Adam beta1 = 0.9, lr 1e-4 then 1e-5. The
discriminator returns logits (no sigmoid) and needs HR patches of ``input_size`` (96 in the paper); BN makes both
networks depend on ``train()``/``eval()`` mode, and the loop must switch the discriminator's ``requires_grad`` off
while the generator steps.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import conv, count_indexed


def _upsampling_factors(scale: int) -> list[int]:
    """The PixelShuffle factors of a sub-pixel upsampler: [2] * log2(s) for powers of 2, [3] for x3."""
    if scale == 3:
        return [3]
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    raise ValueError(f"scale {scale} is not supported; supported scales are 2^n and 3")


# ---------------------------------------------------------------------------------------------------------------------
# SRResNet / SRGAN generator (paper)


class ResidualConvBlock(nn.Module):
    """conv-BN-PReLU-conv-BN plus the input (``rcb.{0,1,2,3,4}``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rcb = nn.Sequential(
            conv(channels, channels, 3, bias=False), nn.BatchNorm2d(channels), nn.PReLU(),
            conv(channels, channels, 3, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.rcb(x) + x


class UpsampleBlock(nn.Module):
    """Sub-pixel convolution: conv to C * f^2, PixelShuffle(f), PReLU (``upsample_block.{0,2}``)."""

    def __init__(self, channels: int, factor: int = 2) -> None:
        super().__init__()
        self.upsample_block = nn.Sequential(conv(channels, channels * factor**2, 3), nn.PixelShuffle(factor),
                                            nn.PReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.upsample_block(x)


def _detect_srresnet(sd: StateDict) -> dict | None:
    if "conv_block1.0.weight" not in sd or "trunk.0.rcb.0.weight" not in sd or "conv_block3.weight" not in sd:
        return None
    num_feat, in_channels = sd["conv_block1.0.weight"].shape[:2]
    up_convs = [k for k in sd if re.match(r"upsampling\.\d+\.upsample_block\.0\.weight$", k)]
    factors = [sd[k].shape[0] // num_feat for k in up_convs]
    return {
        "scale": math.prod(math.isqrt(f) for f in factors),
        "num_blocks": count_indexed(sd, r"trunk\.(\d+)\.rcb\.0\.weight$"),
        "num_feat": num_feat,
        "in_channels": in_channels,
    }


@register_arch("srresnet", scales=(2, 3, 4, 8), detect=_detect_srresnet, paper="Ledig et al., CVPR 2017",
               tiny={"num_blocks": 2, "num_feat": 8})
class SRResNet(SRModel):
    """SRResNet / SRGAN generator: 16 BN residual blocks, PReLU, sub-pixel upsampling (Ledig et al.)."""

    def __init__(self, scale: int = 4, num_blocks: int = 16, num_feat: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.scale = scale
        self.conv_block1 = nn.Sequential(conv(in_channels, num_feat, 9), nn.PReLU())
        self.trunk = nn.Sequential(*(ResidualConvBlock(num_feat) for _ in range(num_blocks)))
        self.conv_block2 = nn.Sequential(conv(num_feat, num_feat, 3, bias=False), nn.BatchNorm2d(num_feat))
        self.upsampling = nn.Sequential(*(UpsampleBlock(num_feat, f) for f in _upsampling_factors(scale)))
        self.conv_block3 = conv(num_feat, in_channels, 9)

    def forward(self, x: Tensor) -> Tensor:
        head = self.conv_block1(x)
        return self.conv_block3(self.upsampling(self.conv_block2(self.trunk(head)) + head))


register_variant("srgan", "srresnet", {},
                 description="SRGAN generator (= SRResNet, trained with VGG54 + adversarial loss)")


# ---------------------------------------------------------------------------------------------------------------------
# MSRResNet (BasicSR)


class ResidualBlockNoBN(nn.Module):
    """BasicSR's residual block: conv-ReLU-conv plus the input (``conv1``, ``conv2``)."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = conv(num_feat, num_feat, 3)
        self.conv2 = conv(num_feat, num_feat, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


def _detect_msrresnet(sd: StateDict) -> dict | None:
    if "conv_first.weight" not in sd or "upconv1.weight" not in sd or "conv_hr.weight" not in sd:
        return None
    num_feat, num_in_ch = sd["conv_first.weight"].shape[:2]
    scale = 4 if "upconv2.weight" in sd else math.isqrt(sd["upconv1.weight"].shape[0] // num_feat)
    return {
        "scale": scale,
        "num_in_ch": num_in_ch,
        "num_out_ch": sd["conv_last.weight"].shape[0],
        "num_feat": num_feat,
        "num_block": count_indexed(sd, r"body\.(\d+)\.conv1\.weight$"),
    }


@register_arch("msrresnet", scales=(2, 3, 4), detect=_detect_msrresnet, paper="Wang et al. (BasicSR), after Ledig 2017",
               tiny={"num_feat": 8, "num_block": 2})
class MSRResNet(SRModel):
    """BasicSR's modified SRResNet: BN-free residual blocks, LeakyReLU, plus a bilinear upscale of the input."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 16) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"MSRResNet supports x2, x3 and x4, not x{scale}")
        self.scale = scale
        self.conv_first = conv(num_in_ch, num_feat, 3)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        self.upconv1 = conv(num_feat, num_feat * (4 if scale == 4 else scale**2), 3)
        if scale == 4:
            self.upconv2 = conv(num_feat, num_feat * 4, 3)
        self.pixel_shuffle = nn.PixelShuffle(2 if scale == 4 else scale)
        self.conv_hr = conv(num_feat, num_feat, 3)
        self.conv_last = conv(num_feat, num_out_ch, 3)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)
        # BasicSR's initialisation: Kaiming-normal weights scaled by 0.1, zero biases
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
                module.weight.data.mul_(0.1)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.scale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


register_variant("msrresnet", "msrresnet", {}, description="MSRResNet (BasicSR: 16 BN-free blocks, 64 channels)")


# ---------------------------------------------------------------------------------------------------------------------
# leftthomas/SRGAN generator (unofficial)


class LegacyBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose state dict has no ``num_batches_tracked``, as in checkpoints saved before PyTorch 0.4.1.

    The leftthomas weights were saved that way; keeping the counter out of the state dict lets them load (and be
    recognised) with exact key matching. A ``num_batches_tracked`` entry in a checkpoint is ignored.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        counter = self._buffers.pop("num_batches_tracked")
        self.register_buffer("num_batches_tracked", counter, persistent=False)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        # skip BatchNorm's own hook, which would put the counter back in for version-less state dicts
        nn.Module._load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                        unexpected_keys, error_msgs)


class _LeftThomasResidualBlock(nn.Module):
    """conv-BN-PReLU-conv-BN plus the input, with leftthomas's names (``conv1``, ``bn1``, ``prelu``, ...)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv(channels, channels, 3)
        self.bn1 = LegacyBatchNorm2d(channels)
        self.prelu = nn.PReLU()
        self.conv2 = conv(channels, channels, 3)
        self.bn2 = LegacyBatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class _LeftThomasUpsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = conv(channels, channels * 4, 3)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.prelu = nn.PReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.prelu(self.pixel_shuffle(self.conv(x)))


def _detect_leftthomas(sd: StateDict) -> dict | None:
    if "block1.0.weight" not in sd or "block2.conv1.weight" not in sd:
        return None
    num_blocks = count_indexed(sd, r"block(\d+)\.conv1\.weight$")
    last = f"block{num_blocks + 3}"
    ups = count_indexed(sd, re.escape(last) + r"\.(\d+)\.conv\.weight$")
    return {"scale": 2**ups, "num_blocks": num_blocks, "num_feat": sd["block1.0.weight"].shape[0]}


@register_arch("srgan_leftthomas", scales=(2, 4, 8), detect=_detect_leftthomas,
               paper="UNOFFICIAL SRGAN generator of leftthomas/SRGAN (GAN-trained on VOC2012)",
               tiny={"num_blocks": 2, "num_feat": 8})
class LeftThomasSRGAN(SRModel):
    """UNOFFICIAL leftthomas/SRGAN generator: 5 BN residual blocks, conv + PReLU, output (tanh + 1) / 2."""

    def __init__(self, scale: int = 4, num_blocks: int = 5, num_feat: int = 64) -> None:
        super().__init__()
        self.scale = scale
        self.num_blocks = num_blocks
        self.block1 = nn.Sequential(conv(3, num_feat, 9), nn.PReLU())
        for i in range(num_blocks):
            setattr(self, f"block{i + 2}", _LeftThomasResidualBlock(num_feat))
        setattr(self, f"block{num_blocks + 2}", nn.Sequential(conv(num_feat, num_feat, 3), nn.PReLU()))
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"the leftthomas generator supports powers of 2 (x2, x4, x8), not x{scale}")
        ups = [_LeftThomasUpsample(num_feat) for _ in range(int(math.log2(scale)))]
        setattr(self, f"block{num_blocks + 3}", nn.Sequential(*ups, conv(num_feat, 3, 9)))

    def forward(self, x: Tensor) -> Tensor:
        head = self.block1(x)
        out = head
        for i in range(self.num_blocks + 1):
            out = getattr(self, f"block{i + 2}")(out)
        out = getattr(self, f"block{self.num_blocks + 3}")(head + out)
        return (torch.tanh(out) + 1) / 2


# ---------------------------------------------------------------------------------------------------------------------
# SRGAN discriminator


class SRGANDiscriminator(nn.Module):
    """Ledig et al.'s discriminator: 8 conv layers (64 -> 512 channels, stride 2 every second layer, BN after all but
    the first, LeakyReLU 0.2), dense 1024, LeakyReLU, dense 1. Returns logits (apply a sigmoid, or use
    ``BCEWithLogitsLoss``). The dense layer is sized for square HR patches of ``input_size`` (96 in the paper).
    """

    def __init__(self, in_channels: int = 3, num_feat: int = 64, input_size: int = 96) -> None:
        super().__init__()
        if input_size % 16:
            raise ValueError(f"SRGANDiscriminator input_size must be a multiple of 16 (four stride-2 convs), "
                             f"not {input_size}")
        self.input_size = input_size
        layers: list[nn.Module] = [conv(in_channels, num_feat, 3), nn.LeakyReLU(0.2, inplace=True)]
        channels = num_feat
        for i in range(1, 8):
            out_channels = num_feat * 2 ** (i // 2)  # 64, 128, 128, 256, 256, 512, 512
            layers += [conv(channels, out_channels, 3, bias=False, stride=2 if i % 2 else 1),
                       nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True)]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        side = input_size // 16
        self.classifier = nn.Sequential(nn.Linear(channels * side * side, 1024), nn.LeakyReLU(0.2, inplace=True),
                                        nn.Linear(1024, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"SRGANDiscriminator was built for {self.input_size}x{self.input_size} patches, "
                             f"got {tuple(x.shape[-2:])}")
        return self.classifier(torch.flatten(self.features(x), 1))
