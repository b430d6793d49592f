"""Learning-rate schedules as pure functions of the iteration, so resuming needs no scheduler state but the count."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError


class Schedule:
    """``lr(base_lr, iteration)`` for ``constant``, ``multistep``, ``cosine`` (to ``eta_min``) and ``cosine_restarts``
    (BasicSR's CosineAnnealingRestartLR: cycles of ``periods`` iterations with peak factors ``restart_weights``), each
    after an optional linear warm-up of ``warmup_iters``."""

    def __init__(self, cfg: Mapping[str, Any], total_iterations: int, *, source: str = "config") -> None:
        self.kind = str(cfg.get("type", "constant"))
        self.warmup = int(cfg.get("warmup_iters", 0) or 0)
        self.eta_min = float(cfg.get("eta_min", 0.0) or 0.0)
        self.milestones = sorted(int(m) for m in cfg.get("milestones", []) or [])
        self.gamma = float(cfg.get("gamma", 0.5))
        self.total = max(1, int(total_iterations))
        periods = [int(p) for p in cfg.get("periods", []) or []]
        if self.kind == "cosine_restarts":
            if not periods:
                periods = [self.total - self.warmup]
            weights = [float(w) for w in cfg.get("restart_weights", []) or []] or [1.0] * len(periods)
            if len(weights) != len(periods):
                raise ConfigError(f"{source}: train.scheduler.restart_weights has {len(weights)} entries but periods "
                                  f"has {len(periods)}")
            if any(p <= 0 for p in periods):
                raise ConfigError(f"{source}: train.scheduler.periods must be positive, got {periods}")
            self.periods, self.weights = periods, weights

    def lr(self, base_lr: float, iteration: int) -> float:
        """The learning rate of step ``iteration`` (0-based)."""
        if iteration < self.warmup:
            return base_lr * (iteration + 1) / self.warmup
        t = iteration - self.warmup
        if self.kind == "constant":
            return base_lr
        if self.kind == "multistep":
            return base_lr * self.gamma ** sum(1 for m in self.milestones if iteration >= m)
        if self.kind == "cosine":
            span = max(1, self.total - self.warmup)
            return self.eta_min + (base_lr - self.eta_min) * 0.5 * (1.0 + math.cos(math.pi * min(t, span) / span))
        # cosine_restarts
        start = 0
        for period, weight in zip(self.periods, self.weights):
            if t < start + period:
                return self.eta_min + weight * (base_lr - self.eta_min) * 0.5 * (
                    1.0 + math.cos(math.pi * (t - start) / period))
            start += period
        return self.eta_min
