"""A learned content-adaptive downscaler after CAR (Sun and Chen, "Learned Image Downscaling for Upscaling using
Content Adaptive Resampler", IEEE TIP 2020), trained jointly with an SR model (``train.type: car``).

CAR's resampler network predicts, for every LR pixel, a k x k kernel over the HR neighbourhood it comes from (and, in
the paper, sub-pixel offsets of each kernel tap); the LR pixel is the kernel-weighted sum of those HR pixels. The SR
network is trained on these LR images, and the gradient of its reconstruction loss reaches the resampler, so the
downscaler learns to keep what the upscaler needs.

litesr's form: PixelUnshuffle(s) of the HR image -> conv3x3 -> ``blocks`` residual blocks -> conv3x3 to k^2 logits,
softmax over the k^2 taps (non-negative weights that sum to 1: a flat area stays flat), applied to the k x k HR
window (stride s, k = 3s by default, the window centred on the LR pixel's s x s footprint). The paper's per-tap
offsets are not modelled (they need its custom CUDA sampling op); the kernels alone are content-adaptive.

The output has the LR size (H/s, W/s); :func:`quantize_ste` rounds it to 8-bit levels in the forward pass and lets
the gradient through, as the paper trains with quantised LR images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import conv


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels), nn.ReLU(inplace=True), conv(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class CARDownscaler(nn.Module):
    """HR (B, 3, H, W) in [0, 1] -> LR (B, 3, H/s, W/s) by per-pixel predicted, normalised k x k kernels."""

    def __init__(self, scale: int = 4, channels: int = 32, blocks: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        k = 3 * scale if kernel_size is None else int(kernel_size)
        if k < scale or (k - scale) % 2:
            raise ValueError(f"car: kernel_size {k} must be >= the scale {scale} and differ from it by an even number")
        self.scale, self.kernel_size = scale, k
        self.config = {"scale": scale, "channels": channels, "blocks": blocks, "kernel_size": k}
        self.head = nn.Sequential(nn.PixelUnshuffle(scale), conv(3 * scale * scale, channels), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[_ResBlock(channels) for _ in range(blocks)])
        self.kernels = conv(channels, k * k)

    def forward(self, hr: Tensor) -> Tensor:
        s, k = self.scale, self.kernel_size
        b, c, h, w = hr.shape
        if h % s or w % s:
            raise ValueError(f"car: the HR size {w}x{h} must be a multiple of the scale {s}")
        weights = torch.softmax(self.kernels(self.body(self.head(hr))), dim=1)  # (B, k*k, H/s, W/s)
        pad = (k - s) // 2
        windows = F.unfold(F.pad(hr, (pad, pad, pad, pad), mode="replicate"), k, stride=s)  # (B, C*k*k, L)
        windows = windows.view(b, c, k * k, h // s, w // s)
        return (windows * weights.unsqueeze(1)).sum(dim=2)


def quantize_ste(x: Tensor) -> Tensor:
    """Round to 8-bit levels in [0, 1] in the forward pass; identity gradient (straight-through estimator)."""
    q = torch.round(x.clamp(0, 1) * 255.0) / 255.0
    return x + (q - x).detach()


def load_downscaler(path: str) -> CARDownscaler:
    """A downscaler exported by a ``car`` run (``downscaler_last.safetensors``), its configuration from the metadata."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    from ..checkpoint import load_into, load_state_dict
    from ..errors import CheckpointError

    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such downscaler file")
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("arch") != "car_downscaler":
        raise CheckpointError(f"{path}: not a CAR downscaler (metadata arch {meta.get('arch')!r})")
    model = CARDownscaler(**json.loads(meta["config"]))
    load_into(model, load_state_dict(path), source=path)
    return model.eval()
