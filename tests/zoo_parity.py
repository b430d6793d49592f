"""Shared checks of the spandrel-parity test files (tests/test_zoo_<arch>.py): not a test module itself.

Each check builds litesr's model, redraws its parameters, hands the same state dict to spandrel's loader (which
detects the architecture and its hyper-parameters on its own, as it does for a user's file) and compares outputs,
hyper-parameters and litesr's own detection.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import litesr
from litesr.detect import detect_architecture, fits
from litesr.registry import get_arch


def random_state(model: nn.Module, seed: int = 0, std: float = 0.05) -> dict[str, torch.Tensor]:
    """The model's state dict with every floating-point parameter redrawn; integer buffers (indices) kept."""
    gen = torch.Generator().manual_seed(seed)
    params = {k for k, p in model.named_parameters()}
    return {k: torch.randn(v.shape, generator=gen) * std if k in params else v.clone()
            for k, v in model.state_dict().items()}


def full_config(arch: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with the constructor defaults filled in, tuples for sequences (what detection must reproduce)."""
    params = inspect.signature(get_arch(arch).builder).parameters
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    return {k: _plain(v) for k, v in {**defaults, **config}.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def compare_hyperparameters(ours: Mapping[str, Any], theirs: Mapping[str, Any],
                            renames: Mapping[str, str]) -> None:
    """Every litesr option that spandrel also reports (under its own name: ``renames``) has the same value."""
    compared = 0
    for key, value in ours.items():
        other = renames.get(key, key)
        if other in theirs:
            assert _plain(value) == _plain(theirs[other]), (key, value, theirs[other])
            compared += 1
    assert compared >= 4, f"only {compared} hyper-parameters in common: the rename table is wrong"


def check_parity(spandrel, arch: str, config: dict, size: tuple[int, int], *, renames: Mapping[str, str],
                 seed: int = 0, spandrel_id: str | None = None) -> float:
    """Same random weights in litesr and in the model spandrel builds from the state dict: outputs within 1e-5,
    the same hyper-parameters, and litesr detects exactly ``config``. Returns the max |difference|."""
    ours = litesr.create_model(arch, **config).eval()
    state = random_state(ours, seed)
    ours.load_state_dict(state)
    descriptor = spandrel.ModelLoader().load_from_state_dict({k: v.clone() for k, v in state.items()})
    if spandrel_id is not None:
        assert descriptor.architecture.id == spandrel_id
    assert descriptor.scale == config["scale"]
    reference = descriptor.model.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(1, descriptor.input_channels, *size, generator=gen)
    with torch.no_grad():
        want, got = reference(x.clone()), ours(x.clone())
    assert got.shape == want.shape == (1, x.shape[1], size[0] * config["scale"], size[1] * config["scale"])
    diff = float((got - want).abs().max())
    assert diff <= 1e-5, diff

    matches = detect_architecture(state)
    assert [m.arch for m in matches] == [arch], matches
    assert full_config(arch, matches[0].config) == full_config(arch, ours.litesr_config), matches[0].config
    compare_hyperparameters(matches[0].config, reference.hyperparameters, renames)
    return diff


@functools.cache
def meta_model(name: str, scale: int) -> nn.Module:
    """A registered variant built on the meta device (no memory, no init), once per test session."""
    with torch.device("meta"):
        return litesr.create_model(name, scale=scale)


def parameter_count_on_meta(name: str, scale: int) -> int:
    return sum(p.numel() for p in meta_model(name, scale).parameters())


def check_variants_detect_as_themselves(arch: str, scale: int = 4) -> list[str]:
    """Each registered variant of ``arch``, built on the meta device, is read back by ``arch``'s detector with its own
    config, and no other architecture's detector proposes anything for it (cheap: no second build of big models)."""
    names = [n for n, v in sorted(litesr.registry.all_variants().items()) if v.arch == arch]
    others = [spec for name, spec in sorted(litesr.registry.all_archs().items()) if name != arch and spec.detect]
    for name in names:
        model = meta_model(name, scale)
        state = model.state_dict()
        detected = get_arch(arch).detect(state)
        assert detected is not None, name
        assert full_config(arch, detected) == full_config(arch, model.litesr_config), (name, detected)
        for spec in others:
            try:
                proposal = spec.detect(state)
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                proposal = None
            assert proposal is None or not fits(spec.name, proposal, state), (name, spec.name)
    return names
