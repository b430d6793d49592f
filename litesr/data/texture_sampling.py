"""Texture-balanced patch sampling: WBSR's Hierarchical Equalization Sampling (HES), as litesr reads it.

WBSR (Yu, Yang, Liu, Li, Zhang and Ji, "Rethinking Imbalance in Image Super-Resolution for Efficient Inference",
NeurIPS 2024; github.com/aipixel/WBSR holds a one-line README, no code) observes that uniformly cropped training
patches are mostly smooth and easy, and rebalances them: HES "addresses data distribution imbalances, enabling better
feature representation from texture-rich samples". Only the abstract is readable here, so the rule below is
litesr's, written to that description:

- every training image is scored on a grid of candidate LR patches (step half a patch): the score of a patch is the
  mean Sobel gradient magnitude of its BT.601 luma, in 8-bit units (:func:`patch_gradient_scores`);
- the scores are cut into ``levels`` texture levels by equally spaced edges between their 1st and 99th percentiles
  (:func:`level_edges`), so the levels are bands of difficulty, not quantiles (equal-count bins would change nothing);
- a sample draws a level (probability proportional to ``count ** (1 - equalize)``: ``equalize = 1`` gives every
  non-empty level the same share, ``0`` is uniform cropping again), then an image among those with candidates at
  that level, then one of that image's candidates, shifted by up to half a patch so crops are not tied to the grid.
  Level, then image, then position: the hierarchy keeps one large image from owning a level.

Config: ``datasets.train.sampling: hes`` or ``{type: hes, levels: 4, equalize: 1.0}`` (default ``uniform``).
The same scores and edges drive the gradient-projection routing of ARM supernets
(:meth:`litesr.archs.arm.ARMBase.set_gradient_projection`) and the weights of ``bdloss`` use the same gradient.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

LUMA = np.array([65.481, 128.553, 24.966], np.float32) / 255.0  # BT.601 luma weights (offset irrelevant here)
SAMPLING_KEYS = ("type", "levels", "equalize")


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the luma of an (H, W, 3) uint8 (or 0..255 float) image, replicate border."""
    y = np.asarray(rgb, np.float32) @ LUMA
    p = np.pad(y, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:] - p[:-2, :-2] - 2 * p[1:-1, :-2] - p[2:, :-2]) / 8.0
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:] - p[:-2, :-2] - 2 * p[:-2, 1:-1] - p[:-2, 2:]) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def patch_gradient_scores(rgb: np.ndarray, patch: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean gradient magnitude of every ``patch``-sized window on a ``step`` grid (last window flush with each
    edge): ``(tops, lefts, scores)``, one entry per window."""
    h, w = rgb.shape[:2]
    if min(h, w) < patch:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32)
    integral = np.pad(gradient_magnitude(rgb).astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    tops, lefts = _starts(h, patch, step), _starts(w, patch, step)
    t, left = np.meshgrid(tops, lefts, indexing="ij")
    t, left = t.ravel(), left.ravel()
    sums = (integral[t + patch, left + patch] - integral[t, left + patch] - integral[t + patch, left]
            + integral[t, left])
    return t, left, (sums / (patch * patch)).astype(np.float32)


def _starts(size: int, patch: int, step: int) -> np.ndarray:
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return np.asarray(starts, int)


def level_edges(scores: np.ndarray, levels: int) -> np.ndarray:
    """``levels - 1`` ascending edges, equally spaced between the 1st and 99th percentile of ``scores``."""
    if levels < 1:
        raise ConfigError(f"texture levels must be at least 1, not {levels}")
    if levels == 1 or len(scores) == 0:
        return np.zeros(0, np.float32)
    lo, hi = np.percentile(scores, [1.0, 99.0])
    if hi <= lo:
        hi = lo + 1e-6
    return np.linspace(lo, hi, levels + 1)[1:-1].astype(np.float32)


@dataclass
class TextureSampler:
    """HES over the candidate patches of a training set (LR-pixel coordinates; see the module docstring)."""

    patch: int  # LR patch side
    image: np.ndarray  # per candidate: image index
    top: np.ndarray
    left: np.ndarray
    scores: np.ndarray
    edges: np.ndarray
    equalize: float = 1.0
    sizes: Sequence[tuple[int, int]] = ()  # (h, w) of every image's LR grid, to keep shifted crops inside
    level: np.ndarray = field(init=False)
    probability: np.ndarray = field(init=False)  # of drawing each level
    _groups: list[list[np.ndarray]] = field(init=False, repr=False)  # level -> per image holding it: candidates

    def __post_init__(self) -> None:
        if not 0.0 <= self.equalize <= 1.0:
            raise ConfigError(f"datasets.train.sampling.equalize must be in [0, 1], not {self.equalize}")
        if len(self.scores) == 0:
            raise ConfigError("datasets.train.sampling: no training image is large enough for one patch")
        self.level = np.digitize(self.scores, self.edges)
        counts = np.bincount(self.level, minlength=len(self.edges) + 1).astype(np.float64)
        weights = np.where(counts > 0, counts ** (1.0 - self.equalize), 0.0)
        self.probability = weights / weights.sum()
        self._groups = []
        for k in range(len(counts)):
            members = np.flatnonzero(self.level == k)
            by_image = [members[self.image[members] == i] for i in np.unique(self.image[members])]
            self._groups.append(by_image)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.level, minlength=len(self.edges) + 1)

    def draw(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """``(image index, top, left)`` of one LR patch: level, then image, then position (hierarchical)."""
        k = int(rng.choice(len(self.probability), p=self.probability))
        group = self._groups[k]
        members = group[int(rng.integers(len(group)))]
        n = int(members[int(rng.integers(len(members)))])
        image, top, left = int(self.image[n]), int(self.top[n]), int(self.left[n])
        if self.sizes:  # jitter by up to half a patch, staying inside the image
            h, w = self.sizes[image]
            half = self.patch // 2
            top = int(np.clip(top + rng.integers(-half, half + 1), 0, h - self.patch))
            left = int(np.clip(left + rng.integers(-half, half + 1), 0, w - self.patch))
        return image, top, left

    def summary(self) -> str:
        counts = "/".join(str(int(c)) for c in self.counts)
        shares = "/".join(f"{p:.2f}" for p in self.probability)
        return (f"HES: {len(self.scores)} candidate patches in {len(self.probability)} texture levels "
                f"(counts {counts}, drawn with probabilities {shares})")


def parse_sampling(spec: Any, where: str = "datasets.train.sampling") -> dict[str, Any] | None:
    """``None``/``"uniform"`` -> None (uniform crops); ``"hes"`` or ``{type: hes, levels, equalize}`` -> options."""
    if spec is None or (isinstance(spec, str) and spec.lower() == "uniform"):
        return None
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be 'uniform', 'hes' or a mapping {{type: hes, levels, equalize}}, "
                          f"not {spec!r}")
    for key in spec:
        if key not in SAMPLING_KEYS:
            close = difflib.get_close_matches(str(key), SAMPLING_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; known: {', '.join(SAMPLING_KEYS)}")
    kind = str(spec.get("type", "hes")).lower()
    if kind == "uniform":
        return None
    if kind != "hes":
        raise ConfigError(f"{where}.type: unknown sampling {kind!r}; known: uniform, hes")
    try:
        levels, equalize = int(spec.get("levels", 4)), float(spec.get("equalize", 1.0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: levels must be an integer and equalize a number ({exc})") from None
    if levels < 1 or not 0.0 <= equalize <= 1.0:
        raise ConfigError(f"{where}: levels must be >= 1 and equalize in [0, 1], not {levels} and {equalize}")
    return {"levels": levels, "equalize": equalize}


def build_texture_sampler(lr_images: Callable[[int], np.ndarray], count: int, patch: int, *, levels: int = 4,
                          equalize: float = 1.0) -> TextureSampler:
    """Score the candidate LR patches of ``count`` images (``lr_images(i)``: image ``i``'s LR, or its HR on the
    LR grid) and build the sampler."""
    step = max(1, patch // 2)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    sizes = []
    for i in range(count):
        lr = lr_images(i)
        sizes.append(lr.shape[:2])
        t, left, s = patch_gradient_scores(lr, patch, step)
        parts.append((np.full(len(s), i), t, left, s))
    image, top, lefts, scores = (np.concatenate([p[j] for p in parts]) for j in range(4))
    return TextureSampler(patch, image, top, lefts, scores, level_edges(scores, levels), equalize, sizes)


__all__ = ["TextureSampler", "build_texture_sampler", "gradient_magnitude", "level_edges", "parse_sampling",
           "patch_gradient_scores"]
