"""Shared by the tests/test_zoo_<arch>.py parity checks against spandrel 0.4.2 (not a test module itself).

A litesr model gets random weights; its state dict, renamed the way the official files are (``to_file``), is saved
to a file. spandrel loads that file's tensors with its own detection, litesr loads the file with ``load_model``; both
must agree on the hyper-parameters and give the same output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import litesr


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Fresh normal noise in every float tensor, at the scale of the tensor's initial values (so deep stacks neither
    blow up nor vanish); BN variances stay positive. A wrong key mapping or layer order then changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point() or name.endswith(("relative_position_index", "attn_mask")):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
                continue
            std = float(t.std()) if t.numel() > 1 and float(t.std()) > 0 else 0.05
            t.copy_(torch.randn(t.shape, generator=gen) * min(std, 0.5))
    return model


def load_both(spandrel: Any, model: nn.Module, tmp_path: Path,
              to_file: Callable[[dict], dict] = dict) -> tuple[Any, nn.Module]:
    """(spandrel descriptor, litesr model) for the file holding ``to_file(model.state_dict())``."""
    state = to_file({k: v.clone() for k, v in model.state_dict().items()})
    path = tmp_path / "checkpoint.pth"
    torch.save(state, path)
    descriptor = spandrel.ModelLoader().load_from_file(str(path))
    descriptor.model.eval()
    return descriptor, litesr.load_model(path)


def max_difference(reference: nn.Module, ours: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute output difference; asserts the reference output is not trivially small."""
    with torch.no_grad():
        want, got = reference(x.clone()), ours(x.clone())
    assert want.shape == got.shape, (want.shape, got.shape)
    assert float(want.abs().max()) > 1e-3, "reference output is ~0: the comparison would prove nothing"
    return float((got - want).abs().max())
