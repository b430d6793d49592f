"""Data for arbitrary-scale SR (Meta-SR, LIIF): random non-integer factors, MATLAB bicubic at any factor.

Training (:class:`RandomScalePatches`): every batch draws its factor r from ``scales`` (default 1.0, 1.1, ... 4.0, as
Meta-SR) as a pure function of (seed, iteration), so resumed and multi-process runs see the same sequence; a sample
is an HR crop of round(p * r) pixels and its LR made by MATLAB bicubic to p x p (``lr_patch`` p), on uint8 levels.

Evaluation (:func:`lr_hr_at_scale`): the LR of an HR image at factor r is floor(H / r) x floor(W / r), made from the
HR cropped to round(h_lr * r) x round(w_lr * r) with MATLAB ``imresize`` (each pass rounded to uint8 as MATLAB does on
uint8 images), the Meta-SR protocol; integer factors give exactly the benchmarks' ``modcrop`` + ``imresize``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import DatasetError
from ..imresize import _plan, _resize_along, to_uint8_range
from .train import augment, find_images, read_rgb_uint8, to_tensor

META_SR_SCALES = tuple(round(1.0 + 0.1 * i, 1) for i in range(31))  # 1.0, 1.1, ..., 4.0


def resize_uint8(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MATLAB ``imresize(img, [h w], 'bicubic')`` of a uint8 (H, W, C) image, rounded after each 1-D pass."""
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"resize_uint8 expects uint8 (H, W, C), got {img.dtype} {img.shape}")
    chw = torch.from_numpy(np.array(img, dtype=np.float64)).permute(2, 0, 1)
    for dim, out_len, dim_scale in _plan(tuple(chw.shape[-2:]), None, size):
        chw = to_uint8_range(_resize_along(chw, dim, out_len, dim_scale, True, "symmetric"))
    return np.ascontiguousarray(chw.to(torch.uint8).permute(1, 2, 0).numpy())


def lr_size_at_scale(hr_hw: tuple[int, int], scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """((h_lr, w_lr), (h_hr, w_hr)): the LR size floor(H / r) and the HR crop round(h_lr * r) it corresponds to."""
    lr = tuple(max(1, math.floor(n / scale + 1e-9)) for n in hr_hw)
    hr = tuple(min(n, round(m * scale)) for n, m in zip(hr_hw, lr))
    return lr, hr  # type: ignore[return-value]


def lr_hr_at_scale(hr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(LR, cropped HR) of a uint8 HR image at factor ``scale`` (see the module docstring)."""
    (lh, lw), (hh, hw) = lr_size_at_scale(hr.shape[:2], scale)
    crop = np.ascontiguousarray(hr[:hh, :hw])
    return resize_uint8(crop, (lh, lw)), crop


def check_scales(scales: Sequence[float], source: str = "scales") -> tuple[float, ...]:
    values = tuple(float(s) for s in scales)
    if not values or any(not math.isfinite(s) or s < 1 for s in values):
        raise DatasetError(f"{source}: factors must be numbers >= 1, not {list(scales)}")
    return tuple(sorted(set(values)))


class RandomScalePatches(Dataset):
    """LR patches of ``lr_patch`` pixels with HR crops at a factor drawn per batch (Meta-SR's training data).

    Indexed like :class:`~litesr.data.train.TrainPatches` (``(index, (seed, epoch, position))`` from SampleStream);
    the factor of a sample is that of its batch: ``batch_per_rank`` consecutive samples of this process share it.
    """

    def __init__(self, hr_dirs: Sequence[str | Path], *, lr_patch: int = 48, scales: Sequence[float] = META_SR_SCALES,
                 seed: int = 0, batch_per_rank: int = 1, world_size: int = 1, data_repeat: int = 1,
                 flip: bool = True, rot90: bool = True) -> None:
        self.scales = check_scales(scales)
        self.lr_patch = int(lr_patch)
        need = math.ceil(self.lr_patch * max(self.scales))
        files = [p for d in hr_dirs for p in find_images(d)]
        self.images = [img for img in (read_rgb_uint8(p) for p in files) if min(img.shape[:2]) >= need]
        self.skipped = len(files) - len(self.images)
        if not self.images:
            raise DatasetError(f"no training image is at least {need} pixels on each side "
                               f"(LR patch {self.lr_patch} at x{max(self.scales):g})")
        self.seed, self.batch_per_rank, self.world_size = int(seed), max(1, int(batch_per_rank)), int(world_size)
        self.data_repeat, self.flip, self.rot90 = max(1, int(data_repeat)), flip, rot90
        self.per_rank = math.ceil(len(self) / self.world_size)

    def __len__(self) -> int:
        return len(self.images) * self.data_repeat

    def scale_of(self, iteration: int) -> float:
        rng = np.random.default_rng([self.seed, iteration, 0xA5CA1E])
        return self.scales[int(rng.integers(len(self.scales)))]

    def sample(self, index: int, scale: float, rng: np.random.Generator) -> dict[str, Tensor]:
        hr = self.images[index % len(self.images)]
        size = min(round(self.lr_patch * scale), *hr.shape[:2])
        top = int(rng.integers(0, hr.shape[0] - size + 1))
        left = int(rng.integers(0, hr.shape[1] - size + 1))
        crop = np.ascontiguousarray(hr[top : top + size, left : left + size])
        lr = resize_uint8(crop, (self.lr_patch, self.lr_patch))
        lr, crop = augment(lr, crop, rng, self.flip, self.rot90)
        return {"lr": to_tensor(lr), "hr": to_tensor(crop), "scale": torch.tensor(size / self.lr_patch)}

    def __getitem__(self, item: int | tuple[int, tuple[int, int, int]]) -> dict[str, Tensor]:
        if isinstance(item, tuple):
            index, (seed, epoch, position) = item
            consumed = epoch * self.per_rank + position // self.world_size
            rng = np.random.default_rng([seed, epoch, position])
        else:
            index = consumed = int(item)
            rng = np.random.default_rng(index)
        return self.sample(index, self.scale_of(consumed // self.batch_per_rank), rng)
