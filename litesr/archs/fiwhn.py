"""FIWHN: Efficient image super-resolution with feature interaction weighted hybrid network (Li, Li, Gao, Deng, Yang,
Qi and Lin, IEEE Transactions on Multimedia 2024; arXiv:2212.14181). Official code: github.com/24wenjie-li/FIWHN
(``model/FIWHNx2.py``, ``FIWHNx3.py``, ``FIWHNx4.py``, class ``MODEL``; read at commit c7b1739); state-dict names
follow it, so the released ``experiments/model_best_x{2,3,4}.pt`` load unchanged.

The network (32 channels, RGB in [0, 255] with a learned DIV2K mean shift):

- ``head``: 3x3 conv; three WDIBs (official ``MY1..MY3``) run twice with the same weights. A WDIB holds two
  interacting paths of wide residual units (official ``SRBW1``: 1x1 to 2C, ReLU, 1x1 to C/2, 3x3 back to C, a
  learned residual scale), crossed by ``CoffConv`` weights (mean-pooled and standard-deviation squeezes, each through
  1x1 down by 8, ReLU, 1x1 up, ReLU, sigmoid, averaged), gated by sigmoid 1x1 "distillation" convs, and fused by a
  wide unit on both (``SRBW2``) plus a sigmoid-gated 1x1 (self-calibrating fusion).
- the WDIB outputs are mixed by two grouped 3x3 convs with channel shuffles (FSWG) and a 0.5/0.5 residual.
- the Transformer branch (two ESRT-style efficient Transformers, ``attention1/2``; 3x3-neighbourhood tokens of 9C
  features, 9 heads, attention within N // 4 consecutive tokens) reads the second WDIB output of the first pass and
  feeds the second WDIB of the second pass; its output is concatenated with the CNN output (1x1 ``conv``).
- two sub-pixel tails: ``UP1`` on the features, ``UP2`` on the mean-shifted input (through ``conv2``), summed.

The three per-scale files differ in one place besides the tail: in ``FIWHNx2.py`` and ``FIWHNx3.py`` the wide
units skip their shuffle attention (``SAlayer``, SA-Net's) and ``SRBW1`` its identity path; ``FIWHNx4.py`` uses
both. The attention's tensors are in every checkpoint, so shapes cannot tell; the x2/x3 checkpoints hold them at
their initial values (never trained), the x4 one trained. ``shuffle_attention=None`` follows the official file of
the scale (on at x4 only); litesr-written files record the option.

Size rule: any input of at least 2 x 2 pixels (smaller ones are padded, the output cropped; the official code fails
on fewer than 4 tokens). The attention spans a quarter of the image's tokens, and the squeezes and GroupNorm are
whole-image statistics: tiled inference changes the result. The official test script runs the model on four
overlapping quadrants (``forward_chop``, 10-pixel overlap, recursively above 40,000 pixels); litesr's ``forward``
runs the whole image.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import pixelshuffle_block, pixelshuffle_scale
from .base import SRModel
from .blocks import MeanShift, channel_std, conv, run_at_least
from .esrt import PATCH, EfficientTransformer, Scale
from .seemore import channel_shuffle

WDIBS = 3  # MY1..MY3, each run twice (two passes share the weights)
SHUFFLE_GROUPS = 4  # the FSWG grouped convs and their channel shuffle
SA_GROUPS = 4  # SA-Net shuffle attention groups


class ShuffleAttention(nn.Module):
    """SA-Net's shuffle attention (official ``sa_layer``): per group, half the channels get a channel gate from their
    mean, half a spatial gate from their GroupNorm; then a 2-group channel shuffle."""

    def __init__(self, channels: int, groups: int = SA_GROUPS) -> None:
        super().__init__()
        self.groups = groups
        half = channels // (2 * groups)
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.gn = nn.GroupNorm(half, half)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        x_channel, x_spatial = x.reshape(b * self.groups, -1, h, w).chunk(2, dim=1)
        gate_c = torch.sigmoid(self.cweight * x_channel.mean(dim=(2, 3), keepdim=True) + self.cbias)
        gate_s = torch.sigmoid(self.sweight * self.gn(x_spatial) + self.sbias)
        out = torch.cat([x_channel * gate_c, x_spatial * gate_s], dim=1).reshape(b, -1, h, w)
        return channel_shuffle(out, 2)


class WideUnit(nn.Module):
    """Official ``SRBW1`` (``out_channels`` = C) and ``SRBW2`` (2C in, C out, with a 3x3 ``conv`` identity path):
    1x1 to twice the input width, ReLU, 1x1 to half, 3x3 to the output, optional shuffle attention, learned scales."""

    def __init__(self, channels: int, out_channels: int, shuffle_attention: bool) -> None:
        super().__init__()
        self.shuffle_attention = shuffle_attention
        self.res_scale, self.x_scale = Scale(1.0), Scale(1.0)
        self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels * 2, channels // 2, 1), conv(channels // 2, out_channels, 3))
        self.SAlayer = ShuffleAttention(out_channels)
        self.widened = out_channels != channels
        if self.widened:
            self.conv = conv(channels, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        if self.shuffle_attention:
            y = self.SAlayer(y)
        y = self.res_scale(y)
        if self.widened:
            return y + self.x_scale(self.conv(x))
        # FIWHNx2/x3's SRBW1 has no identity path (its x_scale is stored, unused).
        return y + self.x_scale(x) if self.shuffle_attention else y


class CoffConv(nn.Module):
    """Interaction weights: (gate(mean) + gate(std)) / 2, each gate 1x1 down by 8, ReLU, 1x1 up, ReLU, sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = channels // 8
        self.upper_branch = nn.Sequential(nn.AdaptiveAvgPool2d(1), *self._gate(channels, squeezed))
        self.lower_branch = nn.Sequential(*self._gate(channels, squeezed))

    @staticmethod
    def _gate(channels: int, squeezed: int) -> list[nn.Module]:
        # The ReLU before the sigmoid is the official code's: the weights stay in [0.5, 1).
        return [nn.Conv2d(channels, squeezed, 1), nn.ReLU(inplace=True), nn.Conv2d(squeezed, channels, 1),
                nn.ReLU(inplace=True), nn.Sigmoid()]

    def forward(self, x: Tensor) -> Tensor:
        return (self.upper_branch(x) + self.lower_branch(channel_std(x))) / 2


class WDIB(nn.Module):
    """Wide-residual distillation interaction block (official ``MY``): two crossing paths and a calibrated fusion."""

    def __init__(self, channels: int, shuffle_attention: bool) -> None:
        super().__init__()
        self.act = nn.LeakyReLU(0.05)
        for name in ("srb1", "srb2", "rb1", "rb2"):
            setattr(self, name, WideUnit(channels, channels, shuffle_attention))
        for name in ("A1_coffconv", "B1_coffconv", "A2_coffconv", "B2_coffconv"):
            setattr(self, name, CoffConv(channels))
        self.conv_distilled1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.conv_distilled2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.scale_x1, self.scale_x2 = Scale(1.0), Scale(1.0)
        self.srb3 = WideUnit(channels, channels, shuffle_attention)
        self.srb4 = WideUnit(channels, channels, shuffle_attention)
        self.fuse1 = WideUnit(channels * 2, channels, shuffle_attention)
        self.fuse2 = nn.Conv2d(channels * 2, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        distilled_a = self.act(self.srb1(x))
        out_a = self.rb1(distilled_a)
        path_b = self.A1_coffconv(out_a) * out_a + x
        path_a = self.B1_coffconv(x) * x + out_a

        distilled_b = self.act(self.srb2(path_b))
        out_b = self.rb2(distilled_b)
        path_b = (self.A2_coffconv(path_a) * path_a + out_b) * torch.sigmoid(self.conv_distilled1(distilled_b))
        path_a = (out_b * self.B2_coffconv(out_b) + path_a) * torch.sigmoid(self.conv_distilled2(distilled_a))

        out_a, out_b = self.srb3(path_a), self.srb4(path_b)
        both = torch.cat([self.scale_x1(out_a), self.scale_x2(out_b)], dim=1)
        return self.fuse1(both) + torch.sigmoid(self.fuse2(both)) * out_b


class TransBlock(EfficientTransformer):
    """The efficient Transformer of ESRT (same layers and names), its tokens folded back to a feature map."""

    def forward(self, x: Tensor) -> Tensor:
        tokens = super().forward(x)
        return F.fold(tokens.transpose(1, 2), x.shape[-2:], PATCH, padding=PATCH // 2)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    needed = ("MY1.A1_coffconv.upper_branch.1.weight", "MY1.fuse1.SAlayer.cweight", "attention1.atten.reduce.weight",
              "UP1.0.weight", "UP2.0.weight", "conv_concat2.weight")
    if any(k not in sd for k in needed):
        return None
    return {"scale": pixelshuffle_scale(sd, "UP1.0.weight", 3), "n_feats": int(sd["head.weight"].shape[0])}


@register_arch("fiwhn", scales=(2, 3, 4), detect=_detect, paper="Li et al., IEEE TMM 2024 (FIWHN)",
               tiny={"n_feats": 8})
class FIWHN(SRModel):
    """FIWHN: weight-shared WDIB groups run twice, an efficient-Transformer branch, two sub-pixel tails; RGB 0-255.

    ``shuffle_attention``: whether the wide units apply their shuffle attention; ``None`` follows the official file
    of the scale (x4 on, x2/x3 off). ``num_heads`` is not stored in the weights.
    """

    input_range = 255.0

    def __init__(self, scale: int = 4, n_feats: int = 32, num_heads: int = 9,
                 shuffle_attention: bool | None = None) -> None:
        super().__init__()
        if n_feats % (2 * SA_GROUPS) or n_feats < 8:
            raise ConfigError(f"FIWHN: n_feats must be a multiple of 8 (shuffle attention groups), not {n_feats}")
        if (n_feats * PATCH * PATCH // 2) % num_heads:
            raise ConfigError(f"FIWHN: {n_feats * PATCH * PATCH // 2} attention features do not split into "
                              f"{num_heads} heads")
        self.scale = scale
        attention = scale == 4 if shuffle_attention is None else shuffle_attention
        self.Sub_mean = MeanShift(255.0)
        self.Add_mean = MeanShift(255.0, sign=1)
        # The official MeanShift sets ``requires_grad`` on the module, not its tensors: the shift is trained (the
        # released checkpoints hold learned values), so it is left trainable here too.
        for p in (*self.Sub_mean.parameters(), *self.Add_mean.parameters()):
            p.requires_grad = True
        self.head = conv(3, n_feats, 3)
        for i in range(1, WDIBS + 1):
            setattr(self, f"MY{i}", WDIB(n_feats, attention))
        self.conv_concat1 = conv(2 * n_feats, n_feats, 3, groups=SHUFFLE_GROUPS, bias=False)
        self.conv_concat2 = conv(2 * n_feats, n_feats, 3, groups=SHUFFLE_GROUPS, bias=False)
        self.attention1 = TransBlock(n_feats, num_heads)
        self.attention2 = TransBlock(n_feats, num_heads)
        self.conv = nn.Conv2d(n_feats * 2, n_feats, 1, bias=False)
        self.scale_x, self.scale_res = Scale(0.5), Scale(0.5)
        self.conv_down = conv(n_feats, n_feats, 3, bias=False)
        self.conv_up = conv(n_feats, n_feats, 3, bias=False)
        self.conv1 = conv(n_feats, n_feats, 3, bias=False)
        self.UP1 = pixelshuffle_block(n_feats, 3, scale)
        self.conv2 = conv(3, n_feats, 3)
        self.UP2 = pixelshuffle_block(n_feats, 3, scale)

    def _group(self, x: Tensor, inject: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One pass of the three WDIBs and their shuffled fusion; ``inject`` is added to the second WDIB's input.
        Returns the group output and the second WDIB's output."""
        out1 = self.MY1(x)
        out2 = self.MY2(out1 if inject is None else out1 + inject)
        out3 = self.MY3(out2)
        mixed = channel_shuffle(self.conv_concat1(torch.cat([out1, out2], dim=1)), SHUFFLE_GROUPS)
        mixed = channel_shuffle(self.conv_concat2(torch.cat([mixed, out3], dim=1)), SHUFFLE_GROUPS)
        return self.scale_x(mixed + out3) + self.scale_res(x), out2

    def _forward(self, x: Tensor) -> Tensor:
        shifted = self.Sub_mean(x)
        features = self.head(shifted)
        first, out2 = self._group(features)
        global_features = self.attention2(self.attention1(self.conv_down(out2) + features))
        second, _ = self._group(first, self.conv_up(global_features))
        fused = self.conv(torch.cat([second, global_features], dim=1))
        return self.Add_mean(self.UP1(self.conv1(fused)) + self.UP2(self.conv2(shifted)))

    def forward(self, x: Tensor) -> Tensor:
        # The four token chunks need at least four tokens.
        return run_at_least(self._forward, x, 2, self.scale)


# The paper's tables (published parameters, Mult-Adds, PSNR) could not be read when this was written: none are
# registered. Official code parameter counts: 705,098 / 713,768 / 725,906 (x2 / x3 / x4), see docs/fiwhn.md.
register_variant("fiwhn", "fiwhn", {}, description="FIWHN (32 channels, 3 weight-shared WDIBs run twice, 2 ETs)")
