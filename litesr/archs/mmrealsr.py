"""MM-RealSR: Metric Learning based Interactive Modulation for Real-World Super-Resolution (Mou et al., ECCV 2022).

An ESRGAN RRDBNet x4 (``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1/2``, ``conv_hr``,
``conv_last``) whose trunk is modulated after every RRDB by ``am_list.N`` (an MLP from a 512-d degradation embedding
to a per-channel ``(1 + gamma) * x + beta``). The embedding (``dd_embed``: Linear + ReLU) comes from degradation
degrees in [0, 1] (blur, noise by default) that a small estimator ``de_net`` predicts from the input: per degradation
its own ``conv_first.i``, a ResNet ``body.i`` (residual blocks without BN, stride-2 convs between stages), a global
average pool and ``fc_degree.i`` (Linear 512, ReLU, Linear 1, sigmoid). Names follow the official code
(TencentARC/MM-RealSR, ``mmrealsr/archs/mmrealsr_arch.py``, the ``MMRRDBNet_test`` network spandrel loads).

``custom_degrees`` (one entry per degradation, None = estimated) overrides the estimated degrees, the interactive
control of the paper: e.g. ``model.custom_degrees = (None, 0.0)`` keeps the estimated blur and asks for no noise.

Size rule: any size, input RGB in [0, 1], x4 only (the released models; the official x2/x1 forms fold the input
for the trunk but feed the unfolded image to an estimator built for the folded channels, so they cannot run).

Tiling: the degrees are pooled over the whole input, so every tile estimates its own: tiled output differs from the
whole-image output where tiles look differently degraded. Weights do not record the estimator's activation (sigmoid
assumed, as spandrel does) nor whether a stage conv between equal widths has stride 1 or 2 (stride 2 assumed, as
spandrel does; the released models have stride 2 everywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed
from .esrgan import RRDB

EMBED_DIM = 512  # fixed in the official code


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


def estimator_body(num_feats: Sequence[int], num_blocks: Sequence[int], downscales: Sequence[int]) -> nn.Sequential:
    """One degradation's ResNet: each stage's residual blocks, then a stride-2 conv (downscale 2) or, between
    different widths, a stride-1 conv (downscale 1)."""
    layers: list[nn.Module] = []
    last = len(num_feats) - 1
    for stage, (feats, blocks, down) in enumerate(zip(num_feats, num_blocks, downscales)):
        layers += [ResidualBlockNoBN(feats) for _ in range(blocks)]
        if down == 2:
            layers.append(nn.Conv2d(feats, num_feats[min(stage + 1, last)], 3, 2, 1))
        elif down == 1:
            if stage < last and feats != num_feats[stage + 1]:
                layers.append(nn.Conv2d(feats, num_feats[stage + 1], 3, 1, 1))
        else:
            raise ConfigError(f"downscales entries must be 1 or 2, not {down}")
    return nn.Sequential(*layers)


class DegradationEstimator(nn.Module):
    """``de_net``: per degradation a conv, a ResNet, a global pool and an MLP to one degree in [0, 1] (or [-1, 1])."""

    def __init__(self, in_ch: int, num_degradation: int, activation: str, num_feats: Sequence[int],
                 num_blocks: Sequence[int], downscales: Sequence[int]) -> None:
        super().__init__()
        if not len(num_feats) == len(num_blocks) == len(downscales):
            raise ConfigError("num_feats, num_blocks and downscales need one entry per stage")
        acts = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
        if activation not in acts:
            raise ConfigError(f"degradation_degree_actv must be 'sigmoid' or 'tanh', not {activation!r}")
        self.conv_first = nn.ModuleList(nn.Conv2d(in_ch, num_feats[0], 3, 1, 1) for _ in range(num_degradation))
        self.body = nn.ModuleList(estimator_body(num_feats, num_blocks, downscales) for _ in range(num_degradation))
        self.fc_degree = nn.ModuleList(
            nn.Sequential(nn.Linear(num_feats[-1], 512), nn.ReLU(inplace=True), nn.Linear(512, 1), acts[activation]())
            for _ in range(num_degradation))

    def forward(self, x: Tensor) -> Tensor:
        """(B, num_degradation) degrees."""
        degrees = [fc(body(conv(x)).mean(dim=(2, 3))).squeeze(-1)
                   for conv, body, fc in zip(self.conv_first, self.body, self.fc_degree)]
        return torch.stack(degrees, dim=1)


class AffineModulate(nn.Module):
    """Per-channel ``(1 + gamma) * x + beta`` with gamma, beta from the degradation embedding (``fc``)."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        hidden = (EMBED_DIM + num_feat * 2) // 2
        self.fc = nn.Sequential(nn.Linear(EMBED_DIM, hidden), nn.ReLU(True), nn.Linear(hidden, hidden), nn.ReLU(True),
                                nn.Linear(hidden, num_feat * 2))

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        gamma, beta = self.fc(embedding)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * x + beta


def _estimator_stages(sd: StateDict) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(num_feats, num_blocks, downscales) from the first estimator's layer sequence: a width change between
    residual blocks closes a stage with downscale 1; a conv closes one with downscale 2 (see the module docstring)."""
    stages: list[tuple[int, int, int]] = []  # (width, blocks, downscale)
    width, count = None, 0
    for i in range(count_indexed(sd, r"de_net\.body\.0\.(\d+)\.")):
        block = sd.get(f"de_net.body.0.{i}.conv1.weight")
        if block is None:  # a plain conv: the stage ends with a stride-2 conv
            if width is None:
                raise ValueError("MMRealSR estimator: a conv before any residual block")
            stages.append((width, count, 2))
            width, count = None, 0
            continue
        if width is not None and int(block.shape[0]) != width:
            stages.append((width, count, 1))
            count = 0
        width, count = int(block.shape[0]), count + 1
    if width is not None:
        stages.append((width, count, 1))
    feats, blocks, downs = zip(*stages)
    return tuple(feats), tuple(blocks), tuple(downs)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "de_net.fc_degree.0.0.weight" not in sd or "am_list.0.fc.0.weight" not in sd or "dd_embed.0.weight" not in sd:
        return None
    in_ch = int(sd["conv_first.weight"].shape[1])
    if int(sd["de_net.conv_first.0.weight"].shape[1]) != in_ch:
        return None
    num_feats, num_blocks, downscales = _estimator_stages(sd)
    return {
        "scale": 4, "num_in_ch": in_ch, "num_out_ch": int(sd["conv_last.weight"].shape[0]),
        "num_feat": int(sd["conv_first.weight"].shape[0]),
        "num_block": count_indexed(sd, r"body\.(\d+)\.rdb1\.conv1\.weight$"),
        "num_grow_ch": int(sd["body.0.rdb1.conv1.weight"].shape[0]),
        "num_degradation": int(sd["dd_embed.0.weight"].shape[1]),
        "num_feats": num_feats, "num_blocks": num_blocks, "downscales": downscales,
    }


@register_arch("mmrealsr", scales=(4,), detect=_detect, paper="Mou et al., ECCV 2022 (MM-RealSR)",
               tiny={"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "num_feats": (8, 16), "num_blocks": (1, 1),
                     "downscales": (2, 1)})
class MMRealSR(SRModel):
    """MM-RealSR x4 (defaults: the released model: RRDBNet 64 x 23 blocks, growth 32, two degradations, estimator
    widths 64/128/256/512 with 2 blocks each)."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32, num_degradation: int = 2,
                 degradation_degree_actv: str = "sigmoid", num_feats: Sequence[int] = (64, 128, 256, 512),
                 num_blocks: Sequence[int] = (2, 2, 2, 2), downscales: Sequence[int] = (2, 2, 2, 1)) -> None:
        super().__init__()
        if scale != 4:
            raise ConfigError(f"MM-RealSR runs x4 only (see litesr.archs.mmrealsr), not x{scale}")
        if num_in_ch != num_out_ch or num_in_ch not in (1, 3):
            raise ConfigError(f"MM-RealSR: litesr runs RGB or one-channel models, not {num_in_ch} -> {num_out_ch}")
        self.scale = scale
        self.color_space = "rgb" if num_in_ch == 3 else "y"
        self.custom_degrees: tuple[float | None, ...] = (None,) * num_degradation
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.ModuleList(RRDB(num_feat, num_grow_ch, upper=False, wrapped=False, plus=False)
                                  for _ in range(num_block))
        self.am_list = nn.ModuleList(AffineModulate(num_feat) for _ in range(num_block))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        self.de_net = DegradationEstimator(num_in_ch, num_degradation, degradation_degree_actv, num_feats,
                                           num_blocks, downscales)
        self.dd_embed = nn.Sequential(nn.Linear(num_degradation, EMBED_DIM), nn.ReLU(True))

    def degrees(self, x: Tensor) -> Tensor:
        """(B, num_degradation): the estimated degrees, with ``custom_degrees`` entries in place where set."""
        degrees = self.de_net(x)
        if len(self.custom_degrees) != degrees.shape[1]:
            raise ConfigError(f"custom_degrees needs {degrees.shape[1]} entries, not {len(self.custom_degrees)}")
        return torch.stack([degrees[:, i] if d is None else torch.full_like(degrees[:, i], float(d))
                            for i, d in enumerate(self.custom_degrees)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        embedding = self.dd_embed(self.degrees(x))
        feat = self.conv_first(x)
        trunk = feat
        for block, modulate in zip(self.body, self.am_list):
            trunk = modulate(block(trunk), embedding)
        feat = feat + self.conv_body(trunk)
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


register_variant("mmrealsr_x4", "mmrealsr", {},
                 description="MM-RealSR x4 (the released MMRealSRNet_x4 / MMRealSRGAN_x4 configuration)")
