"""Uncertainty-driven loss (UDL; Ning, Dong, Wu, Shi, Li: "Uncertainty-Driven Loss for Single Image
Super-Resolution", NeurIPS 2021), for any zoo model: ``train.udl.stage1_iters: N``.

A variance head predicts the log-variance ``s`` of every HR pixel. litesr's head reads the SR output and the
bicubic-upsampled LR (6 channels; conv3x3 - ReLU - conv3x3 - ReLU - conv3x3 to 1 channel), so it fits any model
without knowing its layers; in the paper the variance branch shares the SR network's features.

- Stage 1 (the first ``stage1_iters`` iterations), estimating sparsity-guided uncertainty (ESU):
  ``mean(exp(-s) * |sr - hr| + 2 s)``; the head and the network both learn.
- Stage 2 (the rest): the head is frozen and its uncertainty, detached, weights the L1:
  ``mean(s_hat * |sr - hr|)`` with ``s_hat = s - min(s)`` per image (non-negative, monotone in the uncertainty:
  textured, uncertain pixels get more weight). The paper computes it with the network trained in stage 1; litesr
  keeps training that same network in stage 2 (no second network), so the uncertainty comes from the head on the
  current output.

Both terms are logged (``udl_esu`` in stage 1, ``udl`` in stage 2) next to ``train.losses``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class VarianceHead(nn.Module):
    """Log-variance map (B, 1, H, W) from the SR output and the upsampled LR."""

    def __init__(self, channels: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2 * in_channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(channels, 1, 3, padding=1),
        )

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        up = F.interpolate(lr, size=sr.shape[-2:], mode="bicubic", align_corners=False)
        return self.body(torch.cat([sr, up], dim=1))


def esu_loss(sr: Tensor, hr: Tensor, log_var: Tensor) -> Tensor:
    """Stage 1: ``mean(exp(-s) |sr - hr| + 2 s)`` (s broadcast over the channels)."""
    return (torch.exp(-log_var) * (sr - hr).abs() + 2.0 * log_var).mean()


def udl_loss(sr: Tensor, hr: Tensor, log_var: Tensor) -> Tensor:
    """Stage 2: ``mean(s_hat |sr - hr|)``, ``s_hat = s - min(s)`` per image, detached."""
    s = log_var.detach()
    s_hat = s - s.amin(dim=(1, 2, 3), keepdim=True)
    return (s_hat * (sr - hr).abs()).mean()


class UDL:
    """The two stages of UDL as a training strategy (see the module doc)."""

    def __init__(self, cfg: Mapping[str, Any], out_channels: int) -> None:
        self.stage1_iters = int(cfg["stage1_iters"])
        self.weight = float(cfg["weight"])
        self.head = VarianceHead(int(cfg["head_channels"]), out_channels)

    def stage(self, iteration: int) -> int:
        return 1 if iteration < self.stage1_iters else 2

    def losses(self, sr: Tensor, target: Tensor, lr: Tensor, iteration: int) -> dict[str, Tensor]:
        if lr.shape[1] != sr.shape[1]:  # a Y model: the head reads the LR's luma-like mean
            lr = lr.mean(dim=1, keepdim=True)
        if self.stage(iteration) == 1:
            self.head.requires_grad_(True)
            return {"udl_esu": self.weight * esu_loss(sr, target, self.head(sr, lr))}
        self.head.requires_grad_(False)
        with torch.no_grad():
            log_var = self.head(sr.detach(), lr)
        return {"udl": self.weight * udl_loss(sr, target, log_var)}
