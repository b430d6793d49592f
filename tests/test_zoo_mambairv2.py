"""MambaIRv2 (light and classical forms): the same outputs as the official code (csguoh/MambaIR, read from outside
the repo) on shared random weights, at inference and in training; the official and paper parameter counts of
MambaIRv2-light; detection that claims neither MambaIR nor ATD files; any input size.

The official modules import mamba_ssm's CUDA selective scan and basicsr's arch_util; both are stubbed here:
``selective_scan_fn`` by the step-by-step reference of tests/test_zoo_mambair.py (written from mamba_ssm's
``selective_scan_ref``), so the official network runs on the CPU. The official scan casts to float32, so the
comparison runs in float32. The official inference draws its routing with Gumbel noise
(``F.gumbel_softmax(hard=True)``); litesr's inference takes the most likely class. The inference comparison
therefore runs the official code with the noise removed (the hard one-hot of the arg-max), and the training
comparison runs both, unpatched, from the same random seed.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_official_parity import official_modules
from test_zoo_mambair import sequential_scan
from zoo_parity import (
    check_variants_detect_as_themselves,
    full_config,
    meta_model,
    parameter_count_on_meta,
    random_state,
)

import litesr
from litesr.detect import detect_architecture
from litesr.registry import get_arch

REPO = "csguoh/MambaIR"
FILES = {"basicsr/archs/mambairv2light_arch.py": "mambairv2light_official.py",
         "basicsr/archs/mambairv2_arch.py": "mambairv2_official.py"}
SMALL = dict(embed_dim=24, depths=(2, 1), num_heads=(2, 3), window_size=4, d_state=4, inner_rank=8, num_tokens=6)
RENAMES = {"scale": "upscale"}  # litesr option -> official constructor argument
TOLERANCE = 1e-5


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    util = types.ModuleType("basicsr.archs.arch_util")
    util.to_2tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    util.trunc_normal_ = torch.nn.init.trunc_normal_
    interface = types.ModuleType("mamba_ssm.ops.selective_scan_interface")
    interface.selective_scan_fn = interface.selective_scan_ref = sequential_scan
    for name in ("mamba_ssm", "mamba_ssm.ops"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "mamba_ssm.ops.selective_scan_interface", interface)
    with official_modules(tmp_path, REPO, FILES):
        monkeypatch.setitem(sys.modules, "basicsr.archs", types.ModuleType("basicsr.archs"))
        monkeypatch.setitem(sys.modules, "basicsr.archs.arch_util", util)
        yield types.SimpleNamespace(light=importlib.import_module("mambairv2light_official"),
                                    classical=importlib.import_module("mambairv2_official"))


def _noise_free_gumbel(logits: torch.Tensor, tau: float = 1.0, hard: bool = False, dim: int = -1) -> torch.Tensor:
    """``F.gumbel_softmax(hard=True)`` without its noise: the one-hot of the arg-max (litesr's inference rule)."""
    assert hard
    return F.one_hot(logits.argmax(dim), logits.shape[dim]).to(logits.dtype)


def _pair(official, config: dict, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """litesr's model with random weights (scales and norms near one, as trained ones are) and the official one
    loaded strictly from its state dict."""
    ours = litesr.create_model("mambairv2", **config)
    state = random_state(ours, seed=seed, std=0.05)
    for key in state:  # a layer scale near 1e-4 (its initial value) would hide the block's outer skip
        if key.endswith(("scale1", "scale2", "norm1.weight", "norm2.weight", "norm3.weight", "norm4.weight",
                         "norm.weight", "out_norm.weight")):
            state[key] = state[key] + 1.0
        if key.endswith("embeddingB.weight"):  # a prompt large enough to matter next to C
            state[key] = state[key] * 20
    ours.load_state_dict(state)
    module = official.light.MambaIRv2Light if config.get("ffn", "gated") == "gated" else official.classical.MambaIRv2
    args = {RENAMES.get(k, k): v for k, v in full_config("mambairv2", config).items() if k != "ffn"}
    reference = module(img_size=64, **args)
    reference.load_state_dict(ours.state_dict())  # strict: the same names and shapes
    return ours, reference


CASES = [
    (dict(scale=2, **SMALL), (9, 13)),
    (dict(scale=3, **{**SMALL, "window_size": 8, "mlp_ratio": 1.5}), (10, 7)),
    (dict(scale=4, **SMALL, qkv_bias=False, resi_connection="3conv"), (8, 8)),
    (dict(scale=2, **SMALL, ffn="conv", convffn_kernel_size=3, mlp_ratio=2, upsampler="pixelshuffle"), (7, 11)),
    (dict(scale=1, **SMALL, ffn="conv", upsampler="", patch_norm=False), (6, 9)),
]


@pytest.mark.parametrize(("config", "size"), CASES,
                         ids=lambda v: f"x{v['scale']}-{v.get('ffn', 'gated')}" if isinstance(v, dict) else str(v))
def test_inference_matches_official(official, monkeypatch: pytest.MonkeyPatch, config: dict,
                                    size: tuple[int, int]) -> None:
    monkeypatch.setattr(official.light.F, "gumbel_softmax", _noise_free_gumbel)
    ours, reference = (m.eval() for m in _pair(official, config, seed=config["scale"]))
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = reference(x), ours(x)
    assert got.shape == want.shape == (1, 3, size[0] * config["scale"], size[1] * config["scale"])
    assert float((want - want.mean()).abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= TOLERANCE * max(1.0, float(want.abs().max()))


def test_training_forward_matches_official(official) -> None:
    """Training mode, Gumbel routing on both sides: from the same seed, the same draws and the same outputs."""
    ours, reference = (m.train() for m in _pair(official, dict(scale=2, **SMALL), seed=5))
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(7)
    want = reference(x)
    torch.manual_seed(7)
    got = ours(x)
    assert float((got - want).detach().abs().max()) <= TOLERANCE
    got.square().mean().backward()  # the straight-through routing trains the router and the prompt tables
    router = ours.layers[0].residual_group.layers[0].assm
    assert float(router.route[0].weight.grad.abs().max()) > 0
    assert float(router.embeddingB.weight.grad.abs().max()) > 0


def test_routing_is_visible_to_the_parity_check(official) -> None:
    """The official inference with its Gumbel noise moves the output far beyond the tolerance: the inference
    comparison above does see the routing (class sort and prompt), it is not hidden by small weights."""
    ours, reference = (m.eval() for m in _pair(official, dict(scale=2, **SMALL), seed=2))
    x = torch.rand(1, 3, 9, 13, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    with torch.no_grad():
        noisy, got = reference(x), ours(x)
    assert float((noisy - got).abs().max()) > 1e-3


def test_inference_is_deterministic() -> None:
    model = litesr.create_model("mambairv2", scale=2, **SMALL).eval()
    model.load_state_dict(random_state(model, seed=3))
    x = torch.rand(1, 3, 9, 10, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_parameter_counts(official) -> None:
    """Paper Table 3 (README assets/lightSR.png): 774K / 781K / 790K; the official code builds the same counts."""
    counts = {s: parameter_count_on_meta("mambairv2_light", s) for s in (2, 3, 4)}
    assert counts == {2: 774_092, 3: 780_587, 4: 789_680}
    assert {s: round(n, -3) for s, n in counts.items()} == litesr.registry.get_variant(
        "mambairv2_light").paper_params
    for scale in (2, 4):
        with torch.device("meta"):  # no memory, no initialisation: only the shapes count
            reference = official.light.MambaIRv2Light(
                upscale=scale, img_size=64, embed_dim=48, d_state=8, depths=[5, 5, 5, 5], num_heads=[4, 4, 4, 4],
                window_size=16, inner_rank=32, num_tokens=64, convffn_kernel_size=5, mlp_ratio=1.0,
                upsampler="pixelshuffledirect", resi_connection="1conv")
        assert sum(p.numel() for p in reference.parameters()) == counts[scale]


CLASSICAL_COUNTS = {"mambairv2_small": {2: 9_621_935, 3: 9_806_575, 4: 9_769_647},
                    "mambairv2_base": {2: 22_903_001, 3: 23_087_641, 4: 23_050_713},
                    "mambairv2_large": {2: 34_090_523, 3: 34_275_163, 4: 34_238_235}}


def test_classical_parameter_counts(official) -> None:
    """Paper Table 4: S 9.6M / 9.8M / 9.8M and B 22.9M / 23.1M / 23.1M at x2 / x3 / x4, as built; the table prints
    34.2M for L at all three, the code builds 34.09M / 34.28M / 34.24M. The official code builds S x3 the same."""
    counts = {name: {s: parameter_count_on_meta(name, s) for s in (2, 3, 4)} for name in CLASSICAL_COUNTS}
    assert counts == CLASSICAL_COUNTS
    for name in ("mambairv2_small", "mambairv2_base"):
        assert {s: round(n, -5) for s, n in counts[name].items()} == litesr.registry.get_variant(name).paper_params
    with torch.device("meta"):
        reference = official.classical.MambaIRv2(
            upscale=3, img_size=64, embed_dim=132, d_state=16, depths=[4] * 6, num_heads=[4] * 6, window_size=16,
            inner_rank=64, num_tokens=128, convffn_kernel_size=5, mlp_ratio=2.0, upsampler="pixelshuffle",
            resi_connection="1conv")
    assert sum(p.numel() for p in reference.parameters()) == counts["mambairv2_small"][3]


def test_variants_detect_as_themselves() -> None:
    assert check_variants_detect_as_themselves("mambairv2") == [
        "mambairv2", "mambairv2_base", "mambairv2_large", "mambairv2_light", "mambairv2_small"]


def test_claims_neither_mambair_nor_atd_files() -> None:
    detect = get_arch("mambairv2").detect
    for name in ("mambair_light", "atd_light"):
        assert detect(meta_model(name, 4).state_dict()) is None, name


def test_detection_round_trip_of_the_classical_form() -> None:
    config = dict(scale=3, **SMALL, ffn="conv", convffn_kernel_size=3, mlp_ratio=2, upsampler="pixelshuffle")
    matches = detect_architecture(litesr.create_model("mambairv2", **config).state_dict())
    assert [m.arch for m in matches] == ["mambairv2"]
    assert {k: matches[0].config[k] for k in config} == {**config, "depths": (2, 1), "num_heads": (2, 3)}


@pytest.mark.parametrize("size", [(3, 5), (17, 2)])
def test_inputs_smaller_than_half_a_window(size: tuple[int, int]) -> None:
    """The official padding mirrors once and fails below half a window; litesr mirrors again."""
    model = litesr.create_model("mambairv2", scale=2, **{**SMALL, "window_size": 16}).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert out.shape == (1, 3, size[0] * 2, size[1] * 2)
    assert torch.isfinite(out).all()
