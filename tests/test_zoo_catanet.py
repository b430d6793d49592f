"""CATANet: the same outputs as the official code (EquationWalker/CATANet, read from outside the repo) on shared
random weights in float64, with centres taken from the input (untrained model) and with learned centres, at sizes
whose token count is not a multiple of the group size; the parameter count of the official configuration;
detection of the variant; the training step that learns the centres."""

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
from litesr.detect import detect_architecture

REPO = "EquationWalker/CATANet"
FILES = {"basicsr/archs/catanet_arch.py": "catanet_official.py"}
SMALL = dict(dim=16, block_num=2, qk_dim=8, mlp_dim=24, heads=2, num_tokens=(4, 8), group_sizes=(16, 8),
             patch_sizes=(8, 12))


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with official_modules(tmp_path, REPO, FILES):
        monkeypatch.setitem(sys.modules, "basicsr.archs", types.ModuleType("basicsr.archs"))
        util = types.ModuleType("basicsr.archs.arch_util")
        util.trunc_normal_ = nn.init.trunc_normal_
        monkeypatch.setitem(sys.modules, "basicsr.archs.arch_util", util)
        yield importlib.import_module("catanet_official")


def _official_model(official, scale: int, config: dict, monkeypatch: pytest.MonkeyPatch):
    """The official class with its fixed ``setting`` replaced by ``config`` (it reads no constructor width)."""
    n = config["block_num"]
    monkeypatch.setattr(official.CATANet, "setting", dict(
        dim=config["dim"], block_num=n, qk_dim=config["qk_dim"], mlp_dim=config["mlp_dim"], heads=config["heads"],
        patch_size=list(config["patch_sizes"])))
    return official.CATANet(n_iters=[5] * n, num_tokens=list(config["num_tokens"]),
                            group_size=list(config["group_sizes"]), upscale=scale)


@pytest.mark.parametrize(("scale", "size", "learned"), [(2, (13, 19), False), (3, (12, 12), True),
                                                       (4, (14, 17), True)])
def test_matches_official(official, monkeypatch: pytest.MonkeyPatch, scale: int, size: tuple[int, int],
                          learned: bool) -> None:
    ours = litesr.create_model("catanet", scale=scale, **SMALL).eval()
    state = random_state(ours, seed=scale, std=0.2)
    if learned:
        for i in range(SMALL["block_num"]):
            state[f"blocks.{i}.0.means"] = torch.randn(state[f"blocks.{i}.0.means"].shape)
            state[f"blocks.{i}.0.initted"] = torch.tensor(True)
    ours.load_state_dict(state)
    reference = _official_model(official, scale, SMALL, monkeypatch).eval()
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
        base = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    assert float((want - base).abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


def test_training_step_learns_the_centres_as_official(official, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train mode: k-means refinement, first-step copy of the centres into ``means`` and ``initted``, same output."""
    ours = litesr.create_model("catanet", scale=2, **SMALL)
    ours.load_state_dict(random_state(ours, seed=7, std=0.2))
    reference = _official_model(official, 2, SMALL, monkeypatch)
    reference.load_state_dict(ours.state_dict())
    ours, reference = ours.double().train(), reference.double().train()
    x = torch.rand(1, 3, 12, 13, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for _ in range(2):  # the first step initialises the centres, the second takes the EMA branch
        with torch.no_grad():
            got, want = ours(x), reference(x)
        assert float((got - want).abs().max()) <= 1e-5
    assert bool(ours.blocks[0][0].initted)
    for key, value in reference.state_dict().items():
        assert torch.allclose(ours.state_dict()[key].to(value.dtype), value, atol=1e-9), key


def test_parameter_count(official, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = [parameter_count_on_meta("catanet", s) for s in (2, 3, 4)]
    print(counts)
    for scale, count in zip((2, 3, 4), counts):
        with torch.device("meta"):
            monkeypatch.undo()
            reference = official.CATANet(upscale=scale)
        assert sum(p.numel() for p in reference.parameters()) == count, scale


def test_variants_detect_as_themselves() -> None:
    assert "catanet" in check_variants_detect_as_themselves("catanet")


def test_detection_round_trip() -> None:
    model = litesr.create_model("catanet", scale=3, dim=24, block_num=3, qk_dim=12, mlp_dim=32,
                                num_tokens=(4, 8, 16))
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("catanet", {"scale": 3, "dim": 24, "block_num": 3,
                                                                  "qk_dim": 12, "mlp_dim": 32,
                                                                  "num_tokens": (4, 8, 16)})]


def test_small_inputs_are_padded_for_the_patches() -> None:
    model = litesr.create_model("catanet", scale=2, **litesr.registry.get_arch("catanet").tiny).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)


def test_token_counts_just_over_a_group_run(official, monkeypatch: pytest.MonkeyPatch) -> None:
    """17 x 17 = 289 tokens with groups of 256: the official code fails (its key slice starts before the first
    token); litesr runs them as one group."""
    model = litesr.create_model("catanet", scale=2, **litesr.registry.get_arch("catanet").tiny).eval()
    reference = _official_model(official, 2, {**litesr.registry.get_arch("catanet").tiny, "heads": 4,
                                              "patch_sizes": (16,), "group_sizes": (256,)}, monkeypatch).eval()
    reference.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 17, 17)
    with torch.no_grad():
        with pytest.raises(RuntimeError):
            reference(x)
        out = model(x)
    assert out.shape == (1, 3, 34, 34) and torch.isfinite(out).all()
