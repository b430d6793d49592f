"""Metrics as training losses (`{type: ms_ssim}` / `gmsd` / `lpips` in train.losses): equal to the metrics, finite
gradients, a gradient step lowers them, config errors are one line."""

from __future__ import annotations

import pytest
import torch

from litesr.errors import ConfigError
from litesr.losses import build_loss
from litesr.metrics import create_metric


def _pair(size=192):
    torch.manual_seed(0)
    target = (torch.rand(2, 3, size, size) * 0.3 + torch.linspace(0, 0.7, size).view(1, 1, 1, size)).clamp(0, 1)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    return pred, target


@pytest.mark.parametrize("name", ["ms_ssim", "gmsd"])
def test_loss_equals_the_metric_and_a_step_lowers_it(name):
    pred, target = _pair()
    criterion = build_loss([{"type": name, "levels": 5} if name == "ms_ssim" else {"type": name}])
    metric = create_metric(name, color="rgb")
    expected = metric(pred.double(), target.double()).mean()
    expected = 1 - expected if name == "ms_ssim" else expected
    x = pred.clone().requires_grad_(True)
    total, parts = criterion(x, target)
    assert float(total) == pytest.approx(float(expected), abs=2e-5) and set(parts) == {name}  # float32 vs float64
    total.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        stepped = x - 0.05 * x.grad / x.grad.abs().max()
    assert float(criterion(stepped, target)[0]) < float(total)


def test_losses_are_finite_on_flat_and_anticorrelated_patches():
    flat = torch.full((1, 3, 96, 96), 0.5, requires_grad=True)
    target = torch.rand(1, 3, 96, 96)
    for entry in ({"type": "gmsd"}, {"type": "ms_ssim", "levels": 3}):
        total, _ = build_loss([entry])(flat, target)
        total.backward()
        assert torch.isfinite(total) and torch.isfinite(flat.grad).all(), entry
        flat.grad = None
    inverted = (1 - target).requires_grad_(True)  # negative contrast-structure terms: clamped, not NaN
    total, _ = build_loss([{"type": "ms_ssim", "levels": 3}])(inverted, target)
    assert torch.isfinite(total)


def test_lpips_loss_equals_the_metric_and_stays_deterministic_in_train_mode(tmp_path):
    from litesr.metrics.learned import LPIPSNet

    torch.manual_seed(0)
    net = LPIPSNet("alex")
    for p in net.parameters():
        p.data.uniform_(0, 0.1)
    torch.save(net.state_dict(), tmp_path / "lpips.pth")
    criterion = build_loss([{"type": "lpips", "weights": str(tmp_path / "lpips.pth")}]).train()
    pred, target = _pair(64)
    expected = create_metric("lpips", weights=tmp_path / "lpips.pth")(pred, target).mean()
    a, b = float(criterion(pred, target)[0]), float(criterion(pred, target)[0])
    assert a == b == pytest.approx(float(expected), rel=1e-5)


def test_metric_loss_config_errors():
    with pytest.raises(ConfigError, match="unknown option 'colour'.*did you mean 'color'"):
        build_loss([{"type": "gmsd", "colour": "y"}])
    with pytest.raises(ConfigError, match="loss lpips needs `weights"):
        build_loss([{"type": "lpips"}])
    with pytest.raises(ConfigError, match="lower `levels`"):
        build_loss([{"type": "ms_ssim", "levels": 5}])(torch.rand(1, 3, 96, 96), torch.rand(1, 3, 96, 96))
