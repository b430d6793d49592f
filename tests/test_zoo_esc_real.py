"""ESC-Real (``esc`` with ``real_world=True``): the same outputs as the official ``ESCReal`` (dslisleedh/ESC,
``esc/archs/esc_real_arch.py``, read from outside the repo) on shared random weights in float64, in its inference path
(batch 1, the hard-coded 13 x 13 kernel) and its training path (batch 2, a smaller kernel); the parameter count of the
released configuration against the official class; detection of ESC-Real apart from plain ESC; x4 only."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from zoo_parity import parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture
from litesr.errors import ConfigError

REPO = "dslisleedh/ESC"
FILES = {"esc/archs/esc_real_arch.py": "esc_real_official.py"}
# ESC-Real's blocks always carry the LayerNorms before each ConvAttn
SMALL = dict(dim=16, pdim=8, n_blocks=2, conv_blocks=2, window_size=8, num_heads=2, exp_ratio=2, use_ln=True)


@pytest.fixture
def official(tmp_path: Path):
    with official_modules(tmp_path, REPO, FILES):
        yield importlib.import_module("esc_real_official")


def _pair(official, kernel_size: int, seed: int):
    ours = litesr.create_model("esc", scale=4, real_world=True, kernel_size=kernel_size, **SMALL)
    ours.load_state_dict(random_state(ours, seed=seed, std=0.2))  # dwc_proj's zero start randomised: dynamic path on
    config = {k: v for k, v in SMALL.items() if k != "use_ln"}
    reference = official.ESCReal(upscaling_factor=4, kernel_size=kernel_size, attn_type="Naive", **config)
    reference.load_state_dict(ours.state_dict())
    return ours.double(), reference.double()


@pytest.mark.parametrize(("kernel_size", "size", "batch", "train_path"), [(13, (13, 21), 1, False),
                                                                          (7, (9, 17), 2, True)])
def test_matches_official(official, kernel_size: int, size: tuple[int, int], batch: int, train_path: bool) -> None:
    ours, reference = _pair(official, kernel_size, seed=kernel_size)
    ours.eval()
    # The official inference path hard-codes a 13 x 13 kernel and batch 1; its training path takes any (no dropout,
    # its LayerNorm is the same function in both modes).
    reference.train(train_path)
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        got, want = ours(x), reference(x)
    assert got.shape == (batch, 3, size[0] * 4, size[1] * 4)
    assert float(want.abs().max()) > 1e-2  # not a degenerate comparison
    assert float((got - want).abs().max()) <= 1e-5


def test_the_input_branch_is_used(official) -> None:
    """The skip branch changes the output: zeroing its last conv is seen (a test that could not fail otherwise)."""
    ours, _ = _pair(official, 7, seed=3)
    ours.eval()
    x = torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        before = ours(x)
        ours.skip[3].weight.zero_()
        ours.skip[3].bias.zero_()
        assert float((ours(x) - before).abs().max()) > 1e-3


def test_parameter_count_equals_official(official) -> None:
    count = parameter_count_on_meta("esc_real", 4)
    assert count == 2_265_307
    # The official constructor builds its bias index with a Python loop over heads * window^4 pairs (minutes at 32):
    # build it with 2 x 2 windows and add the difference of the bias tables, the only tensor the window size shapes.
    with torch.device("meta"):
        reference = official.ESCReal(dim=64, pdim=16, kernel_size=13, n_blocks=10, conv_blocks=5, window_size=2,
                                     num_heads=4, upscaling_factor=4, exp_ratio=2, attn_type="Naive")
    assert sum(p.numel() for p in reference.parameters()) + 10 * 4 * (63**2 - 3**2) == count


def test_detection_tells_esc_real_from_esc() -> None:
    with torch.device("meta"):
        real = litesr.create_model("esc_real")
        plain = litesr.create_model("esc", scale=4)
    [match] = detect_architecture(real.state_dict())
    assert (match.arch, match.config.get("real_world"), match.config["n_blocks"]) == ("esc", True, 10)
    [match] = detect_architecture(plain.state_dict())
    assert "real_world" not in match.config and match.config["scale"] == 4


def test_esc_real_is_x4_only() -> None:
    with pytest.raises(ConfigError, match="x4 only"):
        litesr.create_model("esc_real", scale=2)
