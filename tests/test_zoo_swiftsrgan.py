"""Swift-SRGAN against spandrel 0.4.2 (BN statistics randomised too, so eval-mode BN is compared)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from spandrel_parity import load_both, max_difference, randomise

import litesr


@pytest.mark.parametrize("config", [{"scale": 4, "num_channels": 16, "num_blocks": 2},
                                    {"scale": 2, "num_channels": 8, "num_blocks": 3},
                                    {"scale": 8, "num_channels": 8, "num_blocks": 1}])
def test_matches_spandrel(config: dict, spandrel, tmp_path: Path) -> None:
    model = randomise(litesr.create_model("swiftsrgan", **config)).eval()
    descriptor, ours = load_both(spandrel, model, tmp_path)
    hp = descriptor.model.hyperparameters
    assert type(descriptor.model).__name__ == "Generator"
    assert (hp["upscale_factor"], hp["num_channels"], hp["num_blocks"]) == (
        config["scale"], config["num_channels"], config["num_blocks"])
    assert ours.litesr_config == {**config, "in_channels": 3}
    x = torch.rand(1, 3, 10, 13, generator=torch.Generator().manual_seed(1))
    assert max_difference(descriptor.model, ours, x) <= 1e-5


def test_paper_model_keys() -> None:
    keys = set(litesr.create_model("swiftsrgan", scale=4).state_dict())
    assert {"initial.cnn.depthwise.weight", "residual.15.block2.bn.running_var", "convblock.cnn.pointwise.weight",
            "upsampler.1.conv.pointwise.weight", "final_conv.pointwise.bias"} <= keys
    assert "residual.16.block1.cnn.depthwise.weight" not in keys
