"""SSIM / MS-SSIM / edge / contrastive losses and scheduled loss weights, each term logged on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from strategy_helpers import Recorder, tiny_config

from litesr.errors import ConfigError
from litesr.losses import build_loss, scheduled_weight
from litesr.metrics import create_metric
from litesr.train import build_config


def test_ssim_loss_is_one_minus_the_metric_registry_ssim() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    loss = build_loss([{"type": "ssim"}])(x, y)[0]
    # the registry's (numpy, MATLAB-style) SSIM on the 0..255 scale, RGB, no crop
    metric = float(create_metric("ssim", color="rgb")(x * 255, y * 255))
    assert abs(float(1 - loss) - metric) < 2e-3


def test_ms_ssim_loss_needs_large_enough_patches_and_is_zero_for_equal_images() -> None:
    x = torch.rand(2, 3, 48, 48)
    assert float(build_loss([{"type": "ms_ssim", "levels": 2}])(x, x)[0]) < 1e-5
    with pytest.raises(ConfigError, match="at least 88x88"):
        build_loss([{"type": "ms_ssim", "levels": 4}])(x, x)


def test_edge_loss_sees_edges_not_flat_offsets() -> None:
    flat = torch.zeros(1, 3, 16, 16)
    edge = flat.clone()
    edge[..., 8:] = 1.0
    edge_loss = build_loss([{"type": "edge"}])
    assert float(edge_loss(flat + 0.5, flat)[0]) == 0.0  # a constant offset has no gradient
    assert float(edge_loss(edge, flat)[0]) > 0.0


def test_contrastive_loss_prefers_hr_over_the_upsampled_lr() -> None:
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 32, 32)
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    loss = build_loss([{"type": "contrastive"}])
    up = torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    at_hr = float(loss(hr, hr, lr=lr)[0])
    at_negative = float(loss(up, hr, lr=lr)[0])
    assert at_hr < 1e-4 and at_negative > 0.5
    extractor = loss.terms[0].extractor
    assert not any(p.requires_grad for p in extractor.parameters())  # frozen random features
    again = build_loss([{"type": "contrastive"}]).terms[0].extractor  # the same seed gives the same extractor
    assert torch.equal(extractor[0].weight, again[0].weight)


def test_scheduled_weight_is_piecewise_linear() -> None:
    points = [(0, 0.0), (10, 1.0), (20, 1.0)]
    assert [scheduled_weight(points, i) for i in (0, 5, 10, 30)] == [0.0, 0.5, 1.0, 1.0]
    with pytest.raises(ConfigError, match=r"train\.losses\[0\]\.schedule"):
        build_loss([{"type": "l1", "schedule": [[0]]}])


def test_every_term_is_logged_separately_with_its_scheduled_weight(tmp_path: Path) -> None:
    losses = [{"type": "l1"}, {"type": "edge", "schedule": [[0, 0.0], [2, 1.0]]},
              {"type": "contrastive", "weight": 0.1}]
    cfg = build_config(tiny_config(tmp_path, train={"iterations": 3, "batch_size": 2, "ema": {"enabled": False},
                                                    "losses": losses}))
    trainer = Recorder(cfg)
    trainer.fit()
    first, last = trainer.seen[0]["losses"], trainer.seen[-1]["losses"]
    assert set(first) == {"loss", "l1", "edge", "contrastive"}
    assert first["edge"] == 0.0 and last["edge"] > 0.0  # weight 0 at step 0, 1 from step 2
    assert abs(last["loss"] - (last["l1"] + last["edge"] + last["contrastive"])) < 1e-5
    trainer.close()
