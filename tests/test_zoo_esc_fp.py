"""ESC-FP (``esc_fp``): the same outputs as the official ``ESCFP`` (dslisleedh/ESC, ``esc/archs/esc_fp_arch.py``, read
from outside the repo) on shared random weights in float64 at x2/x3/x4, at batch 1 and 2 and at sizes that need the
attention's reflect padding; the parameter counts of the official configuration (litesr's and the official class's,
and the paper's); detection apart from ESC; the registered published figures."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture

REPO = "dslisleedh/ESC"
FILES = {"esc/archs/esc_fp_arch.py": "esc_fp_official.py"}
# The official forward hard-codes a 13 x 13 kernel: the comparison keeps it and shrinks everything else.
SMALL = dict(dim=16, pdim=8, kernel_size=13, n_blocks=2, conv_blocks=2, window_size=8, num_heads=2, exp_ratio=1.25)


@pytest.fixture
def official(tmp_path: Path):
    with official_modules(tmp_path, REPO, FILES):
        yield importlib.import_module("esc_fp_official")


def _official_model(official, scale: int, **config):
    return official.ESCFP(upscaling_factor=scale, attn_type="Naive", **config)


@pytest.mark.parametrize(("scale", "size", "batch"), [(2, (13, 21), 1), (3, (8, 8), 1), (4, (17, 9), 2)])
def test_matches_official(official, scale: int, size: tuple[int, int], batch: int) -> None:
    ours = litesr.create_model("esc_fp", scale=scale, **SMALL).eval()
    ours.load_state_dict(random_state(ours, seed=scale, std=0.2))
    reference = _official_model(official, scale, **SMALL).eval()
    torch.nn.Module.load_state_dict(reference, ours.state_dict())  # the official override only rescales to_img
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours, reference = ours.double(), reference.double()
    with torch.no_grad():
        got, want = ours(x), reference(x)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic")
    assert float((want - bicubic).abs().max()) > 1e-2  # the network adds something to its bicubic base
    assert float((got - want).abs().max()) <= 1e-5


def test_parameter_counts(official) -> None:
    """litesr's ESC-FP equals the paper's 524K / 530K / 539K and the official class (bias tables as in ESC's test)."""
    counts = [parameter_count_on_meta("esc_fp", s) for s in (2, 3, 4)]
    assert counts == [523_675, 530_170, 539_263]
    assert [round(c, -3) for c in counts] == [litesr.registry.get_variant("esc_fp").paper_params[s] for s in (2, 3, 4)]
    # The official constructor builds its bias index with a Python loop over heads * window^4 pairs (minutes at 32):
    # build it with 2 x 2 windows and add the difference of the bias tables, the only tensor the window size shapes.
    with torch.device("meta"):
        reference = _official_model(official, 4, dim=48, pdim=16, kernel_size=13, n_blocks=5, conv_blocks=5,
                                    window_size=2, num_heads=3, exp_ratio=1.25)
    assert sum(p.numel() for p in reference.parameters()) + 5 * 3 * ((2 * 32 - 1) ** 2 - 3**2) == counts[2]


def test_detection_tells_esc_fp_from_esc() -> None:
    assert "esc_fp" in check_variants_detect_as_themselves("esc_fp")
    model = litesr.create_model("esc_fp", scale=3, **SMALL)
    assert [(m.arch, m.config) for m in detect_architecture(model.state_dict())] == [("esc_fp", {"scale": 3, **SMALL})]
    with torch.device("meta"):
        esc = litesr.create_model("esc_light", scale=4)
    assert [m.arch for m in detect_architecture(esc.state_dict())] == ["esc"]


def test_published_figures_registered() -> None:
    variant = litesr.registry.get_variant("esc_fp")
    assert variant.paper_macs == {2: 239.8, 3: 110.0, 4: 60.8}
    assert variant.paper_psnr[4]["Urban100"] == (26.90, 0.8098)
    assert {len(v) for v in variant.paper_psnr.values()} == {5}
