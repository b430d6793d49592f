"""Total-variation losses: anisotropic `tv` (|dx| + |dy|, perceptual.py) and isotropic `tv_iso` (sqrt(dx^2 + dy^2))."""

from __future__ import annotations

import math

import pytest
import torch

from litesr.errors import ConfigError
from litesr.losses import build_loss


def _ramp(a: float, b: float, size: int = 9) -> torch.Tensor:
    """I(i, j) = a * i + b * j: every forward difference is a (vertical) and b (horizontal)."""
    i, j = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    return (a * i + b * j).expand(2, 3, size, size)


@pytest.mark.parametrize("a,b", [(0.1, 0.0), (0.03, 0.04), (-0.2, 0.5)])
def test_tv_of_a_ramp(a: float, b: float) -> None:
    x = _ramp(a, b)
    _, parts = build_loss([{"type": "tv"}, {"type": "tv_iso", "eps": 0.0}])(x, torch.zeros_like(x))
    assert parts["tv"].item() == pytest.approx(abs(a) + abs(b), rel=1e-6)
    assert parts["tv_iso"].item() == pytest.approx(math.hypot(a, b), rel=1e-6)


def test_isotropic_tv_is_rotation_invariant_where_anisotropic_is_not() -> None:
    """An edge along the diagonal has the same isotropic TV as an axis-aligned one of the same slope."""
    axis, diagonal = _ramp(0.1, 0.0), _ramp(0.1 / math.sqrt(2), 0.1 / math.sqrt(2))
    iso = build_loss([{"type": "tv_iso", "eps": 0.0}])
    aniso = build_loss([{"type": "tv"}])
    zero = torch.zeros_like(axis)
    assert iso(axis, zero)[0].item() == pytest.approx(iso(diagonal, zero)[0].item(), rel=1e-6)
    assert aniso(diagonal, zero)[0].item() == pytest.approx(math.sqrt(2) * aniso(axis, zero)[0].item(), rel=1e-6)


def test_isotropic_tv_has_finite_gradients_on_flat_images() -> None:
    x = torch.full((1, 3, 8, 8), 0.5, requires_grad=True)
    total, _ = build_loss([{"type": "tv_iso"}])(x, x.detach())
    total.backward()
    assert torch.isfinite(x.grad).all() and total.item() == pytest.approx(1e-4, rel=1e-3)  # sqrt(eps = 1e-8)


def test_tv_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="eps"):
        build_loss([{"type": "tv_iso", "eps": -1.0}])
    with pytest.raises(ConfigError, match="unknown option"):
        build_loss([{"type": "tv", "eps": 1.0}])
