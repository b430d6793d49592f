"""ADSRNet (HDSRNet): the same outputs as the official code (hellloxiaotian/ADSRNet, read from outside the repo) on
shared random weights in float64, the parameter counts of the official model and the paper, detection."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from test_official_parity import Args, official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture

REPO = "hellloxiaotian/ADSRNet"
FILES = {f"HDSRNet/model/{name}.py": f"model/{name}.py" for name in ("common", "ops", "DynamicConv", "hdsrnet")}


@pytest.fixture
def official(tmp_path: Path):
    with official_modules(tmp_path, REPO, FILES):
        yield importlib.import_module("model.hdsrnet")


def _official_model(official, scale: int) -> torch.nn.Module:
    return official.make_model(Args(scale=[scale], rgb_range=255))


@pytest.mark.parametrize(("scale", "size", "batch"), [(2, (9, 13), 2), (3, (8, 7), 1), (4, (6, 10), 2)])
def test_matches_official(official, scale: int, size: tuple[int, int], batch: int) -> None:
    """Batch 2: each image gets its own mixture of expert kernels (the grouped conv over the batch)."""
    ours = litesr.create_model("adsrnet", scale=scale).eval()
    ours.load_state_dict(random_state(ours, seed=scale, std=0.05))
    reference = _official_model(official, scale).eval()
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 255
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
    assert float((want - got.new_tensor(0)).abs().max()) > 1.0  # not a constant output
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))


def test_expert_mixture_differs_per_image() -> None:
    """The kernels are mixed per image: an image's output does not depend on what else is in the batch."""
    model = litesr.create_model("adsrnet", scale=2, num_feat=8, num_experts=2).eval()
    model.load_state_dict(random_state(model, seed=3, std=0.2))
    model.double()
    a, b = (torch.rand(1, 3, 6, 6, dtype=torch.float64) * 255 for _ in range(2))
    with torch.no_grad():
        together, alone = model(torch.cat([a, b])), torch.cat([model(a), model(b)])
        mixes = model.Block.conv3[0].attention(model.Block.conv2(model.Block.conv1(model.sub_mean(torch.cat([a, b])))))
    assert torch.allclose(together, alone, rtol=1e-9, atol=1e-6)
    assert float((mixes[0] - mixes[1]).abs().max()) > 1e-4  # the two images do get different kernels


def test_parameter_counts(official) -> None:
    """The official model's count at each scale; the paper's 1819K (Table VII) is the x2 model's."""
    counts = [parameter_count_on_meta("adsrnet", s) for s in (2, 3, 4)]
    assert counts == [1_818_520, 2_003_160, 1_966_232]
    for scale, count in zip((2, 3, 4), counts):
        assert sum(p.numel() for p in _official_model(official, scale).parameters()) == count
    assert round(counts[0], -3) == litesr.registry.get_variant("adsrnet").paper_params[2]


def test_official_state_dict_loads_by_detection(official) -> None:
    state = _official_model(official, 3).state_dict()
    matches = detect_architecture(state)
    assert [(m.arch, m.config) for m in matches] == [("adsrnet", {"scale": 3, "num_feat": 64, "num_experts": 4,
                                                                  "reduction": 4})]


def test_variants_detect_as_themselves() -> None:
    assert "adsrnet" in set(check_variants_detect_as_themselves("adsrnet"))


def test_input_range_is_255() -> None:
    assert litesr.describe(litesr.create_model("adsrnet", scale=2, num_feat=8)).input_range == 255.0
