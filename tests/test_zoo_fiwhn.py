"""FIWHN: the same outputs as the official per-scale files (24wenjie-li/FIWHN ``model/FIWHNx{2,3,4}.py``, read from
outside the repo) on shared random weights in float64, their parameter counts, detection, small and odd inputs, and
the released checkpoints (``experiments/model_best_x{2,3,4}.pt``, read from the mirror) loading with no flags."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
from test_official_parity import _read_official, official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture
from litesr.errors import ConfigError

REPO = "24wenjie-li/FIWHN"
FILES = {f"model/FIWHNx{s}.py": f"model/FIWHNx{s}.py" for s in (2, 3, 4)} | {"model/common.py": "model/common.py"}
# Counted on the official MODEL of each file (sum of every parameter, as its Model.count_parameters).
OFFICIAL_PARAMS = {2: 705_098, 3: 713_768, 4: 725_906}


@pytest.fixture
def official(tmp_path: Path):
    with official_modules(tmp_path, REPO, FILES):
        yield {s: importlib.import_module(f"model.FIWHNx{s}") for s in (2, 3, 4)}


def _official_model(official, scale: int) -> torch.nn.Module:
    return official[scale].MODEL(None).eval()  # the official constructor ignores its args


@pytest.mark.parametrize(("scale", "size"), [(2, (13, 11)), (3, (9, 14)), (4, (12, 7))])
def test_matches_official(official, scale: int, size: tuple[int, int]) -> None:
    ours = litesr.create_model("fiwhn", scale=scale).eval()
    ours.load_state_dict(random_state(ours, seed=scale, std=0.1))
    reference = _official_model(official, scale)
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 255
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
    assert got.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert float(want.abs().max()) > 1.0
    assert float((got - want).abs().max()) <= 1e-5


def test_shuffle_attention_follows_the_scale_and_matters(official) -> None:
    """x4's file applies the wide units' shuffle attention, x2/x3's do not: switching it off at x4 changes the output
    (so the parity test above checks it), and the option overrides the scale's default."""
    ours = litesr.create_model("fiwhn", scale=4).eval()
    ours.load_state_dict(random_state(ours, seed=7, std=0.1))
    without = litesr.create_model("fiwhn", scale=4, shuffle_attention=False).eval()
    without.load_state_dict(ours.state_dict())
    reference = _official_model(official, 4)
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, 8, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 255
    with torch.no_grad():
        want = reference.double()(x)
        assert float((ours.double()(x) - want).abs().max()) <= 1e-5
        assert float((without.double()(x) - want).abs().max()) > 1e-2
    assert [litesr.create_model("fiwhn", scale=s).MY1.srb1.shuffle_attention for s in (2, 3, 4)] == [False, False, True]


def test_parameter_counts_equal_the_official_code(official) -> None:
    assert {s: parameter_count_on_meta("fiwhn", s) for s in (2, 3, 4)} == OFFICIAL_PARAMS
    for scale, count in OFFICIAL_PARAMS.items():
        assert sum(p.numel() for p in _official_model(official, scale).parameters()) == count


def test_official_state_dicts_are_detected(official) -> None:
    for scale in (2, 3, 4):
        state = _official_model(official, scale).state_dict()
        assert [(m.arch, m.config) for m in detect_architecture(state)] == [("fiwhn", {"scale": scale, "n_feats": 32})]


def test_variants_detect_as_themselves() -> None:
    assert check_variants_detect_as_themselves("fiwhn") == ["fiwhn"]


def test_small_and_odd_inputs() -> None:
    model = litesr.create_model("fiwhn", scale=3, **litesr.registry.get_arch("fiwhn").tiny).eval()
    with torch.no_grad():
        for size in ((1, 1), (1, 5), (3, 2), (7, 9)):  # under 2 x 2 the input is padded (four token chunks)
            out = model(torch.rand(1, 3, *size) * 255)
            assert out.shape == (1, 3, size[0] * 3, size[1] * 3)
            assert torch.isfinite(out).all()


def test_bad_widths_are_refused() -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        litesr.create_model("fiwhn", n_feats=12)
    with pytest.raises(ConfigError, match="heads"):
        litesr.create_model("fiwhn", n_feats=16, num_heads=5)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_official_checkpoints_load_without_flags(official, tmp_path: Path, scale: int) -> None:
    """The released file loads by detection alone, with the scale's attention rule, and gives the official model's
    output on a Set5-sized crop."""
    path = tmp_path / f"model_best_x{scale}.pt"
    path.write_bytes(_read_official(REPO, f"experiments/model_best_x{scale}.pt"))
    ours = litesr.load_model(path)
    assert litesr.describe(ours).arch == "fiwhn" and ours.scale == scale
    assert ours.MY1.srb1.shuffle_attention == (scale == 4)
    reference = _official_model(official, scale)
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    x = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(3)) * 255
    with torch.no_grad():
        assert float((ours(x) - reference(x)).abs().max()) <= 1e-3  # float32, values in [0, 255]


@pytest.mark.slow
def test_official_x4_checkpoint_set5_psnr(tmp_path: Path, datasets_dir: Path) -> None:
    """Set5 x4 (Y, border 4, MATLAB-bicubic LR) of the released x4 file, whole-image forward: 32.308 dB measured with
    `litesr eval` when this was written (the paper's table could not be read; docs/fiwhn.md)."""
    from litesr.evaluate import evaluate

    path = tmp_path / "model_best_x4.pt"
    path.write_bytes(_read_official(REPO, "experiments/model_best_x4.pt"))
    result = evaluate(litesr.load_model(path), "Set5", 4, data_root=datasets_dir)
    psnr = sum(image.psnr for image in result.images) / len(result.images)
    assert abs(psnr - 32.308) < 0.005
