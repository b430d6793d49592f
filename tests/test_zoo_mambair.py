"""MambaIR-light: the same outputs as the official code (csguoh/MambaIR, read from outside the repo) on shared random
weights, the official and paper parameter counts, and litesr's chunked selective scan against the sequential
recurrence (mamba_ssm's ``selective_scan_ref`` semantics), values and gradients.

The official module imports mamba_ssm's CUDA selective scan and timm; both are stubbed here: ``selective_scan_fn``
by the step-by-step reference below (written from ``selective_scan_ref``), so the official network runs on the CPU.
The official SS2D casts the scan inputs to float32, so the comparison runs in float32.
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
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs._selective_scan import selective_scan
from litesr.detect import detect_architecture

REPO = "csguoh/MambaIR"
FILES = {"basicsr/archs/mambair_arch.py": "mambair_official.py"}


def sequential_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,  # noqa: ANN001
                    return_last_state=False):  # noqa: ANN001, ANN201 - mamba_ssm's signature
    """One token at a time, as mamba_ssm's selective_scan_ref (real A, B/C (batch, groups, N, L))."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    channels = u.shape[1]
    B = B.repeat_interleave(channels // B.shape[1], dim=1)
    C = C.repeat_interleave(channels // C.shape[1], dim=1)
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    drive = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    state = u.new_zeros(u.shape[0], channels, A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        state = decay[:, :, t] * state + drive[:, :, t]
        ys.append(torch.einsum("bdn,bdn->bd", state, C[:, :, :, t]))
    y = torch.stack(ys, dim=2)
    return y if D is None else y + u * D[:, None]


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    timm_layers = types.ModuleType("timm.models.layers")
    timm_layers.DropPath = lambda p=0.0: torch.nn.Identity()  # eval mode: stochastic depth is the identity
    timm_layers.to_2tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    timm_layers.trunc_normal_ = torch.nn.init.trunc_normal_
    interface = types.ModuleType("mamba_ssm.ops.selective_scan_interface")
    interface.selective_scan_fn = interface.selective_scan_ref = sequential_scan
    for name in ("timm", "timm.models", "mamba_ssm", "mamba_ssm.ops"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "timm.models.layers", timm_layers)
    monkeypatch.setitem(sys.modules, "mamba_ssm.ops.selective_scan_interface", interface)
    with official_modules(tmp_path, REPO, FILES):
        yield importlib.import_module("mambair_official")


def _random_model(scale: int, upsampler: str, seed: int) -> torch.nn.Module:
    ours = litesr.create_model("mambair", scale=scale, embed_dim=30, depths=(2, 1), d_state=4, mlp_ratio=1.2,
                               upsampler=upsampler).eval()
    state = random_state(ours, seed=seed, std=0.05)
    for key in state:  # scales and norms near one, as trained ones are (a zero skip would hide the skip path)
        if key.endswith(("skip_scale", "skip_scale2", "ln_1.weight", "ln_2.weight", "norm.weight")):
            state[key] = state[key] + 1.0
    ours.load_state_dict(state)
    return ours


@pytest.mark.parametrize(("scale", "upsampler", "size"),
                         [(2, "pixelshuffledirect", (7, 9)), (3, "pixelshuffledirect", (10, 5)),
                          (4, "pixelshuffledirect", (8, 8)), (2, "pixelshuffle", (5, 11))])
def test_matches_official(official, scale: int, upsampler: str, size: tuple[int, int]) -> None:
    ours = _random_model(scale, upsampler, seed=scale)
    reference = official.MambaIR(upscale=scale, img_size=64, embed_dim=30, depths=(2, 1), d_state=4, mlp_ratio=1.2,
                                 upsampler=upsampler, resi_connection="1conv").eval()
    reference.load_state_dict(ours.state_dict())  # strict: the same names and shapes
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = reference(x), ours(x)
    assert got.shape == want.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert float((want - want.mean()).abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


def test_parameter_counts(official) -> None:
    """Paper (arXiv v3) lightweight table: 905K / 913K / 924K; the official code builds the same counts."""
    counts = [parameter_count_on_meta("mambair_light", s) for s in (2, 3, 4)]
    assert counts == [905_016, 913_131, 924_492]
    assert {s: round(n, -3) for s, n in zip((2, 3, 4), counts)} == litesr.registry.get_variant(
        "mambair_light").paper_params
    reference = official.MambaIR(upscale=4, img_size=64, embed_dim=60, depths=(6, 6, 6, 6), d_state=10,
                                 mlp_ratio=1.2, upsampler="pixelshuffledirect", resi_connection="1conv")
    assert sum(p.numel() for p in reference.parameters()) == counts[2]


def _scan_inputs(length: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    batch, groups, per_group, states = 2, 4, 3, 5
    channels = groups * per_group

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    A = -torch.rand(channels, states, generator=g, dtype=torch.float64) * 4
    return (rand(batch, channels, length), rand(batch, channels, length), A, rand(batch, groups, states, length),
            rand(batch, groups, states, length), rand(channels), rand(channels))


@pytest.mark.parametrize("length", [1, 31, 33, 1100])  # one chunk, chunk edges, two levels of chunk summaries
@pytest.mark.parametrize("max_elements", [1 << 22, 2000])  # one block, or many blocks carrying the state
def test_chunked_scan_equals_the_sequential_recurrence(length: int, max_elements: int) -> None:
    u, delta, A, B, C, D, bias = _scan_inputs(length)
    want = sequential_scan(u, delta, A, B, C, D, delta_bias=bias, delta_softplus=True)
    got = selective_scan(u, delta, A, B, C, D, delta_bias=bias, delta_softplus=True, max_elements=max_elements)
    assert float((got - want).abs().max()) <= 1e-10


def test_chunked_scan_gradients_equal_the_sequential_ones() -> None:
    inputs = [t.requires_grad_() for t in _scan_inputs(70, seed=3)]
    grads = []
    for scan in (sequential_scan, lambda *a, **k: selective_scan(*a, **k, max_elements=600)):
        out = scan(*inputs[:6], delta_bias=inputs[6], delta_softplus=True)
        grads.append(torch.autograd.grad(out.square().sum(), inputs))
    for want, got in zip(*grads):
        assert float((want - got).abs().max()) <= 1e-8


def test_variants_detect_as_themselves() -> None:
    assert "mambair_light" in check_variants_detect_as_themselves("mambair")


def test_detection_round_trip_of_the_classical_form() -> None:
    model = litesr.create_model("mambair", scale=2, embed_dim=36, depths=(2, 3), d_state=6, mlp_ratio=2,
                                upsampler="pixelshuffle")
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("mambair", {
        "scale": 2, "in_chans": 3, "embed_dim": 36, "depths": (2, 3), "d_state": 6, "mlp_ratio": 2,
        "upsampler": "pixelshuffle", "patch_norm": True, "resi_connection": "1conv"})]


def test_too_narrow_for_the_channel_attention_is_refused() -> None:
    with pytest.raises(litesr.errors.ConfigError, match="embed_dim 16"):
        litesr.create_model("mambair", embed_dim=16)
