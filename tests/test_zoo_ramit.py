"""RAMiT and RAMiT-1: the same outputs as the official code (rami0205/RAMiT, read from outside the repo) on shared
random weights in float64, the official parameter counts, detection, and the official RAMiT-1 weights loading by
detection (their Set5 PSNR in a slow test)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_official_parity import MIRRORS, official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture

REPO = "rami0205/RAMiT"
FILES = {"my_model/ramit.py": "ramit_official/ramit.py", "my_model/common/mean_std.py":
         "ramit_official/common/mean_std.py", "utils/etc_utils.py": "utils/etc_utils.py"}


def _tv_pad(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    left, top, right, bottom = padding  # torchvision's order; constant zeros by default
    return F.pad(x, (left, right, top, bottom))


def _tv_normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    mean_t, std_t = torch.tensor(mean, dtype=x.dtype), torch.tensor(std, dtype=x.dtype)
    return (x - mean_t.view(-1, 1, 1)) / std_t.view(-1, 1, 1)


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    timm_layers = types.ModuleType("timm.models.layers")
    timm_layers.trunc_normal_, timm_layers.to_2tuple = torch.nn.init.trunc_normal_, lambda v: (v, v)
    fx = types.ModuleType("timm.models.fx_features")
    fx.register_notrace_function = lambda fn: fn
    for name, module in {"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models"),
                         "timm.models.layers": timm_layers, "timm.models.fx_features": fx}.items():
        monkeypatch.setitem(sys.modules, name, module)
    with official_modules(tmp_path, REPO, FILES):
        functional = sys.modules["torchvision.transforms"].functional
        monkeypatch.setattr(functional, "pad", _tv_pad, raising=False)
        monkeypatch.setattr(functional, "normalize", _tv_normalize, raising=False)
        yield importlib.import_module("ramit_official.ramit")


def _official_model(official, scale: int, **config):
    options = {"dim": 64, "depths": (6, 4, 4, 6), "num_heads": (4, 4, 4, 4), "window_size": 8, "mv_ver": 2,
               "tail_mv": 2, **config}
    return official.RAMiT(target_mode=f"light_x{scale}", img_norm=True, chsa_head_ratio=0.25, hidden_ratio=2.0,
                          exp_factor=1.2, expand_groups=4, norm_layer="ReshapeLayerNorm", **options)


@pytest.mark.parametrize(("scale", "size", "config"), [
    (2, (19, 13), {"dim": 16, "depths": (2, 2, 1, 1), "window_size": 4, "mv_ver": 1, "tail_mv": 1}),
    (4, (9, 20), {"dim": 64, "depths": (2, 1, 1, 2), "window_size": 4, "mv_ver": 2}),
])
def test_matches_official(official, scale: int, size: tuple[int, int], config: dict) -> None:
    ours = litesr.create_model("ramit", scale=scale, **config).eval()
    state = random_state(ours, seed=scale, std=0.1)
    ours.load_state_dict(state)
    reference = _official_model(official, scale, **config).eval()
    reference.load_state_dict(state)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
    assert got.shape == want.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert float((want - want.mean()).abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


def test_parameter_counts(official) -> None:
    """litesr builds exactly the official model's parameters (RAMiT x2: 939,844, the ~940K the paper quotes)."""
    counts = {name: [parameter_count_on_meta(name, s) for s in (2, 3, 4)] for name in ("ramit", "ramit_1")}
    assert counts == {"ramit": [939_844, 948_499, 960_616], "ramit_1": [823_164, 831_819, 843_936]}
    assert sum(p.numel() for p in _official_model(official, 4).parameters()) == counts["ramit"][2]
    assert sum(p.numel() for p in _official_model(official, 2, mv_ver=1).parameters()) == counts["ramit_1"][0]


def test_variants_detect_as_themselves() -> None:
    assert {"ramit", "ramit_1"} <= set(check_variants_detect_as_themselves("ramit"))


def test_detection_round_trip() -> None:
    model = litesr.create_model("ramit", scale=3, dim=32, depths=(2, 1, 1, 3), num_heads=(8, 4, 4, 4),
                                window_size=4, hidden_ratio=1.5, mv_ver=1, tail_mv=1)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("ramit", {
        "scale": 3, "dim": 32, "depths": (2, 1, 1, 3), "num_heads": (8, 4, 4, 4), "chsa_head_ratio": 0.25,
        "window_size": 4, "hidden_ratio": 1.5, "mv_ver": 1, "tail_mv": 1})]


def _official_weights(tmp_path: Path, name: str) -> Path:
    git_dir = MIRRORS / REPO.replace("/", "+") / "repo"
    done = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"HEAD:pretrained/{name}"], capture_output=True)
    if done.returncode != 0 or not done.stdout:
        pytest.skip(f"official weights {name} not found in the {REPO} mirror under {MIRRORS}")
    path = tmp_path / name
    path.write_bytes(done.stdout)
    return path


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_ramit_1_weights_load_by_detection(tmp_path: Path, scale: int) -> None:
    model = litesr.load_model(_official_weights(tmp_path, f"RAMiT-1_X{scale}.pth"))
    assert litesr.describe(model).arch == "ramit" and model.scale == scale
    assert litesr.describe(model).config["mv_ver"] == 1
