"""PLKSR and RealPLKSR: parity with spandrel 0.4.2 on random weights (every channel-mixer and kernel form, DySample,
LayerNorm), parameter counts equal to the official code's, detection of every variant."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta

import litesr

RENAMES = {"scale": "upscaling_factor"}
PLKSR_CASES = [
    dict(scale=4, dim=16, n_blocks=2, kernel_size=7, ccm_type="DCCM"),
    dict(scale=2, dim=16, n_blocks=3, kernel_size=9, ccm_type="ICCM", use_ea=False, lk_type="RectSparsePLK"),
    dict(scale=3, dim=24, n_blocks=2, kernel_size=5, split_ratio=0.5),
]
REAL_CASES = [
    dict(scale=4, dim=16, n_blocks=2, kernel_size=7),
    dict(scale=3, dim=16, n_blocks=2, kernel_size=5, dysample=True, layer_norm=True),
    dict(scale=2, dim=16, n_blocks=2, kernel_size=5, dysample=True, use_ea=False),
]


@pytest.mark.parametrize("config", PLKSR_CASES, ids=lambda c: f"x{c['scale']}-{c.get('ccm_type', 'CCM')}")
def test_plksr_matches_spandrel(spandrel, config: dict) -> None:
    check_parity(spandrel, "plksr", config, (13, 17), renames=RENAMES, spandrel_id="PLKSR")


@pytest.mark.parametrize("config", REAL_CASES, ids=lambda c: f"x{c['scale']}")
def test_realplksr_matches_spandrel(spandrel, config: dict) -> None:
    check_parity(spandrel, "realplksr", config, (13, 17), renames=RENAMES, spandrel_id="PLKSR")


def test_parameter_counts() -> None:
    assert [parameter_count_on_meta("plksr", s) for s in (2, 3, 4)] == [7_365_324, 7_373_979, 7_386_096]
    assert [parameter_count_on_meta("plksr_tiny", s) for s in (2, 3, 4)] == [2_349_772, 2_358_427, 2_370_544]


@pytest.mark.slow
def test_parameter_counts_equal_the_official_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper prints latency and memory, not parameters: the official code's count is the reference."""
    with official_modules(tmp_path, "dslisleedh/PLKSR", {"plksr/archs/plksr_arch.py": "plksr_official.py"}):
        # imported there but unused by the network: torchvision.ops, BasicSR's trunc_normal_
        monkeypatch.setitem(sys.modules, "torchvision.ops", types.ModuleType("torchvision.ops"))
        monkeypatch.setitem(sys.modules, "basicsr.archs", types.ModuleType("basicsr.archs"))
        util = types.SimpleNamespace(trunc_normal_=torch.nn.init.trunc_normal_)
        monkeypatch.setitem(sys.modules, "basicsr.archs.arch_util", util)
        arch = importlib.import_module("plksr_official")
        for name, options in (("plksr", dict(n_blocks=28, kernel_size=17, use_ea=True)),
                              ("plksr_tiny", dict(n_blocks=12, kernel_size=13, use_ea=False))):
            for scale in (2, 4):
                official = arch.PLKSR(dim=64, upscaling_factor=scale, ccm_type="DCCM", lk_type="PLK",
                                      split_ratio=0.25, **options)
                assert parameter_count_on_meta(name, scale) == sum(p.numel() for p in official.parameters())


def test_variants_detect_as_themselves() -> None:
    assert {"plksr", "plksr_tiny"} <= set(check_variants_detect_as_themselves("plksr"))
    assert {"realplksr", "realplksr_layernorm"} <= set(check_variants_detect_as_themselves("realplksr"))


def test_plksr_and_realplksr_never_claim_each_other() -> None:
    plksr = litesr.create_model("plksr", scale=2, **litesr.registry.get_arch("plksr").tiny).state_dict()
    real = litesr.create_model("realplksr", scale=2, **litesr.registry.get_arch("realplksr").tiny).state_dict()
    assert litesr.registry.get_arch("realplksr").detect(plksr) is None
    assert litesr.registry.get_arch("plksr").detect(real) is None


def test_any_size() -> None:
    model = litesr.create_model("realplksr", scale=3, **litesr.registry.get_arch("realplksr").tiny).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 9)).shape == (1, 3, 15, 27)
