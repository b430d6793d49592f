"""Whether a configuration of an architecture has exactly a state dict's keys and shapes: the test every detection
stage (by names in :mod:`litesr.detect`, by structure in :mod:`litesr.detect_structural`) accepts a proposal by."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .registry import StateDict, create_model


def build_on_meta(arch: str, config: Mapping[str, Any], device: str = "meta") -> nn.Module:
    """``arch(**config)`` without allocating its weights (meta tensors carry only shapes)."""
    with torch.device(device):
        return create_model(arch, **config)


def shape_signature(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def fits(arch: str, config: Mapping[str, Any], state_dict: StateDict) -> bool:
    """True when ``arch(**config)`` has exactly the keys and shapes of ``state_dict``."""
    try:
        model = build_on_meta(arch, config)
    except Exception:  # noqa: BLE001 - a proposal that cannot even be built does not fit
        return False
    want = {k: tuple(v.shape) for k, v in state_dict.items()}
    return shape_signature(model) == want


__all__ = ["build_on_meta", "fits", "shape_signature"]
