"""SMFANet and SMFANet+: the same outputs as the official code (Zheng-MJ/SMFANet, read from outside the repo) on
shared random weights in float64, the paper's parameter counts, detection of every variant."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture

REPO = "Zheng-MJ/SMFANet"
FILES = {"basicsr/archs/SMFANet_arch.py": "smfanet_official.py"}


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with official_modules(tmp_path, REPO, FILES):
        monkeypatch.setitem(sys.modules, "torchvision.ops", types.ModuleType("torchvision.ops"))  # imported, unused
        yield importlib.import_module("smfanet_official")


@pytest.mark.parametrize(("scale", "size"), [(2, (19, 27)), (3, (8, 13)), (4, (16, 16))])
def test_matches_official(official, scale: int, size: tuple[int, int]) -> None:
    ours = litesr.create_model("smfanet", scale=scale, dim=16, n_blocks=2).eval()
    ours.load_state_dict(random_state(ours, seed=scale, std=0.2))
    with torch.no_grad():
        for block in ours.feats:  # belt starts at zero: give the variance path a weight so it is compared too
            block.smfa.belt.normal_(0, 0.5)
    reference = official.SMFANet(dim=16, n_blocks=2, ffn_scale=2, upscaling_factor=scale).eval()
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
    assert float(want.abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


def test_parameter_counts(official) -> None:
    """Paper Tables 1 and 2: 186K / 191K / 197K (SMFANet), 480K / 487K / 496K (SMFANet+)."""
    counts = {name: [parameter_count_on_meta(name, s) for s in (2, 3, 4)] for name in ("smfanet", "smfanet_plus")}
    assert counts == {"smfanet": [185_628, 190_503, 197_328], "smfanet_plus": [480_300, 486_795, 495_888]}
    for name, scales in counts.items():
        assert {s: round(n, -3) for s, n in zip((2, 3, 4), scales)} == litesr.registry.get_variant(name).paper_params
    reference = official.SMFANet(dim=36, n_blocks=8, ffn_scale=2, upscaling_factor=4)
    assert sum(p.numel() for p in reference.parameters()) == counts["smfanet"][2]


def test_variants_detect_as_themselves() -> None:
    assert {"smfanet", "smfanet_plus"} <= set(check_variants_detect_as_themselves("smfanet"))


def test_detection_round_trip() -> None:
    model = litesr.create_model("smfanet", scale=3, dim=24, n_blocks=3)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("smfanet", {"scale": 3, "dim": 24, "n_blocks": 3,
                                                                  "ffn_scale": 2})]


def test_small_inputs_are_padded_for_the_pooled_branch() -> None:
    model = litesr.create_model("smfanet", scale=2, **litesr.registry.get_arch("smfanet").tiny).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)
