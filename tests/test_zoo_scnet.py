"""SCNet: the same outputs as the official code (Aitical/SCNet, read from outside the repo) on shared random weights
in float64 for both upsampling forms, the official parameter counts, detection of every variant and scale form."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from torch import nn
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs.scnet import Shift8
from litesr.detect import detect_architecture

REPO = "Aitical/SCNet"
FILES = {"basicsr/archs/SCNet_arch.py": "scnet_official.py"}


def _arch_util() -> types.ModuleType:
    """basicsr.archs.arch_util as the official file uses it: make_layer stacks blocks, init is irrelevant here."""
    module = types.ModuleType("basicsr.archs.arch_util")
    module.make_layer = lambda block, n, **kw: nn.Sequential(*[block(**kw) for _ in range(n)])
    module.default_init_weights = lambda *_args, **_kwargs: None
    return module


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with official_modules(tmp_path, REPO, FILES):
        monkeypatch.setitem(sys.modules, "basicsr.archs", types.ModuleType("basicsr.archs"))
        monkeypatch.setitem(sys.modules, "basicsr.archs.arch_util", _arch_util())
        yield importlib.import_module("scnet_official")


@pytest.mark.parametrize(("scale", "pixelshuffle", "size"),
                         [(2, False, (9, 13)), (3, False, (7, 5)), (4, False, (6, 11)), (2, True, (5, 8)),
                          (3, True, (7, 7)), (4, True, (11, 6))])
def test_matches_official(official, scale: int, pixelshuffle: bool, size: tuple[int, int]) -> None:
    ours = litesr.create_model("scnet", scale=scale, num_feat=16, num_block=2, use_pixelshuffle=pixelshuffle).eval()
    ours.load_state_dict(random_state(ours, seed=scale, std=0.3))
    reference = official.SCNet(num_feat=16, num_block=2, upscale=scale, use_pixelshuffle=pixelshuffle).eval()
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
        bilinear = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    assert got.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert float((want - bilinear).abs().max()) > 1e-2  # the network part is not negligible
    assert float((got - want).abs().max()) <= 1e-5


def test_shift_matches_official_shift8(official) -> None:
    x = torch.randn(2, 24, 5, 7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(Shift8(3)(x), official.Shift8(groups=3)(x))
    # group 0 reads the pixel above: row 0 is zero-filled, row 1 holds row 0
    out = Shift8(3)(x)
    assert torch.equal(out[:, :3, 0], torch.zeros_like(out[:, :3, 0])) and torch.equal(out[:, :3, 1], x[:, :3, 0])


def test_parameter_counts(official) -> None:
    """SCNet-T by the official code: 154,371 (x4, MLP) and 179,331 (x4, pixel shuffle); no paper table was readable."""
    counts = {name: [parameter_count_on_meta(name, s) for s in (2, 3, 4)] for name in ("scnet", "scnet_t_ps")}
    assert counts == {"scnet": [146_051, 146_051, 154_371], "scnet_t_ps": [158_531, 179_331, 179_331]}
    for name, pixelshuffle in (("scnet", False), ("scnet_t_ps", True)):
        for index, scale in enumerate((2, 3, 4)):
            with torch.device("meta"):  # shapes only: no memory, no init time
                reference = official.SCNet(num_feat=64, num_block=16, upscale=scale, use_pixelshuffle=pixelshuffle)
            assert sum(p.numel() for p in reference.parameters()) == counts[name][index]


def test_variants_detect_as_themselves() -> None:
    assert {"scnet", "scnet_t_ps"} <= set(check_variants_detect_as_themselves("scnet"))


@pytest.mark.parametrize(("scale", "pixelshuffle", "read_as"), [(2, False, 2), (3, False, 2), (4, False, 4),
                                                                (8, False, 8), (2, True, 2), (3, True, 3),
                                                                (4, True, 4)])
def test_detection_reads_the_scale_the_tensors_show(scale: int, pixelshuffle: bool, read_as: int) -> None:
    """One MLP stage holds the same tensors at x2 and x3: such a file is read as x2, every other form exactly."""
    model = litesr.create_model("scnet", scale=scale, num_feat=24, num_block=3, use_pixelshuffle=pixelshuffle)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("scnet", {"scale": read_as, "num_feat": 24, "num_block": 3,
                                                                "use_pixelshuffle": pixelshuffle})]


def test_channels_not_divisible_by_eight_are_refused() -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        litesr.create_model("scnet", num_feat=20)
