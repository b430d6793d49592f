"""Structural, edge and contrastive training losses, registered with :func:`litesr.losses.register_loss`.

- ``ssim``: 1 - SSIM, with the SSIM of the metric registry (:func:`litesr.metrics.msssim.ssim_and_cs`: 11x11 Gaussian
  1.5, K = 0.01/0.03, valid filtering), on [0, 1] images (peak 1), per RGB channel;
- ``ms_ssim``: 1 - MS-SSIM over ``levels`` scales (the first ``levels`` of Wang's five weights, renormalised;
  level L needs 11 * 2^(L-1) pixels: a 48-pixel patch holds 3 levels, 88 pixels 4). Negative contrast-structure
  terms are clamped to 0 as pyiqa and piq do, since a fractional power of a negative number is not defined (the
  metric itself follows msssim.m and does not clamp);
- ``edge``: L1 between the Sobel gradients (x and y) of prediction and target;
- ``bdloss``: WBSR's Balanced Diversity Loss (litesr's reading, see the class): texture-weighted L1;
- ``contrastive``: RLFN's contrastive loss (Kong et al. 2022, section 3.3): features of a frozen, randomly initialised
  two-layer extractor (conv3x3 - Tanh - conv3x3), ``L1(phi(sr), phi(hr)) / L1(phi(sr), phi(bicubic(lr)))``: the SR
  output is pulled to the HR image and pushed away from the blurry upsampled LR (the negative).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError
from .loss_registry import register_loss
from .metrics._filters import downsample2_symmetric
from .metrics.msssim import MS_SSIM_WEIGHTS, ssim_and_cs


@register_loss("ssim")
class SSIMLoss(nn.Module):
    """1 - mean SSIM (the metric registry's SSIM, on [0, 1] RGB, differentiable)."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if min(pred.shape[-2:]) < 11:
            raise ConfigError(f"ssim loss needs patches of at least 11x11 pixels, got {tuple(pred.shape[-2:])}")
        ssim, _ = ssim_and_cs(pred, target, peak=1.0)
        return 1.0 - ssim.mean()


@register_loss("ms_ssim")
class MSSSIMLoss(nn.Module):
    """1 - MS-SSIM over ``levels`` scales (1..5) with Wang's weights renormalised to sum to 1."""

    def __init__(self, levels: int = 2) -> None:
        super().__init__()
        if not 1 <= int(levels) <= len(MS_SSIM_WEIGHTS):
            raise ConfigError(f"ms_ssim: levels must be 1..{len(MS_SSIM_WEIGHTS)}, not {levels}")
        weights = MS_SSIM_WEIGHTS[: int(levels)]
        self.weights = tuple(w / sum(weights) for w in weights)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        need = 11 * 2 ** (len(self.weights) - 1)
        if min(pred.shape[-2:]) < need:
            raise ConfigError(f"ms_ssim loss with {len(self.weights)} levels needs patches of at least {need}x{need} "
                              f"pixels, got {tuple(pred.shape[-2:])}; lower `levels`")
        score = torch.ones(pred.shape[0], device=pred.device, dtype=pred.dtype)
        x, y = pred, target
        for level, w in enumerate(self.weights):
            ssim, cs = ssim_and_cs(x, y, peak=1.0)
            term = ssim if level == len(self.weights) - 1 else cs
            score = score * term.clamp(min=1e-6) ** w
            if level < len(self.weights) - 1:
                x, y = downsample2_symmetric(x), downsample2_symmetric(y)
        return 1.0 - score.mean()


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def sobel_gradients(x: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal and vertical Sobel responses per channel (replicate border), each normalised by 8."""
    c = x.shape[1]
    kx = _SOBEL_X.to(x).view(1, 1, 3, 3).expand(c, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kx, groups=c), F.conv2d(padded, ky, groups=c)


@register_loss("edge")
class EdgeLoss(nn.Module):
    """L1 between the Sobel gradients of prediction and target (both directions): weights edges and texture."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        px, py = sobel_gradients(pred)
        tx, ty = sobel_gradients(target)
        return F.l1_loss(px, tx) + F.l1_loss(py, ty)


@register_loss("contrastive")
class ContrastiveLoss(nn.Module):
    """RLFN's contrastive loss: positive = HR, negative = bicubic-upsampled LR, anchor = SR, distances as L1 between
    the features of a frozen random conv3x3-Tanh-conv3x3 extractor (seeded by ``seed``, so every run has the same).

    ``channels``: width of the extractor (litesr's choice; the paper does not pin it in the text)."""

    uses_lr = True  # WeightedLoss passes the LR batch

    def __init__(self, channels: int = 64, seed: int = 0, eps: float = 1e-6) -> None:
        super().__init__()
        if int(channels) < 1:
            raise ConfigError(f"contrastive: channels must be >= 1, not {channels}")
        generator = torch.Generator().manual_seed(int(seed))
        self.extractor = nn.Sequential(nn.Conv2d(3, int(channels), 3, padding=1), nn.Tanh(),
                                       nn.Conv2d(int(channels), int(channels), 3, padding=1))
        with torch.no_grad():
            for module in self.extractor:
                if isinstance(module, nn.Conv2d):  # PyTorch's default init, drawn from our own generator
                    bound = 1.0 / (module.in_channels * 9) ** 0.5
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.uniform_(-bound, bound, generator=generator)
        self.extractor.requires_grad_(False)
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor, lr: Tensor) -> Tensor:
        if pred.shape[1] != 3:
            raise ConfigError("contrastive loss needs RGB outputs (a Y-only model gives one channel)")
        negative = F.interpolate(lr, size=pred.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
        anchor = self.extractor(pred)
        with torch.no_grad():
            positive = self.extractor(target)
            negative_f = self.extractor(negative)
        return F.l1_loss(anchor, positive) / (F.l1_loss(anchor, negative_f) + self.eps)


@register_loss("bdloss")
class BalancedDiversityLoss(nn.Module):
    """WBSR's Balanced Diversity Loss as litesr reads the abstract (NeurIPS 2024; no code released): L1 "focusing on
    texture regions while disregarding redundant computation in smooth regions".

    litesr's rule: each pixel's weight is ``floor + (1 - floor) * min(g / threshold, 1)``, ``g`` the Sobel gradient
    magnitude of the target's BT.601 luma in 8-bit units (the gradient HES scores patches with,
    :func:`litesr.data.texture_sampling.gradient_magnitude`), so flat pixels count ``floor`` and edges and texture 1;
    the weighted L1 is normalised per sample (``sum(w * |d|) / sum(w)``), so every patch counts the same whatever its
    share of texture (the balance), and a flat patch still trains at full strength on what little it has."""

    def __init__(self, floor: float = 0.1, threshold: float = 8.0) -> None:
        super().__init__()
        if not 0.0 <= float(floor) <= 1.0 or float(threshold) <= 0:
            raise ConfigError(f"bdloss: floor must be in [0, 1] and threshold > 0, not {floor} and {threshold}")
        self.floor, self.threshold = float(floor), float(threshold)

    def pixel_weights(self, target: Tensor) -> Tensor:
        if target.shape[1] == 3:
            luma = torch.tensor([65.481, 128.553, 24.966], device=target.device, dtype=target.dtype).view(1, 3, 1, 1)
            y = (target * luma).sum(1, keepdim=True)
        else:
            y = target.mean(1, keepdim=True) * 255.0
        gx, gy = sobel_gradients(y)
        g = torch.sqrt(gx * gx + gy * gy)
        return self.floor + (1.0 - self.floor) * (g / self.threshold).clamp(max=1.0)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            w = self.pixel_weights(target)
        per_sample = (w * (pred - target).abs()).flatten(1).sum(1) / (w.flatten(1).sum(1) * pred.shape[1])
        return per_sample.mean()
