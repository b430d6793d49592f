"""Real-ESRGAN compact (SRVGGNetCompact) against spandrel 0.4.2, and the official sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from spandrel_parity import load_both, max_difference, randomise

import litesr


@pytest.mark.parametrize("config", [
    {"scale": 4, "num_feat": 16, "num_conv": 3}, {"scale": 2, "num_feat": 8, "num_conv": 2},
    {"scale": 1, "num_feat": 8, "num_conv": 1}, {"scale": 3, "num_feat": 8, "num_conv": 2},
])
def test_matches_spandrel(config: dict, spandrel, tmp_path: Path) -> None:
    model = randomise(litesr.create_model("compact", **config)).eval()
    descriptor, ours = load_both(spandrel, model, tmp_path)
    assert type(descriptor.model).__name__ == "SRVGGNetCompact"
    hp = descriptor.model.hyperparameters
    assert descriptor.scale == ours.scale == config["scale"]
    assert (hp["num_feat"], hp["num_conv"], hp["act_type"]) == (config["num_feat"], config["num_conv"], "prelu")
    assert ours.litesr_config["num_conv"] == config["num_conv"]
    x = torch.rand(1, 3, 11, 13, generator=torch.Generator().manual_seed(1))
    assert max_difference(descriptor.model, ours, x) <= 1e-5


def test_official_sizes() -> None:
    # realesr-general-x4v3 (32 convs) and realesr-animevideov3 (16 convs) of 64 channels, from the shapes alone.
    for name, n in (("realesr_general_x4v3", 32), ("realesr_animevideov3", 16)):
        model = litesr.create_model(name, scale=4)
        matches = litesr.detect_architecture(model.state_dict())
        assert [(m.arch, m.config["num_conv"], m.config["scale"]) for m in matches] == [("compact", n, 4)]
    # first conv + PReLU, 32 x (conv + PReLU), last conv to 3 * 4^2, counted by hand from the official module
    expected = (3 * 64 * 9 + 64) + 64 + 32 * (64 * 64 * 9 + 64 + 64) + (64 * 48 * 9 + 48)
    assert litesr.count_parameters(litesr.create_model("realesr_general_x4v3", scale=4)) == expected == 1_213_296
