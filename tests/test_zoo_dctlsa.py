"""DCTLSA against spandrel 0.4.2, at sizes that are not window (16) multiples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from spandrel_parity import load_both, max_difference, randomise

import litesr


@pytest.mark.parametrize(("config", "size"), [({"scale": 4, "nf": 20}, (20, 18)), ({"scale": 2, "nf": 10}, (16, 33))])
def test_matches_spandrel(config: dict, size: tuple[int, int], spandrel, tmp_path: Path) -> None:
    model = randomise(litesr.create_model("dctlsa", **config)).eval()
    descriptor, ours = load_both(spandrel, model, tmp_path)
    assert type(descriptor.model).__name__ == "DCTLSA"
    hp = descriptor.model.hyperparameters
    assert (hp["upscale"], hp["nf"], hp["num_head"]) == (ours.scale, ours.litesr_config["nf"], 5)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    assert max_difference(descriptor.model, ours, x) <= 1e-5


def test_official_key_names() -> None:
    keys = set(litesr.create_model("dctlsa", scale=4).state_dict())
    assert {"fea_conv.weight", "B6.body.1.transformer_body.0.blocks.1.attn.local.pointwise_prenorm_1.running_var",
            "B1.body.0.transformer_body.0.patch_embed.norm.weight", "c.0.weight", "c5.0.weight", "LR_conv.weight",
            "upsampler.0.weight"} <= keys
    assert "c6.0.weight" not in keys and "B7.body.0.transformer_body.0.patch_embed.norm.weight" not in keys
