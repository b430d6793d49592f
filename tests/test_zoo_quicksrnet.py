"""QuickSRNet small / medium / large: the same outputs and initialisation as the official code (quic/aimet-model-zoo,
read from outside the repo), its parameter counts, detection of every variant."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture

REPO = "quic/aimet-model-zoo"
_BASE = "aimet_zoo_torch/quicksrnet/model/"
FILES = {_BASE + name: f"qsr_official/{name}" for name in ("models.py", "blocks.py", "imresize.py")}
OFFICIAL_CLASSES = {"quicksrnet_small": "QuickSRNetSmall", "quicksrnet_medium": "QuickSRNetMedium",
                    "quicksrnet_large": "QuickSRNetLarge"}


@pytest.fixture
def official(tmp_path: Path):
    with official_modules(tmp_path, REPO, FILES):
        yield importlib.import_module("qsr_official.models")


@pytest.mark.parametrize(("name", "scale", "size"), [("quicksrnet_small", 2, (13, 9)),
                                                      ("quicksrnet_medium", 3, (8, 11)),
                                                      ("quicksrnet_large", 4, (7, 10))])
def test_matches_official(official, name: str, scale: int, size: tuple[int, int]) -> None:
    ours = litesr.create_model(name, scale=scale).eval()
    # std and a positive shift keep the clipped ReLUs partly inside (0, 1), so both clip edges are exercised
    state = {k: v + (0.02 if k.endswith("bias") else 0.0) for k, v in random_state(ours, seed=scale, std=0.08).items()}
    ours.load_state_dict(state)
    reference = getattr(official, OFFICIAL_CLASSES[name])(scale).eval()
    reference.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
    assert 0.0 < float(want.mean()) < 1.0 and float(want.std()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


@pytest.mark.parametrize("name", sorted(OFFICIAL_CLASSES))
def test_initialisation_matches_official(official, name: str) -> None:
    """The residual-like start (identity taps, nearest-upsampling last conv or anchor) is part of the method."""
    torch.manual_seed(0)
    ours = litesr.create_model(name, scale=3)
    torch.manual_seed(0)
    reference = getattr(official, OFFICIAL_CLASSES[name])(3)
    assert ours.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


def test_parameter_counts_equal_official(official) -> None:
    counts = {name: [parameter_count_on_meta(name, s) for s in (2, 3, 4)] for name in OFFICIAL_CLASSES}
    assert counts == {"quicksrnet_small": [22_860, 27_195, 33_264], "quicksrnet_medium": [50_604, 54_939, 61_008],
                      "quicksrnet_large": [414_972, 423_687, 435_888]}
    for (name, cls), scale in zip(OFFICIAL_CLASSES.items(), (2, 3, 4)):  # one official build per variant: fast
        reference = getattr(official, cls)(scale)
        assert sum(p.numel() for p in reference.parameters()) == counts[name][scale - 2], (name, scale)


def test_variants_detect_as_themselves() -> None:
    assert set(OFFICIAL_CLASSES) <= set(check_variants_detect_as_themselves("quicksrnet"))


def test_detection_reads_depth_width_and_ito() -> None:
    model = litesr.create_model("quicksrnet", scale=3, num_channels=16, num_intermediate_layers=4,
                                use_ito_connection=True)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("quicksrnet", {
        "scale": 3, "num_channels": 16, "num_intermediate_layers": 4, "use_ito_connection": True, "in_channels": 3})]


def test_output_is_clipped_to_unit_range() -> None:
    model = litesr.create_model("quicksrnet_small", scale=2).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 9, 7) * 4 - 2)
    assert out.shape == (1, 3, 18, 14) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
