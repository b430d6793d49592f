"""Pixel and frequency losses for training, built from config entries as a weighted sum.

    >>> criterion = build_loss([{"type": "l1", "weight": 1.0}, {"type": "fft", "weight": 0.01}])
    >>> total, parts = criterion(sr, hr)        # parts = {"l1": ..., "fft": ...} (already weighted)

New losses (perceptual, adversarial ...) register with :func:`register_loss`; a config names them by ``type``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError
from .loss_registry import LOSSES, register_loss

_LOSSES = LOSSES


def loss_names() -> list[str]:
    _load_extra_losses()
    return _LOSSES.names()


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


_LOSSES.register("mse", MSELoss)


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
    """A weighted sum of registered losses; returns the total and each weighted term by name.

    A term's weight may follow a schedule (``schedule: [[iteration, weight], ...]``, piecewise linear, held constant
    outside the points); :meth:`set_iteration` moves every scheduled weight to the current step. Terms whose class
    sets ``uses_lr = True`` (the contrastive loss, whose negative is the upsampled LR) also receive the LR batch."""

    def __init__(self, terms: Sequence[tuple[str, float, nn.Module]],
                 schedules: Sequence[Sequence[tuple[int, float]] | None] | None = None) -> None:
        super().__init__()
        self.names = [name for name, _, _ in terms]
        self.weights = [weight for _, weight, _ in terms]
        self.schedules = list(schedules or [None] * len(terms))
        self.terms = nn.ModuleList(module for _, _, module in terms)

    def set_iteration(self, iteration: int) -> None:
        for i, points in enumerate(self.schedules):
            if points:
                self.weights[i] = scheduled_weight(points, iteration)

    def forward(self, pred: Tensor, target: Tensor, lr: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        pred, target = pred.float(), target.float()
        parts: dict[str, Tensor] = {}
        for name, weight, term in zip(self.names, self.weights, self.terms):
            if getattr(term, "uses_lr", False):
                if lr is None:
                    raise ConfigError(f"loss {name!r} needs the LR batch, which this trainer does not pass")
                value = weight * term(pred, target, lr.float())
            else:
                value = weight * term(pred, target)
            parts[name] = parts[name] + value if name in parts else value
        total = sum(parts.values(), torch.zeros((), device=pred.device))
        return total, parts


def scheduled_weight(points: Sequence[tuple[int, float]], iteration: int) -> float:
    """The weight at ``iteration`` of a piecewise-linear schedule ``[(iteration, weight), ...]`` (sorted)."""
    if iteration <= points[0][0]:
        return float(points[0][1])
    for (i0, w0), (i1, w1) in zip(points, points[1:]):
        if iteration <= i1:
            return float(w0 + (w1 - w0) * (iteration - i0) / max(1, i1 - i0))
    return float(points[-1][1])


def _parse_schedule(value: Any, where: str) -> list[tuple[int, float]]:
    """``[[0, 0.0], [1000, 0.1]]`` -> sorted (iteration, weight) points; anything else is a config error."""
    try:
        points = sorted((int(i), float(w)) for i, w in value)
    except (TypeError, ValueError):
        points = []
    if not points or any(i < 0 for i, _ in points):
        raise ConfigError(f"{where}: schedule must be a list of [iteration, weight] points with iteration >= 0, "
                          f"e.g. [[0, 0.0], [1000, 0.1]], not {value!r}")
    return points


def _load_extra_losses() -> None:
    """Register the losses that live in other modules (SSIM, edge, contrastive ...) on first use."""
    from . import losses_extra  # noqa: F401 - registers on import


def build_loss(entries: Sequence[Mapping[str, Any]], *, source: str = "config") -> WeightedLoss:
    """Build a :class:`WeightedLoss` from entries ``{type, weight=1, schedule=None, ...options}``; typos raise
    :class:`ConfigError`."""
    _load_extra_losses()
    if not entries:
        raise ConfigError(f"{source}: train.losses is empty; give at least one loss, e.g. [{{type: l1}}]")
    terms = []
    schedules: list[list[tuple[int, float]] | None] = []
    for i, entry in enumerate(entries):
        where = f"{source}: train.losses[{i}]"
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise ConfigError(f"{where}: each loss needs a `type` ({', '.join(loss_names())})")
        name = str(entry["type"]).lower()
        if name not in _LOSSES:
            close = difflib.get_close_matches(name, loss_names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown loss {name!r}{hint}; known: {', '.join(loss_names())}")
        options = {k: v for k, v in entry.items() if k not in ("type", "weight", "schedule")}
        valid = loss_options(name)
        for key in options:
            if key not in valid:
                close = difflib.get_close_matches(key, [*valid, "type", "weight", "schedule"], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{where}: unknown option {key!r} for loss {name!r}{hint}")
        schedule = _parse_schedule(entry["schedule"], f"{where}.schedule") if entry.get("schedule") else None
        weight = float(entry.get("weight", 1.0)) if schedule is None else scheduled_weight(schedule, 0)
        terms.append((name, weight, _LOSSES[name](**options)))
        schedules.append(schedule)
    return WeightedLoss(terms, schedules)
