"""GMSD and LPIPS as training losses, registered with :func:`litesr.losses.register_loss` (``ssim`` and ``ms_ssim``
are in :mod:`litesr.losses_extra`):

    losses: [{type: l1}, {type: ms_ssim, weight: 0.2}, {type: gmsd, weight: 0.1},
             {type: lpips, weight: 0.05, net: alex, weights: [alex.pth, alexnet_features.pth]}]

Both score the prediction against the target in [0, 1], averaged over the batch, in the input's dtype (float32 in
training), with the metrics' own code (litesr.metrics). The one loss-only change: GMSD adds 1e-12 under its square
root, as pyiqa/piq do (the root's derivative is infinite on a flat patch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import Tensor, nn

from .errors import ConfigError
from .loss_registry import register_loss


def _plane(x: Tensor, color: str) -> Tensor:
    from .metrics.base import color_plane

    return color_plane(x * 255.0, color)


def _check_color(name: str, color: str) -> str:
    if color not in ("rgb", "y", "gray"):
        raise ConfigError(f"loss {name}: color must be rgb, y or gray, not {color!r}")
    return color


@register_loss("gmsd")
class GMSDLoss(nn.Module):
    """GMSD (Xue 2014) per channel (``color: rgb``, default) or on Y / gray; 0 for identical images."""

    def __init__(self, color: str = "rgb") -> None:
        super().__init__()
        self.color = _check_color("gmsd", color)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        from .metrics.gmsd import gmsd

        return gmsd(_plane(pred, self.color), _plane(target, self.color), eps=1e-12).mean()


@register_loss("lpips")
class LPIPSLoss(nn.Module):
    """LPIPS v0.1 with frozen weights from files (``weights``: the lpips heads and a torchvision backbone, or one
    whole lpips.LPIPS state dict); nothing is downloaded."""

    def __init__(self, weights: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                 net: str = "alex") -> None:
        super().__init__()
        from .metrics import create_metric

        if weights is None:
            raise ConfigError("loss lpips needs `weights: [heads.pth, backbone.pth]` (files; nothing is downloaded)")
        self.network = create_metric("lpips", net=net, weights=weights).network

    def train(self, mode: bool = True) -> LPIPSLoss:
        super().train(mode)
        self.network.eval()  # its heads have dropout layers; the metric is always evaluated deterministically
        return self

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.network(pred, target).mean()
