"""Learned perceptual metrics: LPIPS (Zhang et al. 2018, v0.1) and DISTS (Ding et al. 2020).

The networks are built here (no torchvision) with the key names of the reference code, so the official files load
unchanged: the ``lpips`` package's linear heads (``weights/v0.1/{alex,vgg,squeeze}.pth``: ``lin0.model.1.weight``...),
a torchvision ImageNet backbone (``features.<i>.*`` of AlexNet / VGG-16 / SqueezeNet 1.1), a whole ``lpips.LPIPS`` or
pyiqa ``DISTS`` state dict (``net.slice<k>.<i>.*``, ``stage<k>.<i>.*``), or DISTS' own ``alpha``/``beta`` file.
Weights come only from files the user names (safetensors, or .pth read with ``weights_only=True``); nothing is
downloaded. Several files may be given (heads + backbone); every weight of the network must be covered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Metric, register_metric

# (first, last) torchvision ``features`` indices of each LPIPS slice, and the channels each slice ends with.
_LPIPS_SLICES = {
    "alex": ((0, 1), (2, 4), (5, 7), (8, 9), (10, 11)),
    "vgg": ((0, 3), (4, 8), (9, 15), (16, 22), (23, 29)),
    "squeeze": ((0, 1), (2, 4), (5, 7), (8, 9), (10, 10), (11, 11), (12, 12)),
}
_LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512),
                   "squeeze": (64, 128, 256, 384, 384, 512, 512)}


class Fire(nn.Module):
    """SqueezeNet's fire module (torchvision names: squeeze, expand1x1, expand3x3)."""

    def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


def backbone_features(net: str) -> list[nn.Module]:
    """The ``features`` layers of torchvision's AlexNet, VGG-16 or SqueezeNet 1.1 (same indices, same shapes)."""
    if net == "alex":
        return [nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2),
                nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(3, 2)]
    if net == "vgg":
        layers: list[nn.Module] = []
        c = 3
        for v in (64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0):
            if v == 0:
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        return layers
    if net == "squeeze":
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        return [nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(), Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(), Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256)]
    raise ConfigError(f"LPIPS net must be alex, vgg or squeeze, not {net!r}")


def read_weight_files(paths: str | os.PathLike | Sequence[str | os.PathLike] | None, metric: str
                      ) -> dict[str, torch.Tensor]:
    """The merged state dicts of one or more weight files, with a one-line error for a missing/unreadable file."""
    from ..checkpoint import load_state_dict

    if paths is None or (not isinstance(paths, str | os.PathLike) and not paths):
        raise ConfigError(f"metric {metric} needs its weights: --metric-weights {metric}=FILE (nothing is downloaded)")
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    merged: dict[str, torch.Tensor] = {}
    for p in paths:
        if not Path(p).is_file():
            raise ConfigError(f"{p}: no such weights file (metric {metric})")
        merged.update(load_state_dict(p))
    return merged


def _load(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        what = f"{len(missing)} weights missing (e.g. {', '.join(missing[:3])})" if missing else \
            f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, expected {tuple(own[wrong[0]].shape)}"
        raise ConfigError(f"{source}: {what}")
    module.load_state_dict({k: state[k] for k in own}, strict=True)


class LPIPSNet(nn.Module):
    """lpips.LPIPS(net=..., version="0.1") with its state-dict names: ``net.slice<k>``, ``lin<k>.model.1``."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        features = backbone_features(net)
        self.net_type = net
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.net = nn.Module()
        self.slice_of: dict[int, int] = {}
        for k, (first, last) in enumerate(_LPIPS_SLICES[net], start=1):
            s = nn.Sequential()
            for i in range(first, last + 1):
                s.add_module(str(i), features[i])
                self.slice_of[i] = k
            self.net.add_module(f"slice{k}", s)
        for k, c in enumerate(_LPIPS_CHANNELS[net]):
            self.add_module(f"lin{k}", nn.Module())
            getattr(self, f"lin{k}").model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
        self.requires_grad_(False).eval()

    def translate(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map torchvision ``features.<i>`` and lpips ``lins.<k>`` keys onto this module's names."""
        out = {}
        for key, v in state.items():
            parts = key.split(".")
            if parts[0] == "features" and parts[1].isdigit() and int(parts[1]) in self.slice_of:
                key = f"net.slice{self.slice_of[int(parts[1])]}." + ".".join(parts[1:])
            elif parts[0] == "lins":
                key = f"lin{parts[1]}." + ".".join(parts[2:])
            out[key] = v
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS per image of two RGB batches in [0, 1]."""
        h0, h1 = (2 * x - 1 - self.shift) / self.scale, (2 * y - 1 - self.shift) / self.scale
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for k in range(len(_LPIPS_CHANNELS[self.net_type])):
            s = getattr(self.net, f"slice{k + 1}")
            h0, h1 = s(h0), s(h1)
            n0 = h0 / (torch.sqrt((h0 * h0).sum(1, keepdim=True)) + 1e-10)
            n1 = h1 / (torch.sqrt((h1 * h1).sum(1, keepdim=True)) + 1e-10)
            total = total + getattr(self, f"lin{k}").model((n0 - n1) ** 2).mean(dim=(1, 2, 3))
        return total


class L2Pool(nn.Module):
    """DISTS' L2 pooling: sqrt of a stride-2 Hann(5)-weighted mean of squares (``filter`` buffer as in DISTS)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([0.5, 1.0, 0.5])  # np.hanning(5)[1:-1]
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum()).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTSNet(nn.Module):
    """DISTS (official names: ``stage1..5``, ``alpha``, ``beta``) over VGG-16 with L2 pooling."""

    _STAGES = ((0, 3), (4, 8), (9, 15), (16, 22), (23, 29))
    chns = (3, 64, 128, 256, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        features = backbone_features("vgg")
        self.stage_of: dict[int, int] = {}
        for k, (first, last) in enumerate(self._STAGES, start=1):
            s = nn.Sequential()
            for i in range(first, last + 1):
                s.add_module(str(i), L2Pool(self.chns[k - 1]) if k > 1 and i == first else features[i])
                self.stage_of[i] = k
            setattr(self, f"stage{k}", s)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.alpha = nn.Parameter(torch.full((1, sum(self.chns), 1, 1), 0.1))
        self.beta = nn.Parameter(torch.full((1, sum(self.chns), 1, 1), 0.1))
        self.requires_grad_(False).eval()

    def translate(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for key, v in state.items():
            parts = key.split(".")
            if parts[0] == "features" and parts[1].isdigit() and int(parts[1]) in self.stage_of:
                key = f"stage{self.stage_of[int(parts[1])]}." + ".".join(parts[1:])
            out[key] = v
        for name, buf in self.named_buffers():  # fixed constants, not stored in DISTS_weights.pt
            out.setdefault(name, buf)
        return out

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, h = [x], (x - self.mean) / self.std
        for k in range(1, 6):
            h = getattr(self, f"stage{k}")(h)
            feats.append(h)
        return feats

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """DISTS per image of two RGB batches in [0, 1] (x distorted, y reference)."""
        f0, f1 = self._features(x), self._features(y)
        w = self.alpha.sum() + self.beta.sum()
        alpha = torch.split(self.alpha / w, list(self.chns), dim=1)
        beta = torch.split(self.beta / w, list(self.chns), dim=1)
        d1 = d2 = 0
        for k in range(len(self.chns)):
            m0, m1 = f0[k].mean([2, 3], keepdim=True), f1[k].mean([2, 3], keepdim=True)
            s1 = (2 * m0 * m1 + 1e-6) / (m0**2 + m1**2 + 1e-6)
            v0 = ((f0[k] - m0) ** 2).mean([2, 3], keepdim=True)
            v1 = ((f1[k] - m1) ** 2).mean([2, 3], keepdim=True)
            cov = (f0[k] * f1[k]).mean([2, 3], keepdim=True) - m0 * m1
            s2 = (2 * cov + 1e-6) / (v0 + v1 + 1e-6)
            d1 = d1 + (alpha[k] * s1).sum(1, keepdim=True)
            d2 = d2 + (beta[k] * s2).sum(1, keepdim=True)
        return (1 - (d1 + d2)).flatten()


class _Learned(Metric):
    colors = ("rgb",)
    default_color = "rgb"
    on_255_scale = False
    lower_is_better = True
    differentiable = True
    network: nn.Module

    def _place(self, x: torch.Tensor) -> nn.Module:
        if next(self.network.parameters()).device != x.device:
            self.network.to(x.device)
        return self.network

    def compute(self, x, y):
        return self._place(x)(x, y)  # weights are frozen; gradients reach the inputs when they ask for them


@register_metric("lpips")
class LPIPS(_Learned):
    summary = "learned perceptual distance (LPIPS v0.1; net alex/vgg/squeeze), needs weight files"
    reference = "lpips 0.1.4 LPIPS(net=..., version='0.1'); pyiqa lpips"

    def __init__(self, color: str | None = None, crop: int = 0, net: str = "alex",
                 weights: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> None:
        super().__init__(color, crop)
        self.network = LPIPSNet(net)
        state = self.network.translate(read_weight_files(weights, "lpips"))
        _load(self.network, state, f"lpips ({net}) weights {', '.join(map(str, _as_list(weights)))}")


@register_metric("dists")
class DISTS(_Learned):
    summary = "deep image structure and texture similarity (DISTS), needs weight files"
    reference = "DISTS_pytorch (Ding 2020); pyiqa dists"

    def __init__(self, color: str | None = None, crop: int = 0,
                 weights: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> None:
        super().__init__(color, crop)
        self.network = DISTSNet()
        state = self.network.translate(read_weight_files(weights, "dists"))
        _load(self.network, state, f"dists weights {', '.join(map(str, _as_list(weights)))}")


def _as_list(paths) -> list:
    return [paths] if isinstance(paths, str | os.PathLike) else list(paths)
