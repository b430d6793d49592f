"""Real-CUGAN against spandrel 0.4.2: x2, x3, x4, pro, the fast x2, at sizes the official padding handles."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from spandrel_parity import load_both, max_difference, randomise

import litesr

CASES = [
    ({"scale": 2}, "UpCunet2x", (33, 35)),
    ({"scale": 3}, "UpCunet3x", (33, 34)),
    ({"scale": 4}, "UpCunet4x", (32, 35)),
    ({"scale": 3, "pro": True}, "UpCunet3x", (33, 32)),
    ({"scale": 2, "fast": True}, "UpCunet2x_fast", (44, 48)),  # the official fast path needs multiples of 4
]


@pytest.mark.parametrize(("config", "cls", "size"), CASES)
def test_matches_spandrel(config: dict, cls: str, size: tuple[int, int], spandrel, tmp_path: Path) -> None:
    model = randomise(litesr.create_model("realcugan", **config)).eval()
    descriptor, ours = load_both(spandrel, model, tmp_path)
    assert type(descriptor.model).__name__ == cls
    assert descriptor.scale == ours.scale == config["scale"]
    assert ours.is_pro == config.get("pro", False) == ("pro" in descriptor.tags)
    assert ours.fast == config.get("fast", False)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    assert max_difference(descriptor.model, ours, x) <= 1e-5


@pytest.mark.parametrize("config", [{"scale": 2, "fast": True}, {"scale": 3}])
def test_any_size(config: dict) -> None:
    """Sizes the official code rejects (fast x2 off a multiple of 4, inputs under the reflect padding)."""
    model = litesr.create_model("realcugan", **config).eval()
    with torch.no_grad():
        for h, w in ((13, 9), (42, 46)):
            assert model(torch.rand(1, 3, h, w)).shape == (1, 3, h * model.scale, w * model.scale)
