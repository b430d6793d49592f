"""Pixel and frequency losses for training, built from config entries as a weighted sum.

    >>> criterion = build_loss([{"type": "l1", "weight": 1.0}, {"type": "fft", "weight": 0.01}])
    >>> total, parts = criterion(sr, hr)        # parts = {"l1": ..., "fft": ...} (already weighted)

New losses (perceptual, adversarial ...) register with :func:`register_loss`; a config names them by ``type``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError

_LOSSES: dict[str, Callable[..., nn.Module]] = {}


def register_loss(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: make a loss available to configs as ``{type: name, weight: w, ...options}``."""

    def decorator(cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _LOSSES:
            raise RuntimeError(f"loss {name!r} registered twice")
        _LOSSES[name] = cls
        return cls

    return decorator


def loss_names() -> list[str]:
    return sorted(_LOSSES)


def loss_options(name: str) -> list[str]:
    """The constructor options a loss accepts (besides ``type`` and ``weight``), for config validation."""
    params = inspect.signature(_LOSSES[name]).parameters
    return [p for p in params if p != "self"]


@register_loss("l1")
class L1Loss(nn.Module):
    """Mean absolute error."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(pred, target)


@register_loss("l2")
class MSELoss(nn.Module):
    """Mean squared error (also available as ``mse``)."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(pred, target)


_LOSSES["mse"] = MSELoss


@register_loss("charbonnier")
class CharbonnierLoss(nn.Module):
    """sqrt((x - y)^2 + eps), a differentiable L1 (LapSRN; BasicSR's default eps is 1e-12)."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps).mean()


@register_loss("fft")
class FFTLoss(nn.Module):
    """L1 between the real and imaginary parts of ``rfft2`` of prediction and target (SSIU, SAFMN)."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        # FFTs need fp32 (bf16/fp16 rfft2 is unsupported or inaccurate), whatever the autocast dtype was.
        pred_f = torch.view_as_real(torch.fft.rfft2(pred.float(), dim=(-2, -1)))
        target_f = torch.view_as_real(torch.fft.rfft2(target.float(), dim=(-2, -1)))
        return F.l1_loss(pred_f, target_f)


def _forward_differences(x: Tensor) -> tuple[Tensor, Tensor]:
    """Vertical and horizontal forward differences of (B, C, H, W), both on the common (H - 1, W - 1) grid, so that
    the square root pairs the two differences of the same pixel."""
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    return dy, dx


@register_loss("tv_iso")
class IsotropicTVLoss(nn.Module):
    """Isotropic total variation of the prediction (target unused): mean over pixels and channels of
    sqrt((dI/dx)^2 + (dI/dy)^2 + eps). ``eps`` keeps the gradient finite on flat areas. The anisotropic form
    (|dI/dx| + |dI/dy|) is ``tv`` (:class:`litesr.perceptual.TVLoss`)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        if eps < 0:
            raise ConfigError(f"tv_iso: eps must be >= 0, not {eps}")
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        dy, dx = _forward_differences(pred)
        return torch.sqrt(dy * dy + dx * dx + self.eps).mean()


class WeightedLoss(nn.Module):
    """A weighted sum of registered losses; returns the total and each weighted term by name."""

    def __init__(self, terms: Sequence[tuple[str, float, nn.Module]]) -> None:
        super().__init__()
        self.names = [name for name, _, _ in terms]
        self.weights = [weight for _, weight, _ in terms]
        self.terms = nn.ModuleList(module for _, _, module in terms)

    def forward(self, pred: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        pred, target = pred.float(), target.float()
        parts: dict[str, Tensor] = {}
        for name, weight, term in zip(self.names, self.weights, self.terms):
            value = weight * term(pred, target)
            parts[name] = parts[name] + value if name in parts else value
        total = sum(parts.values(), torch.zeros((), device=pred.device))
        return total, parts


def build_loss(entries: Sequence[Mapping[str, Any]], *, source: str = "config") -> WeightedLoss:
    """Build a :class:`WeightedLoss` from entries ``{type, weight=1, ...options}``; typos raise :class:`ConfigError`."""
    if not entries:
        raise ConfigError(f"{source}: train.losses is empty; give at least one loss, e.g. [{{type: l1}}]")
    terms = []
    for i, entry in enumerate(entries):
        where = f"{source}: train.losses[{i}]"
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise ConfigError(f"{where}: each loss needs a `type` ({', '.join(loss_names())})")
        name = str(entry["type"]).lower()
        if name not in _LOSSES:
            close = difflib.get_close_matches(name, loss_names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown loss {name!r}{hint}; known: {', '.join(loss_names())}")
        options = {k: v for k, v in entry.items() if k not in ("type", "weight")}
        valid = loss_options(name)
        for key in options:
            if key not in valid:
                close = difflib.get_close_matches(key, [*valid, "type", "weight"], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{where}: unknown option {key!r} for loss {name!r}{hint}")
        terms.append((name, float(entry.get("weight", 1.0)), _LOSSES[name](**options)))
    return WeightedLoss(terms)
