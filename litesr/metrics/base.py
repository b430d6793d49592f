"""The metric registry and the shared protocol: batching, crop, colour plane, dtype.

Every metric is a :class:`Metric` subclass registered by name. ``create_metric(name, color=..., crop=...)`` builds one;
calling it with ``(sr, hr)`` returns one score per image of the batch. Inputs are (N, C, H, W) or (C, H, W) tensors,
float in [0, 1] or uint8 (0..255), or (H, W, C) / (H, W) numpy arrays (uint8, or float on 0..255 as litesr's image
arrays are); sr and hr must agree in shape. The classical metrics see float64 planes on the 0..255 scale (the MATLAB
originals work on doubles of 8-bit values), the learned ones float32 RGB in [0, 1].

Colour planes (``color``):

- ``y``: BT.601 luma as the SR papers (``16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1]), not rounded;
  a 1-channel input counts as three equal channels (``16 + 219/255 v``), as litesr's PSNR/SSIM does.
- ``gray``: ``0.299 R + 0.587 G + 0.114 B`` (MATLAB ``rgb2gray``, the Y of YIQ), what GMSD/FSIM/MS-SSIM's reference
  code is fed; a 1-channel input is used as it is.
- ``rgb``: the channels as given (per-channel metrics average over them).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ConfigError
from ..registry_base import Registry

METRICS: Registry[type[Metric]] = Registry("metric")

_Y_WEIGHTS = (65.481, 128.553, 24.966)
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)
COLORS = ("y", "gray", "rgb")


def register_metric(name: str):
    """Class decorator: register a :class:`Metric` subclass under ``name`` (also stored as ``cls.name``)."""

    def wrap(cls: type[Metric]) -> type[Metric]:
        cls.name = name
        METRICS.register(name, cls)
        return cls

    return wrap


def list_metrics(pattern: str | None = None) -> list[str]:
    """Registered metric names, optionally those matching a glob pattern."""
    return METRICS.names(pattern)


def metric_class(name: str) -> type[Metric]:
    return METRICS.get(name)


def create_metric(name: str, **options: Any) -> Metric:
    """Build metric ``name`` with its options (``color``, ``crop``, ``weights``, ...); unknown options are errors."""
    cls = METRICS.get(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"metric {cls.name} has no option {', '.join(unknown)} (options: {', '.join(accepted)})")
    return cls(**options)


def to_batch(img: Any) -> torch.Tensor:
    """An image or batch as a float64 (N, C, H, W) tensor on the 0..255 scale (uint8 and numpy arrays as they are,
    float tensors times 255)."""
    if isinstance(img, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float64)
        if t.ndim == 2:
            t = t[None]
        elif t.ndim == 3:
            t = t.permute(2, 0, 1)
        else:
            raise ConfigError(f"expected an (H, W) or (H, W, C) array, got shape {tuple(img.shape)}")
        return t[None]
    if not isinstance(img, torch.Tensor):
        raise ConfigError(f"expected a tensor or numpy array, got {type(img).__name__}")
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4:
        raise ConfigError(f"expected a (N, C, H, W) or (C, H, W) tensor, got shape {tuple(img.shape)}")
    if img.dtype == torch.uint8:
        return img.to(torch.float64)
    return img.to(torch.float64) * 255.0


def color_plane(x: torch.Tensor, color: str) -> torch.Tensor:
    """The ``color`` plane(s) of a (N, C, H, W) batch on the 0..255 scale (see the module doc)."""
    c = x.shape[1]
    if color == "rgb":
        return x
    if c not in (1, 3):
        raise ConfigError(f"color={color!r} needs 1- or 3-channel images, got {c} channels")
    if color == "y":
        if c == 1:
            return 16.0 + sum(_Y_WEIGHTS) / 255.0 * x
        w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255.0
        return 16.0 + (x * w).sum(dim=1, keepdim=True)
    if c == 1:
        return x
    w = torch.tensor(_GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


class Metric:
    """Base class: subclasses set the class attributes and implement :meth:`compute` on prepared batches."""

    name: ClassVar[str] = ""
    lower_is_better: ClassVar[bool] = False
    #: what ``__call__`` accepts: float tensors in [0, 1] (uint8 tensors/arrays on 0..255)
    input_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    #: the implementation the scores are calibrated against (tests/test_metrics_*.py)
    reference: ClassVar[str] = ""
    #: one line for ``litesr metrics``
    summary: ClassVar[str] = ""
    colors: ClassVar[tuple[str, ...]] = COLORS
    default_color: ClassVar[str] = "y"
    #: False: compute() gets float32 RGB in [0, 1] (learned metrics) instead of float64 planes on 0..255
    on_255_scale: ClassVar[bool] = True
    differentiable: ClassVar[bool] = False
    no_reference: ClassVar[bool] = False

    def __init__(self, color: str | None = None, crop: int = 0) -> None:
        color = self.default_color if color is None else str(color).lower()
        if color not in self.colors:
            raise ConfigError(f"metric {self.name}: color must be one of {', '.join(self.colors)}, not {color!r}")
        if int(crop) < 0:
            raise ConfigError(f"metric {self.name}: crop must be >= 0, not {crop}")
        self.color = color
        self.crop = int(crop)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, color={self.color!r}, crop={self.crop})"

    def cropped(self, x: torch.Tensor) -> torch.Tensor:
        """A (N, C, H, W) batch with ``crop`` border pixels shaved."""
        if self.crop:
            if min(x.shape[-2:]) <= 2 * self.crop:
                raise ConfigError(f"image of size {x.shape[-1]}x{x.shape[-2]} is too small to crop {self.crop} pixels")
            x = x[..., self.crop : -self.crop, self.crop : -self.crop]
        return x

    def prepare(self, img: Any) -> torch.Tensor:
        x = self.cropped(to_batch(img))
        if not self.on_255_scale:
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            return (x / 255.0).to(torch.float32)
        return color_plane(x, self.color)

    def __call__(self, sr: Any, hr: Any = None) -> torch.Tensor:
        """One score per image, a float64 (N,) tensor on the device of the inputs."""
        if self.no_reference:
            return self.compute(self.prepare(sr), None).to(torch.float64)
        if hr is None:
            raise ConfigError(f"metric {self.name} is full-reference: give the HR image too")
        a, b = to_batch(sr), to_batch(hr)
        if a.shape[1] != b.shape[1]:
            raise ConfigError(f"SR has {a.shape[1]} channels, HR {b.shape[1]} (gray vs RGB)")
        if a.shape != b.shape:
            raise ConfigError(f"SR is {a.shape[-1]}x{a.shape[-2]} (batch {a.shape[0]}), HR {b.shape[-1]}x{b.shape[-2]}"
                              f" (batch {b.shape[0]})")
        return self.compute(self.prepare(sr), self.prepare(hr)).to(torch.float64)

    def compute(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "better": "lower" if cls.lower_is_better else "higher",
                "kind": "no-reference" if cls.no_reference else "full-reference", "colors": ",".join(cls.colors),
                "default_color": cls.default_color, "reference": cls.reference, "summary": cls.summary}
