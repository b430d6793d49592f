"""MoSR against spandrel 0.4.2 with each upsampler (PixelShuffle, geometric-ensemble PixelShuffle, DySample)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from spandrel_parity import load_both, max_difference, randomise

import litesr


@pytest.mark.parametrize("config", [
    {"scale": 4, "n_block": 2, "dim": 16},
    {"scale": 2, "n_block": 2, "dim": 16, "upsampler": "gps", "kernel_size": 5},
    {"scale": 3, "n_block": 1, "dim": 16, "upsampler": "dys", "expansion_ratio": 2.0},
])
def test_matches_spandrel(config: dict, spandrel, tmp_path: Path) -> None:
    model = randomise(litesr.create_model("mosr", **config)).eval()
    descriptor, ours = load_both(spandrel, model, tmp_path)
    assert type(descriptor.model).__name__ == "MoSR"
    hp = descriptor.model.hyperparameters
    for ours_key, theirs_key in (("scale", "upscale"), ("n_block", "n_block"), ("dim", "dim"),
                                 ("upsampler", "upsampler"), ("kernel_size", "kernel_size"),
                                 ("expansion_ratio", "expansion_ratio"), ("conv_ratio", "conv_ratio")):
        assert ours.litesr_config[ours_key] == hp[theirs_key], ours_key
    x = torch.rand(1, 3, 12, 15, generator=torch.Generator().manual_seed(1))
    assert max_difference(descriptor.model, ours, x) <= 1e-5
