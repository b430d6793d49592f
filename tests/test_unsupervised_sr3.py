"""SR3-style diffusion: a tiny model trains a few steps, samples with DDIM and DDPM (seeded), sizes are checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from litesr.cli import main
from litesr.data.train import make_synthetic_set
from litesr.errors import LitesrError
from litesr.unsupervised.sr3 import SR3_X4, Diffusion, SR3UNet, UNetConfig, make_betas, super_resolve
from litesr.unsupervised.sr3_train import SR3TrainConfig, load_sr3, train_sr3

TINY = UNetConfig(inner_channel=16, channel_multiplier=[1, 2], attn_res=[8], res_blocks=1, dropout=0.0,
                  norm_groups=4, image_size=16)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sr3")
    make_synthetic_set(root / "hr", count=2, size=24)
    cfg = SR3TrainConfig(scale=2, unet=TINY, num_steps=20, patch_size=16, batch_size=2, iterations=3)
    summary = train_sr3(root / "hr", root / "sr3.safetensors", cfg)
    assert summary["iterations"] == 3 and np.isfinite(summary["loss"])
    return root / "sr3.safetensors"


def test_schedules() -> None:
    lin = make_betas("linear", 2000)
    assert lin[0] == pytest.approx(1e-6) and lin[-1] == pytest.approx(1e-2)
    cos = make_betas("cosine", 100)
    assert cos.shape == (100,) and (np.diff(np.cumprod(1 - cos)) < 0).all()


def test_ddim_and_ddpm_sampling_are_seeded(weights: Path) -> None:
    net, diffusion, scale = load_sr3(weights)
    img = np.random.default_rng(0).random((6, 5, 3)).astype(np.float32)
    a = super_resolve(net, diffusion, img, scale, steps=4, seed=3)
    b = super_resolve(net, diffusion, img, scale, steps=4, seed=3)
    c = super_resolve(net, diffusion, img, scale, steps=4, seed=4)
    assert a.shape == (12, 10, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert super_resolve(net, diffusion, img, scale, sampler="ddpm", seed=0).shape == (12, 10, 3)


def test_ddim_with_a_perfect_noise_predictor_recovers_x0() -> None:
    """With eps predicted exactly (x_T built from a known x0), DDIM lands on x0: checks the update formulas."""
    diffusion = Diffusion(make_betas("linear", 100, 1e-4, 2e-2))
    x0 = torch.rand(1, 3, 8, 8) * 2 - 1

    class Oracle(torch.nn.Module):
        def forward(self, cond, x, gamma):
            g = gamma.view(-1, 1, 1, 1)
            return (x - g * x0) / (1 - g * g).sqrt()

    out = diffusion.sample(Oracle(), torch.zeros_like(x0), steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x0, atol=1e-4)


def test_sizes() -> None:
    assert SR3UNet(TINY).multiple == 2
    net = SR3UNet(TINY)
    assert net(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), torch.ones(1)).shape == (1, 3, 16, 16)
    big = UNetConfig(inner_channel=8, channel_multiplier=[1, 1, 1, 1, 1], attn_res=[], res_blocks=1, norm_groups=4)
    with pytest.raises(LitesrError, match=r"at least 4x4 pixels"):
        super_resolve(SR3UNet(big), Diffusion(make_betas("linear", 10)), np.zeros((3, 8, 3), np.float32), 4)
    assert SR3_X4.inner_channel == 64 and SR3_X4.channel_multiplier == [1, 2, 4, 8, 8]


def test_cli_sample_and_bad_weights(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    PILImage.fromarray((np.random.default_rng(0).random((6, 6, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert main(["sr3", "sample", str(tmp_path / "a.png"), "--weights", str(weights), "--steps", "3"]) == 0
    assert PILImage.open(tmp_path / "a_sr3_x2.png").size == (12, 12)
    (tmp_path / "junk.safetensors").write_bytes(b"nope")
    assert main(["sr3", "sample", str(tmp_path / "a.png"), "--weights", str(tmp_path / "junk.safetensors"),
                 "-o", str(tmp_path / "b.png")]) == 1
    assert "junk.safetensors" in capsys.readouterr().err and not (tmp_path / "b.png").exists()
