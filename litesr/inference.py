"""The upscaling engine: a zoo model applied to whole images, honouring what its descriptor declares.

:func:`upscale_tensor` builds on the one run path (:func:`litesr.forward.run_model`): tiling with blended overlaps
(:mod:`litesr.tiling`), x8 self-ensemble, bf16/fp16, a memory budget (:mod:`litesr.memory`);
:func:`upscale_image` applies it to a decoded :class:`~litesr.images.Image` (gray, alpha, 16 bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .archs.blocks import pad_to_multiple
from .descriptor import describe
from .device import PRECISIONS, Precision
from .forward import (
    autocast,
    model_device,
    model_luma,
    prepare_for_run,
    rgb_to_ycbcr,
    run_model,
    run_model_with_luma,
    run_prepared,
    ycbcr_to_rgb,
)
from .memory import activation_bytes_per_pixel, tile_for_memory
from .tiling import DIHEDRAL, tile_starts, tiled_passes, upscale_tiled
from .tiling import transform as dihedral
from .tiling import untransform as undo_dihedral

if TYPE_CHECKING:
    from .images import Image

# The run path and the memory budget live in litesr.forward and litesr.memory; these names stay importable from here.
__all__ = [
    "PRECISIONS", "Precision", "activation_bytes_per_pixel", "model_device", "model_luma", "resolve_device",
    "rgb_to_ycbcr", "run_model", "run_model_with_luma", "tile_for_memory", "tile_starts", "upscale_image",
    "upscale_tensor", "ycbcr_to_rgb",
]


def resolve_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    """``None`` -> the model's device (CPU without a model); else :func:`litesr.device.resolve_device`."""
    from .device import resolve_device as resolve

    if device is None:
        return model_device(model) if model is not None else torch.device("cpu")
    return resolve(device)


def upscale_tensor(
    model: nn.Module,
    x: Tensor,
    *,
    tile: int | None = None,
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    precision: Precision = "fp32",
    device: str | torch.device | None = None,
    max_memory: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Upscale RGB ``x`` ((B,) 3, H, W) in [0, 1] with ``model``; returns ((B,) 3, sH, sW) in [0, 1] on x's device.

    - ``tile``: process ``tile`` x ``tile`` LR pieces (rounded up to the model's size multiple) that overlap by
      ``tile_overlap`` pixels and are blended with cosine ramps, so memory stays bounded and no seams show. Edge
      tiles are moved inward, never shrunk. Channel-attention layers get whole-image statistics (extra passes), so
      the result stays within about 1/255 of the untiled one. ``None``: the whole image at once (unless
      ``max_memory`` says otherwise).
    - ``self_ensemble``: average the 8 flipped/transposed versions (x8 time, usually +0.1 dB for CNNs).
    - ``precision``: ``"bf16"`` autocasts to bfloat16 with channels-last tensors (CPU and CUDA); ``"fp16"`` is CUDA
      only. Results are returned in float32.
    - ``device``: where the model runs (it is moved there); the image stays where it is and only tiles travel.
    - ``max_memory``: a budget in bytes for the forward passes; picks the largest tile that fits, from a measured
      calibration run (see :func:`activation_bytes_per_pixel`).
    - ``progress``: called as ``progress(done, total)`` after every forward pass (each tile of each transform), and
      with ``done == total`` at the end; ``total`` counts the most statistics passes tiling may take, so it may jump
      at the end. An exception it raises (a cancelled job) stops the work and propagates.
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"upscale_tensor expects (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"upscale_tensor expects floats in [0, 1], got {x.dtype}")
    x = x.float()
    target, channels_last = prepare_for_run(model, device, precision)
    d = describe(model)
    multiple, scale = d.size_multiple, d.scale
    h, w = x.shape[-2:]
    if max_memory is not None:
        fitted = tile_for_memory(model, (x.shape[0], h, w), max_memory, precision=precision, device=target,
                                 result_on_device=x.device == target)
        tile = fitted if tile is None or (fitted is not None and fitted < tile) else tile
    if tile is not None and tile <= 0:
        tile = None
    if tile is not None:
        tile = math.ceil(tile / multiple) * multiple

    # Allocated outside inference mode, so that callers get an ordinary tensor they may modify in place.
    out = torch.zeros(x.shape[0], 3, h * scale, w * scale, dtype=torch.float32, device=x.device)
    transforms = DIHEDRAL if self_ensemble else DIHEDRAL[:1]
    untiled = tile is None or (tile >= h and tile >= w)
    steps = _Steps(progress, len(transforms) * (1 if untiled else tiled_passes(model, h, w, tile, tile_overlap)))
    with torch.inference_mode(), autocast(precision, target):
        for transform in transforms:
            xt = dihedral(x, *transform)
            th, tw = xt.shape[-2:]
            if untiled:
                yt = run_prepared(model, xt.to(target), channels_last).to(x.device)
                steps.advance()
            else:  # pad the whole image as run_model would, so that edge tiles see what the untiled pass sees
                padded, _, _ = pad_to_multiple(xt, multiple)
                yt = upscale_tiled(model, padded, tile, tile_overlap, scale, target, channels_last, steps.advance)
                yt = yt[..., : th * scale, : tw * scale]
            out += undo_dihedral(yt, *transform)
            del yt
        if self_ensemble:
            out /= len(DIHEDRAL)
        out.clamp_(0.0, 1.0)
    steps.finish()
    return out.squeeze(0) if squeeze else out


class _Steps:
    """Counts forward passes for a ``progress(done, total)`` callback (no-op without one)."""

    def __init__(self, callback: Callable[[int, int], None] | None, total: int) -> None:
        self.callback, self.total, self.done = callback, max(1, total), 0

    def advance(self) -> None:
        self.done = min(self.done + 1, self.total)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(self.total, self.total)


# -------------------------------------------------------------------------------------------------- decoded images


def upscale_image(model: nn.Module, image: Image, **options) -> Image:  # noqa: ANN003 - upscale_tensor's options
    """Upscale a decoded :class:`~litesr.images.Image`: gray images go through the model as RGB and come back gray,
    alpha is upscaled with bicubic interpolation and re-attached, and bit depth, format and metadata carry over.
    ``options`` are those of :func:`upscale_tensor`."""
    from .imresize import imresize

    scale = describe(model).scale
    x = torch.from_numpy(image.rgb).permute(2, 0, 1).unsqueeze(0)
    if image.is_gray:
        x = x.expand(1, 3, -1, -1)
    y = upscale_tensor(model, x.contiguous(), **options)[0]
    rgb = y.mean(dim=0, keepdim=True) if image.is_gray else y
    alpha = None
    if image.alpha is not None:
        up = imresize(torch.from_numpy(image.alpha)[None, None], scale=scale)
        alpha = up[0, 0].clamp_(0.0, 1.0).numpy()
    return image.with_pixels(rgb.permute(1, 2, 0).contiguous().numpy(), alpha)
