"""Supernet training: each iteration trains one subnet of an ARM supernet (``train.supernet``).

ARM (Chen et al., ECCV 2022; official ``main.py``) trains its supernets by drawing, every iteration, one width of
``width_list`` other than 0 (bicubic) with probability proportional to the square of its cost (``random.choices(...,
weights=cost_list[1:] ** 2)``) and back-propagating that subnet's loss; litesr does the same with its own MAC count
of each subnet on the training patch (``width_weights: cost2``), or draws the widths evenly (``uniform``). The draw is
a pure function of the run seed and the iteration (as the curriculum's stage), so every DDP process trains the same
subnet and ``--resume`` continues the same sequence. Validation and checkpoints see the full width.

With ``datasets.train.sampling: hes`` and ``bdloss`` this is WBSR's "joint training" as litesr reads it
(docs/wbsr.md); the trained supernet then routes patches by :meth:`~litesr.archs.arm.ARMBase.set_gradient_projection`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import nn

from ..errors import ConfigError

WIDTH_WEIGHTS = ("cost2", "uniform")


class SupernetWidths:
    """Which subnet width each iteration trains, and switching the network to it and back."""

    def __init__(self, cfg: Mapping[str, Any], net: nn.Module, lr_patch: int, seed: int) -> None:
        if not callable(getattr(net, "set_width", None)) or not hasattr(net, "widths"):
            raise ConfigError(f"train.supernet needs a supernet with subnet widths (arm_fsrcnn, arm_carn, "
                              f"arm_srresnet), not {type(net).__name__}")
        kind = str(cfg.get("width_weights", "cost2")).lower()
        if kind not in WIDTH_WEIGHTS:
            raise ConfigError(f"train.supernet.width_weights must be one of {', '.join(WIDTH_WEIGHTS)}, not {kind!r}")
        self.net = net
        self.widths = [int(w) for w in net.widths[1:]]  # width 0 is bicubic: nothing to train
        if kind == "cost2":
            costs = np.asarray(net.subnet_macs(lr_patch, lr_patch)[1:], np.float64)
            weights = costs ** 2
        else:
            weights = np.ones(len(self.widths))
        self.probability = weights / weights.sum()
        self.seed = int(seed)
        self.full = self.widths[-1]

    def width_at(self, iteration: int) -> int:
        rng = np.random.default_rng([self.seed, 7919, int(iteration)])
        return self.widths[int(rng.choice(len(self.widths), p=self.probability))]

    def select(self, iteration: int) -> int:
        width = self.width_at(iteration)
        self.net.set_width(width)
        return width

    def reset(self) -> None:
        self.net.set_width(self.full)


__all__ = ["WIDTH_WEIGHTS", "SupernetWidths"]
