"""Zero-Shot Super-Resolution (ZSSR, Shocher, Cohen and Irani, CVPR 2018): a small CNN trained on the test image alone.

The input image is the "HR father"; its downscaled copies are the "LR sons". Each iteration draws an augmented crop of
the father (scale, shear, rotation, flips; the paper's probabilities), downscales it by the SR factor (MATLAB bicubic,
or a given kernel) and trains the network to undo that. At test time the network runs on the input itself, over the 8
dihedral transforms; each output is back-projected onto the input, the median is taken and back-projected again.

Facts from the official code (assafshocher/ZSSR ``configs.py``, ``ZSSR.py``, ``utils.py``), kept here:

- network: 8 conv layers 3x3, 64 channels, ReLU, no biases, weights ~ N(0, 0.1 / fan_in); it learns the residual over
  the bicubic upscale of its input; L1 loss; Adam, lr 1e-3; crops 128x128;
- learning-rate policy: every 50 iterations the reconstruction error (the net on the downscaled input vs the input,
  MSE) is measured; every 60 iterations, once 256 have passed since the last change, a line is fitted to the last 5
  measurements; when ``-1.5 * slope < std(slope)`` the rate is divided by 10. Training stops when it falls under 9e-6,
  or at 3000 iterations;
- augmentation: with p=0.05 the crop is left as is, with p=0.45 it is only rotated by a multiple of 90 degrees and
  mirrored, otherwise an affine warp: scale U(0.5, current scale), anisotropy N(0, 0.25), shear N(0, 0.1), any angle;
- gradual SR: a list of intermediate factors; each one's result joins the sources the fathers are drawn from;
- test: 8 transforms (4 rotations x mirror), 10 back-projection steps each and after the median.

Differences: the affine warp samples bicubically with reflected borders (OpenCV's warpPerspective fills zeros), the
time budget (``time_budget``) may end training before the policy does, and the upscale of the son to the father's
size is litesr's MATLAB ``imresize`` to that size.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, LitesrError
from ..imresize import imresize
from .common import Deadline, TextProgress, to_array, to_tensor

MIN_SON_SIDE = 8  # an LR son smaller than this gives the 8-layer net (receptive field 17) nothing to learn from
MAX_KERNEL_SIDE = 64


class ZSSRNet(nn.Module):
    """The paper's network: ``depth`` 3x3 convolutions of ``width`` channels, ReLU between, residual over the input."""

    def __init__(self, channels: int = 3, width: int = 64, depth: int = 8, init_variance: float = 0.1) -> None:
        super().__init__()
        if depth < 2:
            raise ConfigError(f"ZSSR depth must be >= 2, not {depth}")
        sizes = [channels] + [width] * (depth - 1) + [channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(sizes, sizes[1:]))
        for conv in self.convs:
            nn.init.normal_(conv.weight, std=math.sqrt(init_variance / (conv.in_channels * 9)))

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i < len(self.convs) - 1:
                y = F.relu(y)
        return x + y


# ------------------------------------------------------------------------------------------------------------ kernels


def load_kernel(path: str | os.PathLike, scale: float) -> np.ndarray:
    """A downscaling kernel from a ``.npy`` file as KernelGAN writes it: 2-D, square, float, non-negative.

    It is normalised to sum 1 and shifted so that its centre of mass sits where a ``scale`` subsampling expects it
    (ZSSR's ``kernel_shift``). Anything else is refused with one line naming the file.
    """
    from scipy import ndimage

    path = Path(path)
    try:
        kernel = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise LitesrError(f"{path}: not a readable .npy kernel ({str(exc).splitlines()[0]})") from None
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise LitesrError(f"{path}: a kernel must be a square 2-D array (KernelGAN writes e.g. 13x13), "
                          f"got shape {kernel.shape}")
    side = kernel.shape[0]
    if not np.issubdtype(kernel.dtype, np.floating) and not np.issubdtype(kernel.dtype, np.integer):
        raise LitesrError(f"{path}: kernel values must be numbers, got {kernel.dtype}")
    if side < 2 or side > MAX_KERNEL_SIDE:
        raise LitesrError(f"{path}: kernel side {side} is outside 2..{MAX_KERNEL_SIDE}")
    kernel = kernel.astype(np.float64)
    if not np.isfinite(kernel).all() or (kernel < 0).any() or kernel.sum() <= 0:
        raise LitesrError(f"{path}: kernel values must be finite and non-negative with a positive sum")
    kernel = kernel / kernel.sum()
    # ZSSR's kernel_shift: move the centre of mass to where subsampling at rate `scale` expects it.
    wanted = np.array(kernel.shape) / 2 + 0.5 * (np.array([scale, scale]) - np.array(kernel.shape) % 2)
    shift = wanted - np.array(ndimage.center_of_mass(kernel))
    kernel = np.pad(kernel, int(np.ceil(np.max(np.abs(shift)))) + 1)
    return ndimage.shift(kernel, shift)


def downscale(x: Tensor, factor: float, kernel: Tensor | None = None) -> Tensor:
    """``x`` made ``factor`` times smaller: MATLAB bicubic, or correlation with ``kernel`` then subsampling (ZSSR)."""
    h, w = x.shape[-2:]
    out_h, out_w = max(1, math.ceil(h / factor - 1e-9)), max(1, math.ceil(w / factor - 1e-9))
    if kernel is None:
        return imresize(x, size=(out_h, out_w))
    k = kernel.shape[-1]
    mode = "reflect" if min(h, w) > k // 2 else "replicate"
    padded = F.pad(x, (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2), mode=mode)
    c = x.shape[1]
    blurred = F.conv2d(padded, kernel.to(x).expand(c, 1, k, k), groups=c)
    rows = torch.from_numpy(np.round(np.linspace(0, h - factor, out_h)).astype(np.int64)).to(x.device)
    cols = torch.from_numpy(np.round(np.linspace(0, w - factor, out_w)).astype(np.int64)).to(x.device)
    return blurred.index_select(-2, rows).index_select(-1, cols)


def back_project(sr: Tensor, lr: Tensor, factor: float, kernel: Tensor | None) -> Tensor:
    """One back-projection step: add the bicubic upscale of what the LR image says the SR output lacks."""
    residual = lr - downscale(sr, factor, kernel)
    return (sr + imresize(residual, size=tuple(sr.shape[-2:]))).clamp(0, 1)


# ------------------------------------------------------------------------------------------------------- augmentation


def _affine_crop(image: Tensor, matrix: np.ndarray, crop: int, mode: str) -> Tensor:
    """The ``crop`` x ``crop`` output of the pixel-coordinate transform ``matrix`` (source -> output), as cv2 does."""
    h, w = image.shape[-2:]
    inverse = np.linalg.inv(matrix)
    ys, xs = np.meshgrid(np.arange(crop, dtype=np.float64), np.arange(crop, dtype=np.float64), indexing="ij")
    src = inverse @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    gx = (2 * src[0] / src[2] + 1) / w - 1
    gy = (2 * src[1] / src[2] + 1) / h - 1
    grid = torch.from_numpy(np.stack([gx, gy], -1).reshape(1, crop, crop, 2)).to(image)
    return F.grid_sample(image, grid, mode=mode, padding_mode="reflection", align_corners=False).clamp(0, 1)


def random_father(sources: Sequence[Tensor], base_scales: Sequence[float], max_scale: float, rng: np.random.Generator,
                  cfg: ZSSRConfig) -> Tensor:
    """An augmented ``cfg.crop_size`` crop of one source image (ZSSR's ``random_augment``)."""
    chooser = rng.random()
    leave = cfg.leave_as_is_probability
    mode = "leave" if chooser < leave else "no_interp" if chooser < leave + cfg.no_interpolate_probability else "affine"
    scale = 1.0 if mode == "leave" else rng.random() * (max_scale - cfg.min_scale) + cfg.min_scale
    if mode != "affine":
        scale = 1.0
    index = next(i for i, b in enumerate(base_scales) if b > scale - 1e-6)
    image = sources[index]
    h, w = image.shape[-2:]
    centre = np.array([[1, 0, -w / 2.0], [0, 1, -h / 2.0], [0, 0, 1]])
    back = np.array([[1, 0, w / 2.0], [0, 1, h / 2.0], [0, 0, 1]])
    if mode != "affine":
        centre, back = np.round(centre), np.round(back)
    diff = 0.0
    if mode == "affine":
        scale /= base_scales[index]
        diff = rng.standard_normal() * cfg.scale_diff_sigma
    reflect = 1.0 if mode == "leave" or not cfg.allow_rotation else float(np.sign(rng.standard_normal()) or 1.0)
    scale_mat = np.array([[reflect * (scale + diff / 2), 0, 0], [0, scale - diff / 2, 0], [0, 0, 1]])
    crop = cfg.crop_size
    shift_x, shift_y = rng.random() * max(scale * w - crop, 0), rng.random() * max(scale * h - crop, 0)
    shift = np.array([[1, 0, -shift_x], [0, 1, -shift_y], [0, 0, 1]])
    if mode != "affine":
        shift = np.round(shift)
    theta = {"affine": rng.random() * 2 * math.pi, "no_interp": rng.integers(4) * math.pi / 2}.get(mode, 0.0)
    if not cfg.allow_rotation:
        theta = 0.0
    rotation = np.array([[math.cos(theta), math.sin(theta), 0], [-math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
    shear_x, shear_y = (rng.standard_normal(2) * cfg.shear_sigma) if mode == "affine" else (0.0, 0.0)
    shear = np.array([[1, shear_x, 0], [shear_y, 1, 0], [0, 0, 1]])
    matrix = back @ shift @ shear @ rotation @ scale_mat @ centre
    if mode != "affine":
        matrix = np.round(matrix)  # exact quarter turns and integer shifts: nearest sampling copies pixels
    return _affine_crop(image, matrix, crop, "bicubic" if mode == "affine" else "nearest")


# ---------------------------------------------------------------------------------------------------------- training


@dataclass
class ZSSRConfig:
    """ZSSR's settings; the defaults are the official ``configs.py`` values."""

    width: int = 64
    depth: int = 8
    init_variance: float = 0.1
    learning_rate: float = 1e-3
    min_learning_rate: float = 9e-6
    max_iters: int = 3000
    min_iters: int = 256
    crop_size: int = 128
    run_test_every: int = 50
    policy_check_every: int = 60
    slope_range: int = 256
    change_ratio: float = 1.5
    leave_as_is_probability: float = 0.05
    no_interpolate_probability: float = 0.45
    min_scale: float = 0.5
    scale_diff_sigma: float = 0.25
    shear_sigma: float = 0.1
    allow_rotation: bool = True
    noise_std: float = 0.0
    back_projection_iters: int = 10
    self_ensemble: bool = True
    # Intermediate factors for gradual SR (the last one must be the scale); empty: one jump.
    scale_steps: list[float] = field(default_factory=list)


@dataclass
class ZSSRResult:
    image: np.ndarray  # (H*s, W*s, C) float32 in [0, 1]
    iterations: list[int]  # training iterations per step
    seconds: float
    learning_rate_changes: list[list[int]]  # iterations at which the rate was divided by 10, per step
    reconstruction_mse: list[float]  # last measured reconstruction error per step


def min_input_side(scale: float) -> int:
    """The smallest input side whose LR sons are still at least :data:`MIN_SON_SIDE` pixels."""
    return math.ceil(MIN_SON_SIDE * scale)


def default_steps(scale: float, gradual: bool) -> list[float]:
    """One jump, or for gradual SR factors growing by at most 1.5 per step toward ``scale`` (x2: 1.5, 2; x4: 1.5, 2.25,
    3.375, 4 would be long, so x4 uses 2, 4 as the paper's x4 runs do)."""
    if not gradual or scale <= 1.5:
        return [float(scale)]
    if scale == 2:
        return [1.5, 2.0]
    steps, s = [], 2.0
    while s < scale:
        steps.append(s)
        s *= 2
    return steps + [float(scale)]


def zssr(image: np.ndarray, scale: float, *, kernel: np.ndarray | None = None, config: ZSSRConfig | None = None,
         time_budget: float | None = None, seed: int = 0, device: str | torch.device = "cpu",
         progress: bool = False, label: str = "zssr") -> ZSSRResult:
    """Super-resolve ``image`` ((H, W, C) float in [0, 1]) by ``scale``, training on the image alone.

    ``kernel``: the downscaling kernel (see :func:`load_kernel`; default MATLAB bicubic). ``time_budget``: seconds of
    training in all, split evenly over the gradual steps (the test-time ensemble comes on top).
    """
    cfg = config or ZSSRConfig()
    if scale <= 1:
        raise ConfigError(f"ZSSR scale must be > 1, not {scale}")
    h, w = image.shape[:2]
    need = min_input_side(scale)
    if min(h, w) < need:
        raise LitesrError(f"image {w}x{h} is too small for ZSSR x{scale:g}: its internal LR/HR pairs need at least "
                          f"{need}x{need} pixels")
    steps = list(cfg.scale_steps) or [float(scale)]
    if abs(steps[-1] - scale) > 1e-6 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ConfigError(f"ZSSR scale steps {steps} must increase to the scale {scale:g}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = torch.device(device)
    kernel_t = None if kernel is None else torch.from_numpy(np.asarray(kernel, dtype=np.float32)).to(device)
    lr_input = to_tensor(image, device)
    net = ZSSRNet(image.shape[2], cfg.width, cfg.depth, cfg.init_variance).to(device)
    sources, base_scales = [lr_input], [1.0]
    deadline = Deadline(time_budget)
    result = ZSSRResult(image=image, iterations=[], seconds=0.0, learning_rate_changes=[], reconstruction_mse=[])
    # ZSSR's own code keeps the kernel for the final scale only; intermediate steps use bicubic, as its configs do.
    for step_index, factor in enumerate(steps):
        step_kernel = kernel_t if step_index == len(steps) - 1 else None
        step_deadline = None if time_budget is None else time_budget * (step_index + 1) / len(steps)
        bar = TextProgress(f"{label} x{factor:g}", cfg.max_iters, enabled=progress)
        iters, changes, rec = _train_step(net, lr_input, sources, base_scales, factor, step_kernel, cfg, rng,
                                          deadline, step_deadline, bar)
        bar.close()
        out = _final_test(net, lr_input, factor, step_kernel, cfg)
        sources.append(out)
        base_scales.append(factor)
        result.iterations.append(iters)
        result.learning_rate_changes.append(changes)
        result.reconstruction_mse.append(rec)
    result.image = to_array(sources[-1])
    result.seconds = deadline.elapsed
    return result


def _train_step(net: ZSSRNet, lr_input: Tensor, sources: list[Tensor], base_scales: list[float], factor: float,
                kernel: Tensor | None, cfg: ZSSRConfig, rng: np.random.Generator, deadline: Deadline,
                step_deadline: float | None, bar: TextProgress) -> tuple[int, list[int], float]:
    """Train on (son, father) pairs at ``factor`` until the policy, ``max_iters`` or the budget stops it."""
    learning_rate = cfg.learning_rate
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    changes = [0]
    rec_steps: list[int] = []
    rec_mse: list[float] = []
    window = max(2, cfg.slope_range // cfg.run_test_every)
    # The official max_scale is the factor of the newest source (1.0 before any step has finished).
    max_scale = base_scales[-1]
    iteration = 0
    for iteration in range(cfg.max_iters):
        father = random_father(sources, base_scales, max(max_scale, cfg.min_scale), rng, cfg)
        son = downscale(father, factor, kernel)
        if cfg.noise_std:
            son = (son + torch.randn_like(son) * cfg.noise_std).clamp(0, 1)
        net.train()
        out = net(imresize(son, size=tuple(father.shape[-2:])))
        loss = (out - father).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if iteration % cfg.run_test_every == 0:
            rec_steps.append(iteration)
            rec_mse.append(_reconstruction_mse(net, lr_input, factor, kernel))
        if ((1 + iteration) % cfg.policy_check_every == 0 and iteration - changes[-1] > cfg.min_iters
                and len(rec_mse) >= 2):
            (slope, _), cov = np.polyfit(rec_steps[-window:], rec_mse[-window:], 1, cov=True)
            if -cfg.change_ratio * slope < math.sqrt(max(cov[0][0], 0.0)):
                learning_rate /= 10
                for group in opt.param_groups:
                    group["lr"] = learning_rate
                changes.append(iteration)
        bar.update(iteration + 1, f"loss {float(loss.detach()):.4f} lr {learning_rate:.0e}")
        if learning_rate < cfg.min_learning_rate:
            break
        if step_deadline is not None and deadline.elapsed >= step_deadline:
            break
    bar.update(iteration + 1, f"rec mse {rec_mse[-1]:.2e}", force=True)
    return iteration + 1, changes[1:], rec_mse[-1]


@torch.no_grad()
def _forward(net: ZSSRNet, lr: Tensor, factor: float, size: tuple[int, int] | None = None) -> Tensor:
    net.eval()
    if size is None:
        h, w = lr.shape[-2:]
        size = (math.ceil(h * factor - 1e-9), math.ceil(w * factor - 1e-9))
    return net(imresize(lr, size=size)).clamp(0, 1)


def _reconstruction_mse(net: ZSSRNet, lr_input: Tensor, factor: float, kernel: Tensor | None) -> float:
    rec = _forward(net, downscale(lr_input, factor, kernel), factor, tuple(lr_input.shape[-2:]))
    return float(((rec - lr_input) ** 2).mean())


def _median(stack: Tensor) -> Tensor:
    """numpy's median along dim 0 (the mean of the two middle values for an even count; torch takes the lower)."""
    ordered = stack.sort(0).values
    n = ordered.shape[0]
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@torch.no_grad()
def _final_test(net: ZSSRNet, lr_input: Tensor, factor: float, kernel: Tensor | None, cfg: ZSSRConfig) -> Tensor:
    """Geometric self-ensemble (8 transforms), back-projection of each, median, back-projection of the median."""
    outputs = []
    for k in range(8 if cfg.self_ensemble else 1):
        x = torch.rot90(lr_input, k % 4, dims=(-2, -1))
        if k >= 4:
            x = x.flip(-1)
        y = _forward(net, x, factor)
        if k >= 4:
            y = y.flip(-1)
        y = torch.rot90(y, -(k % 4), dims=(-2, -1))
        for _ in range(cfg.back_projection_iters):
            y = back_project(y, lr_input, factor, kernel)
        outputs.append(y)
    sr = _median(torch.stack(outputs))
    for _ in range(cfg.back_projection_iters):
        sr = back_project(sr, lr_input, factor, kernel)
    return sr
