"""The loss registry: names a training config's ``train.losses[].type`` can use.

Apart from :mod:`litesr.losses` so that modules defining losses (perceptual, metric and strategy losses) register
into it without importing the module that loads them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .registry_base import Registry

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")


def register_loss(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: make a loss available to configs as ``{type: name, weight: w, ...options}``."""

    def decorator(cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        LOSSES.register(name, cls)
        return cls

    return decorator


__all__ = ["LOSSES", "register_loss"]
