"""Synthetic degradations beyond bicubic: blur kernels, noise, JPEG, and the Real-ESRGAN / BSRGAN pipelines.

Every random draw comes from the ``numpy.random.Generator`` a caller passes in, so a (seed, image) pair always gives
the same LR image: the trainer draws from its per-sample generator (on the fly, in the loader workers) and
``litesr eval --degradation`` seeds one generator per test image. Images are float tensors (C, H, W) in [0, 1]; every
pipeline ends clamped and rounded to 8-bit levels, as the LR of a real file would be.

Facts taken from the reference implementations (re-written here):

- kernels: BasicSR ``basicsr/data/degradations.py`` (bivariate Gaussian with covariance R diag(sx^2, sy^2) R^T,
  generalized Gaussian exp(-0.5 (x^T S^-1 x)^beta), plateau 1 / (1 + (x^T S^-1 x)^beta), the circular low-pass
  "sinc" ``cutoff J1(cutoff r) / (2 pi r)``), each normalised to sum 1;
- noise: Gaussian with sigma on the 0..255 scale, gray (one plane for all channels) or colour; Poisson with
  ``vals = 2^ceil(log2(#levels))`` counts, times a scale (BasicSR ``generate_poisson_noise_pt``);
- the two-stage pipeline and its defaults: Real-ESRGAN ``realesrgan_model.py`` and
  ``options/train_realesrgan_x4plus.yml``; the shuffled one: BSRGAN ``utils/utils_blindsr.py degradation_bsrgan``
  (camera ISP noise left out, as in the released code without an ISP model).

JPEG goes through Pillow (libjpeg, 4:2:0), not Real-ESRGAN's differentiable DiffJPEG; quality is rounded to an
integer, as libjpeg takes it.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")
# BT.601 luma weights torchvision's rgb_to_grayscale uses (BasicSR's gray Poisson noise).
_GRAY = (0.2989, 0.587, 0.114)


# ------------------------------------------------------------------------------------------------------- kernels


def _grid(size: int) -> np.ndarray:
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"kernel size must be an odd number >= 1, not {size}")
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """x^T S^-1 x over the kernel grid, S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ConfigError(f"kernel sigmas must be > 0, not ({sigma_x}, {sigma_y})")
    c, s = math.cos(theta), math.sin(theta)
    rotation = np.array([[c, -s], [s, c]])
    cov = rotation @ np.diag([sigma_x**2, sigma_y**2]) @ rotation.T
    grid = _grid(size)
    return np.sum((grid @ np.linalg.inv(cov)) * grid, axis=-1)


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> np.ndarray:
    """Isotropic (``sigma_y`` None) or anisotropic Gaussian rotated by ``theta`` radians; sums to 1."""
    return _normalised(np.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)))


def generalized_gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                                beta: float = 1.0) -> np.ndarray:
    """exp(-0.5 (x^T S^-1 x)^beta): beta < 1 a sharper peak with heavier tails, beta > 1 flatter; beta 1 Gaussian."""
    q = _quadratic_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalised(np.exp(-0.5 * np.power(q, beta)))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                   beta: float = 1.0) -> np.ndarray:
    """1 / (1 + (x^T S^-1 x)^beta): a flat top and a polynomial fall-off (Real-ESRGAN's plateau kernels)."""
    q = _quadratic_form(size, sigma_x, sigma_x if sigma_y is None else sigma_y, theta)
    return _normalised(1.0 / (np.power(q, beta) + 1.0))


def sinc_kernel(cutoff: float, size: int, pad_to: int = 0) -> np.ndarray:
    """The circularly symmetric ideal low-pass ``cutoff J1(cutoff r) / (2 pi r)`` (ringing/overshoot artefacts);
    ``cutoff`` in radians (pi = no filtering); zero-padded to ``pad_to``."""
    from scipy import special

    r = np.linalg.norm(_grid(size), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    kernel[size // 2, size // 2] = cutoff**2 / (4 * np.pi)  # the limit at r = 0
    kernel = _normalised(kernel)
    if pad_to > size:
        pad = (pad_to - size) // 2
        kernel = np.pad(kernel, pad)
    return kernel


def _uniform(rng: np.random.Generator, bounds: Sequence[float] | float) -> float:
    if isinstance(bounds, int | float):
        return float(bounds)
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo if lo == hi else float(rng.uniform(lo, hi))


def _beta(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    """BasicSR's draw: half the time below 1, half above (bounds assumed to straddle 1)."""
    lo, hi = float(bounds[0]), float(bounds[1])
    return float(rng.uniform(lo, 1.0)) if rng.uniform() < 0.5 else float(rng.uniform(1.0, hi))


def random_kernel(rng: np.random.Generator, stage: StageConfig) -> np.ndarray:
    """A kernel as one Real-ESRGAN stage draws it: an odd size from ``kernel_sizes``, then a sinc filter with
    probability ``sinc_prob`` or one of ``kernel_list`` (weighted by ``kernel_prob``), zero-padded to the largest
    size."""
    size = int(rng.choice(stage.kernel_sizes))
    largest = max(stage.kernel_sizes)
    if rng.uniform() < stage.sinc_prob:
        cutoff = rng.uniform(np.pi / 3, np.pi) if size < 13 else rng.uniform(np.pi / 5, np.pi)
        kernel = sinc_kernel(float(cutoff), size)
    else:
        probs = np.asarray(stage.kernel_prob, dtype=np.float64)
        kind = stage.kernel_list[int(rng.choice(len(stage.kernel_list), p=probs / probs.sum()))]
        sigma_x = _uniform(rng, stage.blur_sigma)
        sigma_y, theta = sigma_x, 0.0
        if kind.endswith("aniso"):
            sigma_y = _uniform(rng, stage.blur_sigma)
            theta = float(rng.uniform(-math.pi, math.pi))
        if kind.startswith("generalized"):
            kernel = generalized_gaussian_kernel(size, sigma_x, sigma_y, theta, _beta(rng, stage.betag_range))
        elif kind.startswith("plateau"):
            kernel = plateau_kernel(size, sigma_x, sigma_y, theta, _beta(rng, stage.betap_range))
        else:
            kernel = gaussian_kernel(size, sigma_x, sigma_y, theta)
    pad = (largest - size) // 2
    return np.pad(kernel, pad) if pad else kernel


# ------------------------------------------------------------------------------------------------ image operations


def blur(x: Tensor, kernel: np.ndarray | Tensor) -> Tensor:
    """Convolve every channel of (C, H, W) with a (k, k) kernel; reflect padding (replicate when the image is
    smaller than the kernel's half width), same output size."""
    k = torch.as_tensor(kernel, dtype=x.dtype, device=x.device)
    pad = k.shape[-1] // 2
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    padded = F.pad(x.unsqueeze(0), (pad, pad, pad, pad), mode=mode)
    weight = k.flip(-2, -1).expand(x.shape[0], 1, *k.shape)  # a true convolution, as filter2D of cv2/scipy
    return F.conv2d(padded, weight, groups=x.shape[0])[0]


def resize(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """(C, H, W) to (C, *size) with torch's area / bilinear / bicubic (no antialiasing, as Real-ESRGAN), or
    ``matlab``: MATLAB's antialiased bicubic (litesr.imresize)."""
    size = (max(1, int(size[0])), max(1, int(size[1])))
    if mode == "matlab":
        from ..imresize import imresize

        return imresize(x, size=size)
    if mode not in RESIZE_MODES:
        raise ConfigError(f"unknown resize mode {mode!r}; use one of {', '.join(RESIZE_MODES)}, matlab")
    options = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x.unsqueeze(0), size=size, mode=mode, **options)[0]


def add_gaussian_noise(x: Tensor, sigma: float, rng: np.random.Generator, *, gray: bool = False) -> Tensor:
    """x + N(0, (sigma / 255)^2): one noise plane shared by all channels when ``gray``, else one per channel."""
    shape = (1, *x.shape[-2:]) if gray else tuple(x.shape)
    noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(x.device, x.dtype)
    return x + noise * (sigma / 255.0)


def add_poisson_noise(x: Tensor, scale: float, rng: np.random.Generator, *, gray: bool = False) -> Tensor:
    """Shot noise: ``poisson(v * vals) / vals - v`` times ``scale``, with vals = 2^ceil(log2(#8-bit levels in v)),
    v the image (per channel) or its gray version (shared by all channels) rounded to 8 bits (BasicSR)."""
    if gray:
        w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(3, 1, 1)
        v = (x * w).sum(0, keepdim=True)
    else:
        v = x
    v = torch.clamp(torch.round(v * 255.0), 0, 255) / 255.0
    vals = 2.0 ** math.ceil(math.log2(max(len(torch.unique(v)), 1)))
    counts = rng.poisson(np.clip(v.cpu().numpy().astype(np.float64), 0, None) * vals)
    noise = torch.from_numpy(counts.astype(np.float32)).to(x.device, x.dtype) / vals - v
    return x + noise * scale


def encode_jpeg(x: Tensor, quality: float) -> bytes:
    """The JPEG file (bytes) Pillow writes for (3, H, W) in [0, 1] at ``quality`` (rounded, 1..100)."""
    from PIL import Image

    q = int(round(quality))
    if not 1 <= q <= 100:
        raise ConfigError(f"JPEG quality must be in 1..100, not {quality}")
    pixels = (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=q)
    return buf.getvalue()


def jpeg(x: Tensor, quality: float) -> Tensor:
    """(3, H, W) in [0, 1] through a JPEG of ``quality`` and back (Pillow/libjpeg encode and decode)."""
    from PIL import Image

    decoded = np.asarray(Image.open(io.BytesIO(encode_jpeg(x, quality))).convert("RGB"))
    return torch.from_numpy(decoded.copy()).to(x.device).permute(2, 0, 1).to(x.dtype) / 255.0


def quantize(x: Tensor) -> Tensor:
    """Clamp to [0, 1] and round to 8-bit levels, halves away from zero (MATLAB im2uint8; what a saved LR holds)."""
    from ..imresize import round_half_away

    return torch.clamp(round_half_away(x * 255.0), 0, 255) / 255.0


# ----------------------------------------------------------------------------------------------------- configs


@dataclass
class StageConfig:
    """One degradation stage: blur, random resize, Gaussian or Poisson noise, JPEG (Real-ESRGAN's first stage)."""

    blur_prob: float = 1.0
    kernel_sizes: list[int] = field(default_factory=lambda: [7, 9, 11, 13, 15, 17, 19, 21])
    kernel_list: list[str] = field(default_factory=lambda: list(KERNEL_TYPES))
    kernel_prob: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob: float = 0.1
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    betag_range: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range: list[float] = field(default_factory=lambda: [1.0, 2.0])
    resize_prob: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])  # up, down, keep
    resize_range: list[float] = field(default_factory=lambda: [0.15, 1.5])
    resize_modes: list[str] = field(default_factory=lambda: list(RESIZE_MODES))
    noise_prob: float = 1.0  # probability of any noise
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: list[float] = field(default_factory=lambda: [1.0, 30.0])  # Gaussian sigma on 0..255
    poisson_scale_range: list[float] = field(default_factory=lambda: [0.05, 3.0])
    gray_noise_prob: float = 0.4
    jpeg_prob: float = 1.0
    jpeg_range: list[float] = field(default_factory=lambda: [30.0, 95.0])


def _second_stage() -> StageConfig:
    return StageConfig(blur_prob=0.8, blur_sigma=[0.2, 1.5], resize_prob=[0.3, 0.4, 0.3], resize_range=[0.3, 1.2],
                       noise_range=[1.0, 25.0], poisson_scale_range=[0.05, 2.5])


def _check_stage(stage: StageConfig, where: str) -> None:
    for name in ("blur_prob", "sinc_prob", "noise_prob", "gaussian_noise_prob", "gray_noise_prob", "jpeg_prob"):
        value = getattr(stage, name)
        if not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{where}.{name} must be a probability in [0, 1], not {value}")
    for name in ("blur_sigma", "betag_range", "betap_range", "resize_range", "noise_range", "poisson_scale_range",
                 "jpeg_range"):
        value = getattr(stage, name)
        if not (isinstance(value, Sequence) and len(value) == 2 and float(value[0]) <= float(value[1])):
            raise ConfigError(f"{where}.{name} must be a [low, high] pair, not {value!r}")
    if min(stage.blur_sigma) <= 0:
        raise ConfigError(f"{where}.blur_sigma must be > 0, not {stage.blur_sigma}")
    if not 1 <= min(stage.jpeg_range) <= max(stage.jpeg_range) <= 100:
        raise ConfigError(f"{where}.jpeg_range must lie in 1..100, not {stage.jpeg_range}")
    if min(stage.noise_range) < 0 or min(stage.poisson_scale_range) < 0:
        raise ConfigError(f"{where}: noise levels must be >= 0")
    if not stage.kernel_sizes or any(int(k) < 1 or int(k) % 2 == 0 for k in stage.kernel_sizes):
        raise ConfigError(f"{where}.kernel_sizes must be odd sizes, not {stage.kernel_sizes}")
    for kind in stage.kernel_list:
        if kind not in KERNEL_TYPES:
            raise ConfigError(f"{where}.kernel_list: unknown kernel {kind!r}; known: {', '.join(KERNEL_TYPES)}")
    if len(stage.kernel_prob) != len(stage.kernel_list) or sum(stage.kernel_prob) <= 0:
        raise ConfigError(f"{where}.kernel_prob needs one weight per kernel_list entry ({len(stage.kernel_list)})")
    if len(stage.resize_prob) != 3 or sum(stage.resize_prob) <= 0:
        raise ConfigError(f"{where}.resize_prob must be three weights [up, down, keep], not {stage.resize_prob}")
    for mode in stage.resize_modes:
        if mode not in (*RESIZE_MODES, "matlab"):
            raise ConfigError(f"{where}.resize_modes: unknown mode {mode!r}; use {', '.join(RESIZE_MODES)}, matlab")


def _stage_from(mapping: Mapping[str, Any], base: StageConfig, where: str) -> StageConfig:
    names = [f.name for f in dataclasses.fields(StageConfig)]
    values = {}
    for key, value in mapping.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        values[key] = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
    stage = dataclasses.replace(base, **values)
    _check_stage(stage, where)
    return stage


# --------------------------------------------------------------------------------------------------- pipelines


class Degradation:
    """HR (3, H, W) in [0, 1] -> LR (3, H / scale, W / scale) on 8-bit levels; H, W multiples of the scale."""

    name = "degradation"

    def __init__(self, scale: int) -> None:
        self.scale = int(scale)

    def __call__(self, hr: Tensor, rng: np.random.Generator) -> Tensor:
        h, w = hr.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"HR size {w}x{h} is not a multiple of the scale x{self.scale}")
        return quantize(self.degrade(hr.float(), rng, (h // self.scale, w // self.scale)))

    def degrade(self, x: Tensor, rng: np.random.Generator, out_size: tuple[int, int]) -> Tensor:
        raise NotImplementedError


class BicubicDegradation(Degradation):
    """MATLAB bicubic downscaling: the papers' protocol, here to compare with the others."""

    name = "bicubic"

    def degrade(self, x: Tensor, rng: np.random.Generator, out_size: tuple[int, int]) -> Tensor:
        return resize(x, out_size, "matlab")


def _noise(x: Tensor, stage: StageConfig, rng: np.random.Generator) -> Tensor:
    if rng.uniform() >= stage.noise_prob:
        return x
    gray = bool(rng.uniform() < stage.gray_noise_prob)
    if rng.uniform() < stage.gaussian_noise_prob:
        return add_gaussian_noise(x, _uniform(rng, stage.noise_range), rng, gray=gray).clamp(0, 1)
    return add_poisson_noise(x, _uniform(rng, stage.poisson_scale_range), rng, gray=gray).clamp(0, 1)


def _jpeg(x: Tensor, stage: StageConfig, rng: np.random.Generator) -> Tensor:
    if rng.uniform() >= stage.jpeg_prob:
        return x
    return jpeg(x.clamp(0, 1), _uniform(rng, stage.jpeg_range))


def _random_mode(stage: StageConfig, rng: np.random.Generator) -> str:
    return str(stage.resize_modes[int(rng.integers(len(stage.resize_modes)))])


class ClassicalDegradation(Degradation):
    """One stage in the fixed order blur -> downscale to the LR size -> noise -> JPEG (the "classical" degradation
    y = JPEG((x * k) downscaled + n)); each part has the stage's probabilities; the resize never varies in size."""

    name = "classical"

    def __init__(self, scale: int, stage: StageConfig) -> None:
        super().__init__(scale)
        self.stage = stage

    def degrade(self, x: Tensor, rng: np.random.Generator, out_size: tuple[int, int]) -> Tensor:
        if rng.uniform() < self.stage.blur_prob:
            x = blur(x, random_kernel(rng, self.stage))
        x = resize(x, out_size, _random_mode(self.stage, rng)).clamp(0, 1)
        return _jpeg(_noise(x, self.stage, rng), self.stage, rng)


class RealESRGANDegradation(Degradation):
    """Real-ESRGAN's high-order pipeline: two stages of [blur, random resize, noise, JPEG] (the second aiming at the
    LR size times its random factor), then, in random order, [resize to the LR size + sinc filter] and JPEG."""

    name = "realesrgan"

    def __init__(self, scale: int, stage1: StageConfig, stage2: StageConfig, final_sinc_prob: float = 0.8,
                 final_jpeg_range: Sequence[float] | None = None) -> None:
        super().__init__(scale)
        self.stage1, self.stage2 = stage1, stage2
        self.final_sinc_prob = float(final_sinc_prob)
        self.final_jpeg_range = list(final_jpeg_range or stage2.jpeg_range)

    @staticmethod
    def _resize_factor(stage: StageConfig, rng: np.random.Generator) -> float:
        probs = np.asarray(stage.resize_prob, dtype=np.float64)
        kind = int(rng.choice(3, p=probs / probs.sum()))
        if kind == 0:
            return float(rng.uniform(1.0, stage.resize_range[1]))
        if kind == 1:
            return float(rng.uniform(stage.resize_range[0], 1.0))
        return 1.0

    def degrade(self, x: Tensor, rng: np.random.Generator, out_size: tuple[int, int]) -> Tensor:
        h, w = x.shape[-2:]
        # Stage 1: blur always (its blur_prob is 1 by default), then resize by a random factor.
        if rng.uniform() < self.stage1.blur_prob:
            x = blur(x, random_kernel(rng, self.stage1))
        factor = self._resize_factor(self.stage1, rng)
        x = resize(x, (int(h * factor), int(w * factor)), _random_mode(self.stage1, rng))
        x = _jpeg(_noise(x, self.stage1, rng), self.stage1, rng)
        # Stage 2: towards the LR size times a random factor.
        if rng.uniform() < self.stage2.blur_prob:
            x = blur(x, random_kernel(rng, self.stage2))
        factor = self._resize_factor(self.stage2, rng)
        x = resize(x, (int(out_size[0] * factor), int(out_size[1] * factor)), _random_mode(self.stage2, rng))
        x = _noise(x, self.stage2, rng)
        # Final: [resize back + sinc] and JPEG in random order (other orders give "twisted lines", says the paper).
        largest = max(self.stage1.kernel_sizes)
        if rng.uniform() < self.final_sinc_prob:
            size = int(rng.choice(self.stage1.kernel_sizes))
            final_kernel = sinc_kernel(float(rng.uniform(np.pi / 3, np.pi)), size, pad_to=largest)
        else:
            final_kernel = None
        sinc_first = bool(rng.uniform() < 0.5)
        quality = _uniform(rng, self.final_jpeg_range)
        mode = _random_mode(self.stage2, rng)
        if not sinc_first:
            x = jpeg(x.clamp(0, 1), quality)
        x = resize(x, out_size, mode)
        if final_kernel is not None:
            x = blur(x, final_kernel)
        if sinc_first:
            x = jpeg(x.clamp(0, 1), quality)
        return x


class BSRGANDegradation(Degradation):
    """BSRGAN's shuffled pipeline: two blurs, a random downscale, the final downscale (kept after it), Gaussian noise
    and JPEG in random order, then a final JPEG. At x4 a quarter of the images are first halved (MATLAB bicubic or a
    random torch mode), as the released code does."""

    name = "bsrgan"

    def __init__(self, scale: int, jpeg_prob: float = 0.9, scale2_prob: float = 0.25,
                 noise_range: Sequence[float] = (2, 25), jpeg_range: Sequence[float] = (30, 95)) -> None:
        super().__init__(scale)
        self.jpeg_prob, self.scale2_prob = float(jpeg_prob), float(scale2_prob)
        self.noise_range, self.jpeg_range = [float(v) for v in noise_range], [float(v) for v in jpeg_range]

    @staticmethod
    def _blur(x: Tensor, sf: int, rng: np.random.Generator) -> Tensor:
        # BSRGAN add_blur: half anisotropic (eigenvalues l1, l2 in [0, 4 + sf)), half isotropic (sigma < 2 + 0.2 sf).
        size = 2 * int(rng.integers(2, 12)) + 3
        if rng.uniform() < 0.5:
            l1, l2 = (4.0 + sf) * rng.uniform(), (4.0 + sf) * rng.uniform()
            theta = float(rng.uniform() * np.pi)
            kernel = gaussian_kernel(size, math.sqrt(max(l1, 1e-4)), math.sqrt(max(l2, 1e-4)), theta)
        else:
            kernel = gaussian_kernel(size, max((2.0 + 0.2 * sf) * rng.uniform(), 1e-2))
        return blur(x, kernel)

    def _gaussian_noise(self, x: Tensor, rng: np.random.Generator) -> Tensor:
        level = int(rng.integers(int(self.noise_range[0]), int(self.noise_range[1]) + 1))
        kind = rng.uniform()
        if kind > 0.6:
            x = add_gaussian_noise(x, level, rng)
        elif kind < 0.4:
            x = add_gaussian_noise(x, level, rng, gray=True)
        else:  # channel-correlated noise: covariance U^T D U with a random rotation U
            q, _ = np.linalg.qr(rng.uniform(size=(3, 3)))
            cov = np.abs((self.noise_range[1] / 255.0) ** 2 * q.T @ np.diag(rng.uniform(size=3)) @ q)
            noise = rng.multivariate_normal(np.zeros(3), cov, size=tuple(x.shape[-2:])).astype(np.float32)
            x = x + torch.from_numpy(noise).to(x.device, x.dtype).permute(2, 0, 1)
        return x.clamp(0, 1)

    def degrade(self, x: Tensor, rng: np.random.Generator, out_size: tuple[int, int]) -> Tensor:
        sf = self.scale
        if sf == 4 and rng.uniform() < self.scale2_prob:
            h, w = x.shape[-2:]
            mode = "matlab" if rng.uniform() < 0.5 else str(rng.choice(RESIZE_MODES))
            x = resize(x, (h // 2, w // 2), mode).clamp(0, 1)
            sf = 2
        order = list(rng.permutation(7))
        i2, i3 = order.index(2), order.index(3)
        if i2 > i3:  # the final downscale (3) stays after the random one (2)
            order[i2], order[i3] = order[i3], order[i2]
        for step in order:
            if step in (0, 1):
                x = self._blur(x, sf, rng)
            elif step == 2:
                factor = float(rng.uniform(1, 2 * sf))
                h, w = x.shape[-2:]
                x = resize(x, (int(h / factor), int(w / factor)), str(rng.choice(RESIZE_MODES))).clamp(0, 1)
            elif step == 3:
                x = resize(x, out_size, str(rng.choice(RESIZE_MODES))).clamp(0, 1)
            elif step == 4:
                x = self._gaussian_noise(x, rng)
            elif step == 5 and rng.uniform() < self.jpeg_prob:
                x = jpeg(x, _uniform(rng, self.jpeg_range))
            # step 6: camera ISP noise needs BSRGAN's ISP model; its released code skips it without one too.
        return jpeg(x.clamp(0, 1), _uniform(rng, self.jpeg_range))


PIPELINES = ("bicubic", "classical", "realesrgan", "bsrgan")


def _check_keys(mapping: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    for key in mapping:
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid: {', '.join(valid)}")


def build_degradation(spec: str | os.PathLike | Mapping[str, Any] | None, scale: int,
                      *, where: str = "degradation") -> Degradation | None:
    """A pipeline from a name (``realesrgan``), a YAML file holding a mapping, or a mapping ``{type: ..., ...}``.

    Keys per type: ``classical``: ``stage`` (a :class:`StageConfig` mapping); ``realesrgan``: ``stage1``, ``stage2``,
    ``final_sinc_prob``, ``final_jpeg_range``; ``bsrgan``: ``jpeg_prob``, ``scale2_prob``, ``noise_range``,
    ``jpeg_range``. ``seed`` is accepted everywhere (used by ``litesr eval``). ``None`` means none (plain bicubic LR).
    """
    if spec is None:
        return None
    if isinstance(spec, str | os.PathLike) and str(spec).lower() in PIPELINES:
        spec = {"type": str(spec).lower()}
    elif isinstance(spec, str | os.PathLike):
        spec = read_degradation_file(Path(spec))
        where = str(spec.pop("__source__", where))
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ConfigError(f"{where} must be one of {', '.join(PIPELINES)}, a YAML file, or a mapping with a `type`")
    kind = str(spec["type"]).lower()
    options = {k: v for k, v in spec.items() if k not in ("type", "seed")}
    if kind == "bicubic":
        _check_keys(options, [], where)
        return BicubicDegradation(scale)
    if kind == "classical":
        _check_keys(options, ["stage"], where)
        base = StageConfig(resize_modes=["matlab"])
        return ClassicalDegradation(scale, _stage_from(options.get("stage") or {}, base, f"{where}.stage"))
    if kind == "realesrgan":
        _check_keys(options, ["stage1", "stage2", "final_sinc_prob", "final_jpeg_range"], where)
        stage1 = _stage_from(options.get("stage1") or {}, StageConfig(), f"{where}.stage1")
        stage2 = _stage_from(options.get("stage2") or {}, _second_stage(), f"{where}.stage2")
        final = float(options.get("final_sinc_prob", 0.8))
        if not 0 <= final <= 1:
            raise ConfigError(f"{where}.final_sinc_prob must be in [0, 1], not {final}")
        return RealESRGANDegradation(scale, stage1, stage2, final, options.get("final_jpeg_range"))
    if kind == "bsrgan":
        _check_keys(options, ["jpeg_prob", "scale2_prob", "noise_range", "jpeg_range"], where)
        return BSRGANDegradation(scale, **options)
    close = difflib.get_close_matches(kind, PIPELINES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{where}: unknown degradation type {kind!r}{hint}; known: {', '.join(PIPELINES)}")


def read_degradation_file(path: Path) -> dict[str, Any]:
    """A YAML file holding a degradation mapping (or a ``degradation:`` key with one)."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: no such degradation file (or give one of {', '.join(PIPELINES)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a readable YAML file ({type(exc).__name__})") from None
    if isinstance(data, Mapping) and "degradation" in data:
        data = data["degradation"]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping with a `type` key")
    return {**data, "__source__": str(path)}


def degradation_seed(spec: str | os.PathLike | Mapping[str, Any] | None, default: int = 0) -> int:
    """The ``seed`` of a mapping or YAML degradation spec (``default`` for a bare name)."""
    if isinstance(spec, str | os.PathLike) and str(spec).lower() not in PIPELINES:
        spec = read_degradation_file(Path(spec))
    if isinstance(spec, Mapping) and "seed" in spec:
        return int(spec["seed"])
    return default


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of test image ``index`` under ``seed``: one independent stream per image, so a test set's LR
    images do not depend on how many images came before or in which order they are built."""
    return np.random.default_rng([int(seed), int(index)])


def degrade_uint8(hr: np.ndarray, degradation: Degradation, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3) HR (mod-cropped to the scale here) -> uint8 LR through ``degradation``."""
    s = degradation.scale
    hr = hr[: hr.shape[0] - hr.shape[0] % s, : hr.shape[1] - hr.shape[1] % s]
    x = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1).float() / 255.0
    lr = degradation(x, rng)  # already on 8-bit levels
    return (lr * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
