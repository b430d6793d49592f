"""Zoo, attention / Transformer models: ELAN, Omni-SR, ESRT, HNCT and TCFDN.

Published parameter counts of the paper configurations (on the meta device, each paper's counting convention),
round trips through safetensors and auto-detection, any input size, ELAN's fixed shift kernels, and parity with
spandrel 0.4.2 where it has the architecture (Omni-SR only: spandrel has no ELAN, ESRT, HNCT or TCFDN).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from zoo_parity import full_config

import litesr
from litesr.archs import elan, omnisr
from litesr.errors import ConfigError
from litesr.registry import count_parameters, get_arch, get_variant

ARCHS = ("elan", "omnisr", "esrt", "hnct", "tcfdn")

# (arch, config): small widths, but every structural option the detectors must read back.
ROUND_TRIPS = [
    ("elan", {"scale": 2, "c_elan": 12, "m_elan": 4, "n_share": 1}),
    ("elan", {"scale": 3, "c_elan": 15, "m_elan": 3, "n_share": 0, "r_expand": 1, "rgb_range": 1.0}),
    ("elan", {"scale": 4, "c_elan": 12, "m_elan": 6, "n_share": 2, "conv_type": "low-training-memory"}),
    ("omnisr", {"scale": 2, "num_feat": 8, "res_num": 1, "block_num": 1, "window_size": 4}),
    ("omnisr", {"scale": 3, "num_feat": 12, "res_num": 2, "block_num": 2, "window_size": 8, "bias": False}),
    ("omnisr", {"scale": 4, "num_feat": 8, "res_num": 1, "block_num": 1, "pe": False}),
    ("esrt", {"scale": 2, "n_feats": 8, "n_hpb": 1, "num_heads": 6, "reduction": 4}),
    ("esrt", {"scale": 3, "n_feats": 16, "n_blocks": 2, "n_hpb": 1, "reduction": 8}),
    ("hnct", {"scale": 2, "nf": 8, "num_modules": 2, "num_heads": 2, "window_size": 4, "img_size": 16}),
    ("hnct", {"scale": 4, "nf": 12, "num_modules": 1, "depth": 3, "num_heads": 3, "window_size": 8,
              "mlp_ratio": 1.0, "img_size": 32}),
    ("tcfdn", {"scale": 2, "channels": 8, "num_blocks": 1, "num_stages": 2, "distill_channels": 4, "num_heads": 2,
               "window_size": 4, "esa_channels": 4}),
    ("tcfdn", {"scale": 3, "channels": 12, "num_blocks": 2, "num_stages": 1, "distill_channels": 6, "num_heads": 3,
               "window_size": 8, "ffn_ratio": 1.5, "esa_channels": 8}),
]


def _randomise(model: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    """Replace every trainable parameter by small noise (learned scalars around 1), so that a wrong key mapping or
    layer order changes the output. Frozen tensors (ELAN's shift kernels and mean shifts) keep their values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * std + (1.0 if name.endswith(".scale") else 0.0))
    return model



@pytest.mark.parametrize(("arch", "config"), ROUND_TRIPS, ids=lambda v: v if isinstance(v, str) else None)
def test_round_trip_through_safetensors(arch: str, config: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _randomise(litesr.create_model(arch, **config)).eval()
    path = tmp_path / f"{arch}.safetensors"
    litesr.save_safetensors(model.state_dict(), path)
    loaded = litesr.load_model(path)
    assert loaded.litesr_arch == arch
    assert full_config(arch, loaded.litesr_config) == full_config(arch, config)
    x = torch.rand(1, 3, 18, 21) * model.input_range
    with torch.no_grad():
        want, got = model(x), loaded(x)
    assert got.shape == (1, 3, 18 * config["scale"], 21 * config["scale"])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6 * float(want.abs().max()))


def test_every_registered_variant_detects_as_itself() -> None:
    """Each named configuration is recognised as its own architecture and only that (x3: the odd upsampler)."""
    names = [n for n, v in sorted(litesr.registry.all_variants().items()) if v.arch in ARCHS]
    assert {"elan", "elan_light", "elan_full", "omnisr", "esrt", "hnct", "tcfdn"} <= set(names)
    for name in names:
        arch = get_variant(name).arch
        with torch.device("meta"):
            model = litesr.create_model(name, scale=3)
        matches = litesr.detect_architecture(model.state_dict())
        assert [m.arch for m in matches] == [arch], (name, matches)
        assert full_config(arch, matches[0].config) == full_config(arch, model.litesr_config)


# --- published parameter counts ---------------------------------------------------------------------------------------


def _floor_thousands(n: int) -> int:
    return n // 1000 * 1000


def _round_thousands(n: int) -> int:
    return round(n / 1000) * 1000


# How each paper counts, and how its table rounds: ELAN counts trainable tensors (not the frozen shift kernels);
# Omni-SR's thop profile skips embeddings, custom norms and non-leaf parameters; the HNCT README and the ESRT figure
# truncate to thousands.
PAPER_COUNTING: dict[str, tuple[Callable[[nn.Module], int], Callable[[int], int]]] = {
    "elan": (elan.paper_parameter_count, _round_thousands),
    "omnisr": (omnisr.paper_parameter_count, _round_thousands),
    "hnct": (count_parameters, _floor_thousands),
    "esrt": (count_parameters, _floor_thousands),
}
PUBLISHED = [(name, scale, count) for name in ("elan_light", "omnisr", "hnct", "esrt")
             for scale, count in sorted(get_variant(name).paper_params.items())]


@pytest.mark.parametrize(("name", "scale", "published"), PUBLISHED)
def test_published_parameter_counts(name: str, scale: int, published: int) -> None:
    with torch.device("meta"):
        model = litesr.create_model(name, scale=scale)
    count, rounding = PAPER_COUNTING[get_variant(name).arch]
    assert rounding(count(model)) == published


def test_published_counts_were_registered() -> None:
    """The table above is not vacuous, and the exact counts are the ones the module docstrings state."""
    assert len(PUBLISHED) == 10
    exact = {}
    for name, scale in (("elan_light", 2), ("omnisr", 2), ("omnisr", 4), ("hnct", 4), ("esrt", 4)):
        with torch.device("meta"):
            exact[name, scale] = count_parameters(litesr.create_model(name, scale=scale))
    assert exact == {("elan_light", 2): 620_916, ("omnisr", 2): 784_604, ("omnisr", 4): 805_376,
                     ("hnct", 4): 372_848, ("esrt", 4): 751_767}


def test_elan_light_621k_counts_the_frozen_shift_kernels() -> None:
    """582K (the ELAN table) are the trainable tensors; 621K (quoted by later papers) is everything in parameters()."""
    with torch.device("meta"):
        model = litesr.create_model("elan_light", scale=2)
    frozen = sum(p.numel() for n, p in model.named_parameters() if n.endswith("shift_conv.weight"))
    assert elan.paper_parameter_count(model) == 582_012
    assert frozen == 38_880
    assert _round_thousands(count_parameters(model)) == 621_000


# --- any input size ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_odd_sizes(arch: str) -> None:
    model = _randomise(litesr.create_model(arch, scale=2, **get_arch(arch).tiny)).eval()
    for h, w in ((1, 1), (7, 13), (17, 9), (33, 20)):
        with torch.no_grad():
            out = model(torch.rand(1, 3, h, w) * model.input_range)
        assert out.shape == (1, 3, 2 * h, 2 * w), (arch, h, w)
        assert torch.isfinite(out).all(), (arch, h, w)


@pytest.mark.parametrize("arch", ARCHS)
def test_contract(arch: str) -> None:
    """Each model declares its input range and colour space and pads internally (pad_multiple 1)."""
    model = litesr.create_model(arch, scale=2, **get_arch(arch).tiny)
    assert model.pad_multiple == 1 and model.color_space == "rgb"
    assert model.input_range == (255.0 if arch == "elan" else 1.0)


def test_invalid_configs_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="multiple of 3"):
        litesr.create_model("elan", scale=2, c_elan=16)
    with pytest.raises(ConfigError, match="multiple of 1 \\+ n_share"):
        litesr.create_model("elan", scale=2, c_elan=12, m_elan=3, n_share=1)
    with pytest.raises(ConfigError, match="heads"):
        litesr.create_model("esrt", scale=2, n_feats=8, num_heads=8)
    with pytest.raises(ConfigError, match="num_heads"):
        litesr.create_model("hnct", scale=2, nf=10, num_heads=4)


# --- ELAN shift convolution ------------------------------------------------------------------------------------------


def test_elan_shift_groups_move_pixels() -> None:
    """The fixed kernel moves the five channel groups left, right, up, down and not at all (zeros enter)."""
    shift = elan.ShiftConvDepthwise(10, 10).eval()
    with torch.no_grad():
        shift.conv1x1.weight.copy_(torch.eye(10).view(10, 10, 1, 1))
        shift.conv1x1.bias.zero_()
        x = torch.rand(1, 10, 6, 7)
        y = shift(x)
    pad = torch.nn.functional.pad(x, (1, 1, 1, 1))
    want = torch.cat([pad[:, 0:2, 1:-1, 2:], pad[:, 2:4, 1:-1, :-2], pad[:, 4:6, 2:, 1:-1], pad[:, 6:8, :-2, 1:-1],
                      x[:, 8:]], dim=1)
    torch.testing.assert_close(y, want, rtol=0, atol=0)


def test_elan_fixed_tensors_are_recomputed_on_load() -> None:
    """A checkpoint whose frozen shift kernel was altered (cast, edited) cannot change the model's kernel."""
    model = litesr.create_model("elan", scale=2, **get_arch("elan").tiny)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    key = "body.0.modules_lfe.lfe_0.conv0.shift_conv.weight"
    sd[key].fill_(0.5)
    fresh = litesr.create_model("elan", scale=2, **get_arch("elan").tiny)
    fresh.load_state_dict(sd, strict=True)
    torch.testing.assert_close(fresh.state_dict()[key], model.state_dict()[key], rtol=0, atol=0)


# --- ESRT attention on large images ----------------------------------------------------------------------------------


def test_esrt_large_chunks_use_bounded_memory_attention(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks above the threshold go through the fused kernel; the result equals the official explicit softmax."""
    from litesr.archs import esrt

    torch.manual_seed(0)
    attention = esrt.EMHA(72, 6).eval()
    tokens = torch.randn(1, 4 * (esrt.FUSED_ATTENTION_TOKENS + 100), 72)
    with torch.no_grad():
        fused = attention(tokens)
        monkeypatch.setattr(esrt, "FUSED_ATTENTION_TOKENS", 10**9)
        explicit = attention(tokens)
    torch.testing.assert_close(fused, explicit, rtol=0, atol=1e-5)


# --- outputs of the official code -----------------------------------------------------------------------------------

# Outputs of the official code (xindongzhang/ELAN, lhjthp/HNCT, luissen/ESRT at the commits the module docstrings
# describe) for the weights ``_randomise(model, seed=11, std)`` and the input ``torch.rand(1, 3, h, w)`` (generator
# seed 7, times the input range): sum, sum of squares, and the first pixel's three channels. Measured once by loading
# the same state dict into the official modules (litesr matched them to 0.0); spandrel has none of these three.
OFFICIAL_OUTPUTS = [
    ("elan", {"scale": 2, "c_elan": 12, "m_elan": 4, "n_share": 1}, 0.1, (13, 19),
     (351780.915443, 59065564.729621, (105.901413, -33.792007, 30.19323))),
    ("hnct", {"scale": 2}, 0.1, (17, 15), (-443.127749, 9567.051845, (0.215638, -0.275783, -1.025757))),
    ("esrt", {"scale": 2}, 0.05, (10, 9), (153.867892, 576.543738, (-0.111655, 0.162925, 0.005233))),
]


@pytest.mark.parametrize(("arch", "config", "std", "size", "expected"), OFFICIAL_OUTPUTS,
                         ids=[row[0] for row in OFFICIAL_OUTPUTS])
def test_outputs_of_the_official_code(arch: str, config: dict, std: float, size: tuple, expected: tuple) -> None:
    model = _randomise(litesr.create_model(arch, **config), seed=11, std=std).eval()
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(7)) * model.input_range
    with torch.no_grad():
        out = model(x).double()
    total, squares, first = expected
    assert float(out.sum()) == pytest.approx(total, rel=1e-4, abs=1e-3)
    assert float((out * out).sum()) == pytest.approx(squares, rel=1e-4)
    assert [float(v) for v in out[0, :, 0, 0]] == pytest.approx(first, rel=1e-4, abs=1e-4)


# --- spandrel parity -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [
    {"scale": 2, "num_feat": 8, "res_num": 1, "block_num": 1, "window_size": 4},
    {"scale": 3, "num_feat": 8, "res_num": 2, "block_num": 2, "window_size": 8},
])
def test_omnisr_matches_spandrel(spandrel, config: dict) -> None:
    """Same random weights in both; an input that is not a multiple of the window (19 x 21)."""
    from spandrel.architectures.OmniSR import OmniSRArch

    ours = _randomise(litesr.create_model("omnisr", **config), seed=3).eval()
    reference = OmniSRArch().load(dict(ours.state_dict())).model.eval()
    x = torch.rand(1, 3, 19, 21, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want, got = reference(x), ours(x)
    assert got.shape == want.shape == (1, 3, 19 * config["scale"], 21 * config["scale"])
    assert (got - want).abs().max() <= 1e-5


def test_thop_counters_in_an_omnisr_checkpoint_are_ignored(tmp_path: Path) -> None:
    """Checkpoints saved after profiling with thop carry ``total_ops``/``total_params`` buffers in every module (the
    released Omni-SR files do); detection and loading must not trip on them."""
    model = litesr.create_model("omnisr", scale=2, num_feat=8, res_num=1, block_num=1, window_size=4)
    state = dict(model.state_dict())
    state["total_ops"] = torch.zeros(1, dtype=torch.float64)
    state["total_params"] = torch.zeros(1, dtype=torch.float64)
    for name, _ in model.named_modules():
        if name:
            state[f"{name}.total_ops"] = torch.zeros(1, dtype=torch.float64)
            state[f"{name}.total_params"] = torch.zeros(1, dtype=torch.float64)
    path = tmp_path / "omnisr_thop.pth"
    torch.save(state, path)
    loaded = litesr.load_model(path)
    assert loaded.litesr_arch == "omnisr"
    assert {k: loaded.litesr_config[k] for k in model.litesr_config} == model.litesr_config
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model.eval()(x))
