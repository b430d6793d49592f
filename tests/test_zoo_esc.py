"""ESC, ESC-light and ESC-XL: the same outputs as the official code (dslisleedh/ESC, read from outside the repo) on
shared random weights in float64, at sizes that need the attention's reflect padding and at batch 2; the parameter
counts of the official configurations; detection of every variant."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs.esc import geometric_ensemble
from litesr.detect import detect_architecture

REPO = "dslisleedh/ESC"
FILES = {"esc/archs/esc_arch.py": "esc_official.py"}
SMALL = dict(dim=16, pdim=8, kernel_size=7, n_blocks=2, conv_blocks=2, window_size=8, num_heads=2, exp_ratio=1.25)


@pytest.fixture
def official(tmp_path: Path):
    with official_modules(tmp_path, REPO, FILES):
        yield importlib.import_module("esc_official")


def _official_model(official, scale: int, **config):
    # "Naive" is the official plain-PyTorch attention (Flex needs torch.compile; all three compute the same function)
    return official.ESC(upscaling_factor=scale, attn_type="Naive", **config)


@pytest.mark.parametrize(("scale", "size", "batch", "use_ln"),
                         [(2, (13, 21), 1, False), (3, (8, 8), 1, True), (4, (17, 9), 2, False)])
def test_matches_official(official, scale: int, size: tuple[int, int], batch: int, use_ln: bool) -> None:
    ours = litesr.create_model("esc", scale=scale, use_ln=use_ln, **SMALL).eval()
    ours.load_state_dict(random_state(ours, seed=scale, std=0.2))  # dwc_proj's zero start randomised: dynamic path on
    reference = _official_model(official, scale, use_ln=use_ln, **SMALL).eval()
    torch.nn.Module.load_state_dict(reference, ours.state_dict())  # the official override only rescales to_img
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours, reference = ours.double(), reference.double()
    with torch.no_grad():
        got = ours(x)
        # the official inference path reshapes the dynamic kernel for batch 1: run it image by image
        want = torch.cat([reference(x[i : i + 1]) for i in range(batch)])
    assert float((want - torch.repeat_interleave(x, scale, -1).repeat_interleave(scale, -2)).abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


def test_geometric_ensemble_matches_official(official) -> None:
    kernel = torch.randn(4, 4, 7, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(geometric_ensemble(kernel), official._geo_ensemble(kernel), atol=1e-12, rtol=0)
    assert not torch.allclose(geometric_ensemble(kernel), kernel)


def test_parameter_counts(official) -> None:
    """ESC-light / ESC / ESC-XL as litesr builds them, and equal to the official class for ESC-light and ESC."""
    counts = {name: [parameter_count_on_meta(name, s) for s in (2, 3, 4)] for name in ("esc_light", "esc", "esc_xl")}
    assert counts == {"esc_light": [603_600, 612_255, 624_372], "esc": [946_728, 955_383, 967_500],
                      "esc_xl": [12_455_916, 12_481_851, 12_518_160]}
    # The official constructor builds its bias index with a Python loop over heads * window^4 pairs (minutes at 32):
    # build it with 2 x 2 windows and add the difference of the bias tables, the only tensor the window size shapes.
    for name, n_blocks in (("esc_light", 3), ("esc", 5)):
        with torch.device("meta"):
            reference = _official_model(official, 4, dim=64, pdim=16, kernel_size=13, n_blocks=n_blocks,
                                        conv_blocks=5, window_size=2, num_heads=4, exp_ratio=1.25)
        table_difference = n_blocks * 4 * ((2 * 32 - 1) ** 2 - (2 * 2 - 1) ** 2)
        assert sum(p.numel() for p in reference.parameters()) + table_difference == counts[name][2], name


def test_variants_detect_as_themselves() -> None:
    assert {"esc", "esc_light", "esc_xl"} <= set(check_variants_detect_as_themselves("esc"))


def test_detection_round_trip() -> None:
    model = litesr.create_model("esc", scale=3, use_ln=True, **SMALL)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("esc", {"scale": 3, "use_ln": True, **SMALL})]


def test_small_inputs_are_padded_for_the_reflect_padding() -> None:
    model = litesr.create_model("esc", scale=2, **litesr.registry.get_arch("esc").tiny).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 1, 2)).shape == (1, 3, 2, 4)
