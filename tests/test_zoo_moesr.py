"""MoESR against spandrel 0.4.2 with every UniUpsample mode (read back from the ``MetaUpsample`` buffer)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from spandrel_parity import load_both, max_difference, randomise

import litesr

SMALL = {"dim": 16, "n_blocks": 1, "n_block": 1}


@pytest.mark.parametrize("config", [
    {"scale": 4, **SMALL, "n_blocks": 2, "upsample_dim": 16},
    {"scale": 2, **SMALL, "n_block": 2, "upsampler": "pixelshuffle", "upsample_dim": 8},
    {"scale": 3, **SMALL, "upsampler": "nearest+conv"},
    {"scale": 2, **SMALL, "upsampler": "dysample"},
    {"scale": 1, **SMALL, "upsampler": "conv"},
])
def test_matches_spandrel(config: dict, spandrel, tmp_path: Path) -> None:
    model = randomise(litesr.create_model("moesr", **config)).eval()
    descriptor, ours = load_both(spandrel, model, tmp_path)
    assert type(descriptor.model).__name__ == "MoESR"
    hp = descriptor.model.hyperparameters
    for key in ("scale", "dim", "n_blocks", "n_block", "expansion_factor", "expansion_msg", "upsampler",
                "upsample_dim"):
        assert ours.litesr_config[key] == hp[key], key
    x = torch.rand(1, 3, 13, 15, generator=torch.Generator().manual_seed(1))  # odd: padded to even inside
    assert max_difference(descriptor.model, ours, x) <= 1e-5
