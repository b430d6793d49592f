"""NIQE (Mittal, Soundararajan, Bovik 2013), as the authors' ``niqe_release`` MATLAB code, and the fit of its pristine
model from a folder of images (``estimatemodelparam.m``).

The image is the rounded gray plane (MATLAB ``rgb2gray`` of the uint8 image: its coefficients 0.298936..., 0.587043...,
0.114020... (the first row of inv(YIQ)), rounded half away from zero, then ``double``), cropped to whole
96x96 blocks. At two scales (the image, then ``imresize(im, 0.5)``, MATLAB bicubic), MSCN coefficients
``(im - mu) / (sigma + 1)`` (7x7 Gaussian, sigma 7/6, replicate borders) give per block 18 features: the AGGD fit of
the coefficients and of their products with the 4 neighbours (``circshift`` by [0 1], [1 0], [1 1], [1 -1] within the
block). The 36-vector per block is fitted by a Gaussian (``nanmean``, ``nancov``) and compared with the pristine one:
``sqrt(d' pinv((C_pristine + C_image) / 2) d)``. Lower is better.

The pristine model (a 36-vector mean and a 36x36 covariance) comes only from a file the user gives: the authors'
``niqe_modelparameters.mat`` (``mu_prisparam``, ``cov_prisparam``), BasicSR's ``niqe_pris_params.npz``
(``mu_pris_param``, ``cov_pris_param``), or a file written by ``litesr fit-niqe`` (:func:`fit_niqe_model`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..imresize import imresize, round_half_away
from .base import Metric, color_plane, register_metric, to_batch

FEATURES = 36
_FLAT = 1e-10  # relative size of im - mu treated as the exact 0 of a flat neighbourhood
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
# MATLAB's grid 0.2:0.001:10 and r(gamma) = Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g)), built once per dtype/device.
_GRID: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}


def _gamma_grid(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (dtype, device)
    if key not in _GRID:
        gam = 0.2 + 0.001 * torch.arange(9801, dtype=torch.float64)
        r = torch.exp(2 * torch.lgamma(2 / gam) - torch.lgamma(1 / gam) - torch.lgamma(3 / gam))
        _GRID[key] = (gam.to(dtype=dtype, device=device), r.to(dtype=dtype, device=device))
    return _GRID[key]


def aggd_parameters(vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``estimateaggdparam.m`` on each row of ``vec`` (B, P): alpha, beta_left, beta_right (NaN where one side of zero
    is empty, as MATLAB's mean of an empty set)."""
    gam, r_gam = _gamma_grid(vec.dtype, vec.device)
    neg, pos = vec < 0, vec > 0
    left = torch.sqrt((vec * vec * neg).sum(1) / neg.sum(1))
    right = torch.sqrt((vec * vec * pos).sum(1) / pos.sum(1))
    g = left / right
    rhat = vec.abs().mean(1) ** 2 / (vec * vec).mean(1)
    rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = gam[((r_gam[None] - rhatnorm[:, None]) ** 2).argmin(dim=1)]  # first minimum, as MATLAB's min
    ratio = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    nan = torch.isnan(rhatnorm)
    alpha = torch.where(nan, torch.full_like(alpha, math.nan), alpha)
    return alpha, left * ratio, right * ratio


def block_features(structdis: torch.Tensor) -> torch.Tensor:
    """``computefeature.m`` on blocks (B, h, w): the 18 features of each block, (B, 18)."""
    b = structdis.shape[0]
    alpha, bl, br = aggd_parameters(structdis.reshape(b, -1))
    feats = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        pair = (structdis * torch.roll(structdis, shift, dims=(1, 2))).reshape(b, -1)
        alpha, bl, br = aggd_parameters(pair)
        mean = (br - bl) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
        feats += [alpha, mean, bl, br]
    return torch.stack(feats, dim=1)


def _blocks(x: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    """(H, W) -> (n_blocks, bh, bw), blocks in MATLAB's column-major order (down a column of blocks first)."""
    h, w = x.shape
    return x.reshape(h // bh, bh, w // bw, bw).permute(2, 0, 1, 3).reshape(-1, bh, bw)


def fspecial_gaussian(size: int, sigma: float, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)`` built as MATLAB does (2-D exp, tiny values zeroed, / sum). Built
    in 2-D, not as an outer product: flat areas then filter to the same last bits as the reference code, and MSCN
    coefficients there (+-1e-14 noise around 0) fall on the same side of zero."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    h = torch.exp(-(r[None, :] ** 2 + r[:, None] ** 2) / (2 * sigma * sigma))
    h[h < torch.finfo(torch.float64).eps * h.max()] = 0
    return (h / h.sum()).to(dtype=dtype, device=device)


def _mscn(im: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MSCN coefficients and the local sigma of an (H, W) plane: 7x7 Gaussian, ``imfilter(..., 'replicate')``."""
    k = window.shape[0]
    kernel = window.view(1, 1, k, k)
    pad = k // 2
    x = im[None, None]
    mu = F.conv2d(F.pad(x, (pad,) * 4, mode="replicate"), kernel)
    sq = F.conv2d(F.pad(x * x, (pad,) * 4, mode="replicate"), kernel)
    sigma = torch.sqrt((sq - mu * mu).abs())
    centred = x - mu
    # A flat neighbourhood has im - mu = 0 exactly; floating-point filtering leaves +-1e-14 there, whose sign (which
    # depends on the filter's summation order, CPU vs CUDA, ...) would move the block into the AGGD's left or right
    # half. Such values are set to the exact 0 (real MSCN steps of 8-bit images are >= 1e-4).
    centred = torch.where(centred.abs() <= _FLAT * x.abs().clamp_min(1.0), torch.zeros_like(centred), centred)
    return (centred / (sigma + 1))[0, 0], sigma[0, 0]


def niqe_features(plane: torch.Tensor, block: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """The (n_blocks, 36) features of one (H, W) gray plane on 0..255 and each block's sharpness (mean local sigma at
    the first scale, what ``estimatemodelparam.m`` thresholds)."""
    h, w = plane.shape
    rows, cols = h // block, w // block
    if rows == 0 or cols == 0:
        raise ConfigError(f"NIQE needs images of at least {block}x{block} pixels, got {w}x{h}")
    im = plane[: rows * block, : cols * block]
    window = fspecial_gaussian(7, 7 / 6, dtype=im.dtype, device=im.device)
    feats, sharpness = [], None
    for scale in (1, 2):
        structdis, sigma = _mscn(im, window)
        size = block // scale
        feats.append(block_features(_blocks(structdis, size, size)))
        if scale == 1:
            sharpness = _blocks(sigma, block, block).mean(dim=(1, 2))
            im = imresize(im[None], 0.5)[0]
    assert sharpness is not None
    return torch.cat(feats, dim=1), sharpness


def _nan_mean_cov(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB ``nanmean`` (per column, NaNs skipped) and ``nancov`` (rows with a NaN dropped, N - 1)."""
    mu = torch.nanmean(feats, dim=0)
    rows = feats[~torch.isnan(feats).any(dim=1)]
    if rows.shape[0] < 2:
        raise ConfigError("NIQE: fewer than 2 image blocks with finite features (image too small or flat)")
    centred = rows - rows.mean(dim=0)
    return mu, centred.T @ centred / (rows.shape[0] - 1)


def niqe_score(plane: torch.Tensor, mu_pristine: torch.Tensor, cov_pristine: torch.Tensor,
               block: int = 96) -> torch.Tensor:
    """``computequality.m``: NIQE of one (H, W) gray plane (0..255, already rounded as MATLAB's uint8 gray)."""
    feats, _ = niqe_features(plane, block)
    mu, cov = _nan_mean_cov(feats)
    d = (mu_pristine.to(mu) - mu)[None]
    inv = torch.linalg.pinv((cov_pristine.to(cov) + cov) / 2)  # default rtol = max(m, n) eps, as MATLAB pinv
    return torch.sqrt((d @ inv @ d.T)[0, 0])


@dataclass(frozen=True)
class NIQEModel:
    """A pristine NIQE model: mean (36,) and covariance (36, 36) of the pristine block features."""

    mu: np.ndarray
    cov: np.ndarray
    block: int = 96
    sharpness_threshold: float = 0.75
    images: int = 0
    patches: int = 0

    def to_bytes(self) -> bytes:
        """An .npz file with the authors' names (``mu_prisparam``, ``cov_prisparam``) and how it was fitted."""
        buf = io.BytesIO()
        np.savez(buf, mu_prisparam=self.mu[None], cov_prisparam=self.cov, block_size=np.int64(self.block),
                 sharpness_threshold=np.float64(self.sharpness_threshold), images=np.int64(self.images),
                 patches=np.int64(self.patches))
        return buf.getvalue()


_KEY_PAIRS = (("mu_prisparam", "cov_prisparam"), ("mu_pris_param", "cov_pris_param"))


def load_niqe_model(path: str | os.PathLike) -> NIQEModel:
    """Read a pristine model file: .npz (litesr or BasicSR names) or the authors' .mat, checked for shapes."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such NIQE model file (fit one with `litesr fit-niqe DIR -o FILE`)")
    try:
        if path.suffix.lower() == ".mat":
            import scipy.io

            data = dict(scipy.io.loadmat(str(path)))
        else:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001  (any reader failure is one line naming the file)
        raise ConfigError(f"{path}: cannot read the NIQE model ({type(exc).__name__}: {exc})") from None
    for mu_key, cov_key in _KEY_PAIRS:
        if mu_key in data and cov_key in data:
            mu = np.asarray(data[mu_key], dtype=np.float64).reshape(-1)
            cov = np.asarray(data[cov_key], dtype=np.float64)
            break
    else:
        raise ConfigError(f"{path}: no NIQE model in it (expected mu_prisparam and cov_prisparam, or BasicSR's "
                          f"mu_pris_param and cov_pris_param; found {', '.join(sorted(data)) or 'nothing'})")
    if mu.shape != (FEATURES,) or cov.shape != (FEATURES, FEATURES) or not np.isfinite(cov).all():
        raise ConfigError(f"{path}: NIQE model has mean {mu.shape} and covariance {cov.shape}, expected "
                          f"({FEATURES},) and ({FEATURES}, {FEATURES}) finite values")
    block = int(data["block_size"]) if "block_size" in data else 96
    return NIQEModel(mu, cov, block=block)


# MATLAB rgb2gray: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]), not 0.299/0.587/0.114.
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def matlab_gray(x: torch.Tensor, color: str = "gray") -> torch.Tensor:
    """The rounded plane NIQE measures of a (N, C, H, W) batch on 0..255: ``rgb2gray`` of an RGB batch (``gray``) or
    the BT.601 Y (``y``, as BasicSR's NIQE); 1-channel input as it is."""
    if color == "gray" and x.shape[1] == 3:
        w = torch.tensor(RGB2GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        plane = (x * w).sum(dim=1, keepdim=True)
    else:
        plane = color_plane(x, color)
    return round_half_away(plane)


def gray_uint8_plane(img) -> torch.Tensor:
    """MATLAB ``double(rgb2gray(uint8 image))`` of one image, float64 (H, W)."""
    x = to_batch(img)
    if x.shape[0] != 1:
        raise ConfigError("fit_niqe_model takes one image at a time")
    return matlab_gray(x)[0, 0]


def fit_niqe_model(images: Iterable, block: int = 96, sharpness_threshold: float = 0.75) -> NIQEModel:
    """``estimatemodelparam.m`` (no block overlap): the features of each image's blocks whose sharpness is above
    ``sharpness_threshold`` times that image's sharpest block, pooled over the images and fitted by a Gaussian.
    ``images``: uint8 (H, W, 3) / (H, W) arrays or tensors as the metrics take them."""
    if not 0 <= sharpness_threshold < 1:
        raise ConfigError(f"sharpness threshold must be in [0, 1), not {sharpness_threshold}")
    kept, count = [], 0
    for img in images:
        feats, sharp = niqe_features(gray_uint8_plane(img), block)
        kept.append(feats[sharp > sharpness_threshold * sharp.max()])
        count += 1
    if not kept:
        raise ConfigError("no pristine images to fit the NIQE model on")
    feats = torch.cat(kept)
    mu, cov = _nan_mean_cov(feats)
    return NIQEModel(mu.numpy(), cov.numpy(), block, sharpness_threshold, count, int(feats.shape[0]))


@register_metric("niqe")
class NIQE(Metric):
    summary = "no-reference naturalness (NIQE, Mittal 2013), needs a pristine-model file; lower = more natural"
    reference = "niqe_release computequality.m (Mittal 2013); pyiqa niqe fed the same model"
    lower_is_better = True
    no_reference = True
    colors = ("gray", "y")
    default_color = "gray"

    def __init__(self, color: str | None = None, crop: int = 0,
                 weights: str | os.PathLike | list[str | os.PathLike] | None = None) -> None:
        super().__init__(color, crop)
        if weights is None or (isinstance(weights, list | tuple) and not weights):
            raise ConfigError("metric niqe needs its pristine model: --metric-weights niqe=FILE (.npz/.mat; "
                              "`litesr fit-niqe DIR -o FILE` fits one from pristine images); nothing is downloaded")
        if isinstance(weights, list | tuple):
            if len(weights) != 1:
                raise ConfigError(f"metric niqe takes one pristine-model file, got {len(weights)}")
            weights = weights[0]
        self.model = load_niqe_model(weights)
        self._mu = torch.from_numpy(self.model.mu)
        self._cov = torch.from_numpy(self.model.cov)

    def prepare(self, img) -> torch.Tensor:
        return matlab_gray(self.cropped(to_batch(img)), self.color)

    def compute(self, x, y):
        return torch.stack([niqe_score(p[0], self._mu, self._cov, self.model.block) for p in x])
