"""Deep Image Prior: the skip network and the Lanczos downsampler against the official code, the loop's options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from litesr.unsupervised.dip import DIPConfig, LanczosDownsampler, deep_image_prior, skip_network

OFFICIAL = Path(os.environ.get("LITESR_DIP_REPO", "/work/.mirror/DmitryUlyanov+deep-image-prior/repo"))
# get_net(32, "skip", "reflection", 128, 128, 4, 5, "bilinear") counted on the official code
PAPER_PARAMETERS = 2_217_831


def test_skip_network_size() -> None:
    assert sum(p.numel() for p in skip_network().parameters()) == PAPER_PARAMETERS


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official models/ package, exported from a git mirror to a temp dir (skip when absent)."""
    if not (OFFICIAL / "HEAD").exists() and not (OFFICIAL / ".git").exists():
        pytest.skip(f"official deep-image-prior repository not found at {OFFICIAL} (set LITESR_DIP_REPO)")
    out = tmp_path_factory.mktemp("dip_official")
    archive = subprocess.run(["git", "-C", str(OFFICIAL), "archive", "HEAD", "models"], capture_output=True, check=True)
    subprocess.run(["tar", "x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def test_matches_the_official_skip_network_and_downsampler(official: Path) -> None:
    sys.path.insert(0, str(official))
    try:
        from models import get_net
        from models.downsampler import Downsampler
    finally:
        sys.path.remove(str(official))
    ref = get_net(32, "skip", "reflection", skip_n33d=128, skip_n33u=128, skip_n11=4, num_scales=5,
                  upsample_mode="bilinear")
    mine = skip_network()
    assert {k: v.shape for k, v in ref.state_dict().items()} == {k: v.shape for k, v in mine.state_dict().items()}
    mine.load_state_dict(ref.state_dict())
    x = torch.rand(1, 32, 64, 96)
    assert torch.allclose(ref(x), mine(x), atol=1e-6)
    for factor in (2, 4):
        y = torch.rand(1, 3, 64, 96)
        d = Downsampler(3, factor, "lanczos2", phase=0.5, preserve_size=True)
        assert torch.allclose(d(y), LanczosDownsampler(factor)(y), atol=1e-6)


def test_intermediates_early_stop_and_sizes() -> None:
    img = np.random.default_rng(0).random((10, 7, 3)).astype(np.float32)  # padded inside to a size the net takes
    seen: list[int] = []
    cfg = DIPConfig(num_iter=4, channels=8, skip_channels=2, scales=3)
    res = deep_image_prior(img, 4, config=cfg, every=2, on_intermediate=lambda i, x: seen.append((i, x.shape)))
    assert res.image.shape == (40, 28, 3) and res.iterations == 4 and res.stopped == "iterations"
    assert seen == [(2, (40, 28, 3))]
    cfg = DIPConfig(num_iter=50, channels=8, skip_channels=2, scales=3, early_stop_patience=1,
                    early_stop_delta=1e9)
    res = deep_image_prior(img, 2, config=cfg)
    assert res.stopped == "early_stop" and res.iterations == 2


def test_loss_falls() -> None:
    img = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    first = deep_image_prior(img, 4, config=DIPConfig(num_iter=1, channels=16, scales=3)).lr_loss
    later = deep_image_prior(img, 4, config=DIPConfig(num_iter=30, channels=16, scales=3)).lr_loss
    assert later < first
