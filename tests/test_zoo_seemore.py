"""SeemoRe (T / B / L): parity with spandrel 0.4.2 on random weights, also a batch routed image by image, the
paper's parameter counts (and the official code's), detection of every variant."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta

import litesr

CASES = [
    dict(scale=4, embedding_dim=16, num_layers=2, num_experts=3),
    dict(scale=2, embedding_dim=16, num_layers=2, num_experts=4, lr_space="linear", global_kernel_size=7),
    dict(scale=3, embedding_dim=48, num_layers=16, num_experts=3, use_shuffle=False, recursive=1),  # SeemoRe-L form
]


@pytest.mark.parametrize("config", CASES, ids=lambda c: f"x{c['scale']}-{c['num_layers']}x{c['embedding_dim']}")
def test_matches_spandrel(spandrel, config: dict) -> None:
    check_parity(spandrel, "seemore", config, (17, 23), renames={}, spandrel_id="SeemoRe")


def test_a_batch_routes_each_image_on_its_own() -> None:
    """The official eval code routes a batch by its first image; litesr gives each image its own experts."""
    model = litesr.create_model("seemore", scale=2, embedding_dim=16, num_layers=2).eval()
    x = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batch, single = model(x), torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert float((batch - single).abs().max()) < 1e-5


def test_parameter_counts(tmp_path: Path) -> None:
    """SeemoRe-T: 220K / 225K / 232K (paper Table 1); B and L: the official code's counts."""
    counts = {name: [parameter_count_on_meta(name, s) for s in (2, 3, 4)] for name in ("seemore", "seemore_b",
                                                                                       "seemore_l")}
    assert counts == {"seemore": [220_104, 224_979, 231_804], "seemore_b": [490_364, 496_859, 505_952],
                      "seemore_l": [953_308, 959_803, 968_896]}
    assert {s: round(n, -3) for s, n in zip((2, 3, 4), counts["seemore"])} == \
        litesr.registry.get_variant("seemore").paper_params
    with official_modules(tmp_path, "eduardzamfir/seemoredetails", {"basicsr/archs/seemore_arch.py": "seemore_off.py"}):
        arch = importlib.import_module("seemore_off")
        for name, layers, dim in (("seemore", 6, 36), ("seemore_b", 8, 48), ("seemore_l", 16, 48)):
            official = arch.SeemoRe(scale=4, num_experts=3, num_layers=layers, embedding_dim=dim, lr_space="exp",
                                    topk=1, recursive=1 if name == "seemore_l" else 2,
                                    use_shuffle=name != "seemore_l", global_kernel_size=11)
            assert sum(p.numel() for p in official.parameters()) == counts[name][2], name


def test_variants_detect_as_themselves() -> None:
    assert {"seemore", "seemore_b", "seemore_l"} <= set(check_variants_detect_as_themselves("seemore"))


def test_small_inputs_are_padded_for_the_calibration_branch() -> None:
    model = litesr.create_model("seemore", scale=2, **litesr.registry.get_arch("seemore").tiny).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)
