"""Exponential moving average of model weights (BasicSR's ``params_ema``, decay 0.999), with a warm-up."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """A frozen copy of ``model`` whose parameters follow ``ema = decay * ema + (1 - decay) * param`` each step.

    Buffers are copied as they are. The copy is kept in fp32 on the model's device; validation and the ``*_ema``
    checkpoints use it.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (timm's ModelEmaV2 rule): with a
    constant 0.999 the average still holds 0.999^n of the random initialisation, 58% after 550 steps, so the EMA of
    any run shorter than several thousand steps would be validated (and kept as "best") while mostly untrained.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for ema_buf, buf in zip(self.module.buffers(), model.buffers()):
            ema_buf.copy_(buf)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state, strict=True)
