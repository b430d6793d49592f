"""bdloss (WBSR's Balanced Diversity Loss, litesr's reading): plain L1 on flat targets, errors on texture weigh more
than the same errors on flat regions, per-sample balance, the same gradient as HES, and option typos refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litesr.data.texture_sampling import gradient_magnitude
from litesr.errors import ConfigError
from litesr.losses import build_loss
from litesr.losses_extra import BalancedDiversityLoss


def test_flat_target_gives_plain_l1() -> None:
    target = torch.full((2, 3, 16, 16), 0.4)
    pred = target + 0.05 * torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    loss = BalancedDiversityLoss(floor=0.1)
    torch.testing.assert_close(loss(pred, target), (pred - target).abs().mean())


def test_errors_on_texture_weigh_more_than_on_flat_regions() -> None:
    target = torch.full((1, 3, 32, 32), 0.5)
    target[..., :, 16:] = torch.rand(1, 3, 32, 16, generator=torch.Generator().manual_seed(1))
    on_flat, on_texture = target.clone(), target.clone()
    on_flat[..., 8:12, 2:6] += 0.1
    on_texture[..., 8:12, 22:26] += 0.1
    loss = BalancedDiversityLoss(floor=0.1, threshold=8.0)
    assert loss(on_texture, target) > 3 * loss(on_flat, target)


def test_every_sample_counts_the_same() -> None:
    rng = torch.Generator().manual_seed(2)
    flat, textured = torch.full((1, 3, 16, 16), 0.3), torch.rand(1, 3, 16, 16, generator=rng)
    target = torch.cat([flat, textured])
    pred = target + 0.02
    loss = BalancedDiversityLoss()
    torch.testing.assert_close(loss(pred, target), (loss(pred[:1], flat) + loss(pred[1:], textured)) / 2)
    torch.testing.assert_close(loss(pred, target), torch.tensor(0.02), atol=1e-6, rtol=0)


def test_weights_use_the_hes_gradient() -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (20, 24, 3)).astype(np.uint8)
    target = torch.from_numpy(rgb.transpose(2, 0, 1)).float().unsqueeze(0) / 255.0
    loss = BalancedDiversityLoss(floor=0.0, threshold=1e6)  # weight = g / threshold, unclipped
    torch.testing.assert_close(loss.pixel_weights(target)[0, 0].double() * 1e6,
                               torch.from_numpy(gradient_magnitude(rgb)).double(), rtol=1e-3, atol=1e-2)


def test_option_typos_and_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="did you mean 'floor'"):
        build_loss([{"type": "bdloss", "flor": 0.1}])
    with pytest.raises(ConfigError, match="bdloss"):
        BalancedDiversityLoss(floor=1.5)
