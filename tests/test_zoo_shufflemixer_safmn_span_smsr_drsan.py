"""Zoo: ShuffleMixer, SAFMN family, SPAN, SMSR, DRSAN and the seed network RDESA.

Round trips through safetensors and auto-detection, published parameter counts, SPAN re-parameterisation, SMSR sparse
vs dense-masked inference, the official checkpoints in ../shared/weights, and parity with spandrel where it has the
architecture (SAFMN, SPAN; spandrel 0.4.2 has no ShuffleMixer, SMSR, DRSAN or SAFMN++).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from zoo_parity import full_config

import litesr
from litesr.archs.safmn import SAFMN, SAFMNPPLight
from litesr.archs.smsr import SMSR
from litesr.archs.span import SPAN, Conv3XC
from litesr.registry import count_parameters, get_variant

ARCHS = ("shufflemixer", "safmn", "safmn_ntire23", "safmnpp", "safmnpp_light", "span", "smsr", "drsan", "rdesa")

# (arch, config) pairs: tiny widths, but every structural option the detectors must read back.
ROUND_TRIPS = [
    ("shufflemixer", {"scale": 2, "n_feats": 16, "kernel_size": 3, "n_blocks": 1}),
    ("shufflemixer", {"scale": 3, "n_feats": 16, "kernel_size": 5, "n_blocks": 2, "mlp_ratio": 1.5}),
    ("shufflemixer", {"scale": 4, "n_feats": 24, "kernel_size": 7, "n_blocks": 1}),
    ("safmn", {"scale": 2, "dim": 8, "n_blocks": 1}),
    ("safmn", {"scale": 4, "dim": 12, "n_blocks": 2, "ffn_scale": 1.5}),
    ("safmn_ntire23", {"scale": 3, "dim": 8, "n_blocks": 2}),
    ("safmn_ntire23", {"scale": 4, "dim": 8, "n_blocks": 1, "ffn_scale": 1.5}),
    ("safmnpp", {"scale": 2, "dim": 12, "n_blocks": 1}),
    ("safmnpp", {"scale": 4, "dim": 9, "n_blocks": 2, "ffn_scale": 2}),
    ("safmnpp_light", {"scale": 3, "dim": 8, "n_blocks": 1}),
    ("safmnpp_light", {"scale": 4, "dim": 8, "n_blocks": 2, "ffn_scale": 2}),
    ("span", {"scale": 2, "feature_channels": 8}),
    ("span", {"scale": 4, "feature_channels": 6, "deploy": True}),
    ("smsr", {"scale": 2, "n_feats": 16, "n_blocks": 2, "n_layers": 2}),
    ("smsr", {"scale": 3, "n_feats": 32, "n_blocks": 1, "n_layers": 3}),
    ("drsan", {"scale": 2, "n_feats": 8, "n_blocks": 1, "n_units": 2, "drm_channels": 4}),
    ("drsan", {"scale": 3, "n_feats": 8, "n_blocks": 2, "n_units": 3, "drm_channels": 4}),
    ("drsan", {"scale": 4, "n_feats": 8, "n_blocks": 1, "n_units": 4, "drm_channels": 16}),
    ("rdesa", {"scale": 2, "channels": 16, "num_blocks": 2, "reduction": 4, "esa_channels": 8}),
    ("rdesa", {"scale": 4, "channels": 16, "num_blocks": 3, "reduction": 8, "esa_channels": 4}),
]


def _randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Replace every parameter by small noise, so that a wrong key mapping or layer order changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
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
    x = torch.rand(1, 3, 16, 20) * getattr(model, "input_range", 1.0)
    with torch.no_grad():
        want, got = model(x), loaded(x)
    assert got.shape == (1, 3, 16 * config["scale"], 20 * config["scale"])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6 * float(want.abs().max()))


def test_every_registered_variant_detects_as_itself() -> None:
    """Each named configuration is recognised as its own architecture and only that (x4; the round trips above read
    every scale back)."""
    for name, variant in sorted(litesr.registry.all_variants().items()):
        if variant.arch not in ARCHS:
            continue
        for scale in (4,):
            with torch.device("meta"):
                model = litesr.create_model(name, scale=scale)
            matches = litesr.detect_architecture(model.state_dict())
            assert [m.arch for m in matches] == [variant.arch], (name, scale, matches)
            assert full_config(variant.arch, matches[0].config) == full_config(variant.arch, model.litesr_config)


def _paper_count(model: torch.nn.Module) -> int:
    """Parameters as the papers count them: SMSR's tables leave out the channel-mask logits and frozen mean shifts."""
    skip = {n for n, _ in model.named_parameters()
            if n.endswith("ch_mask") or n.split(".")[0] in ("sub_mean", "add_mean")}
    return sum(p.numel() for n, p in model.named_parameters() if n not in skip)


# Rounding of the published figures: thousands for most tables, 0.01 M for DRSAN and SAFMN-L.
PAPER_ROUNDING = {"drsan": 10_000, "safmn_l": 10_000}
PUBLISHED = [(name, scale, count) for name in ("shufflemixer", "safmn", "safmn_l", "smsr", "drsan_32s", "drsan_32m",
                                               "drsan_32l", "drsan_48s", "drsan_48m")
             for scale, count in sorted(get_variant(name).paper_params.items())]


@pytest.mark.parametrize(("name", "scale", "published"), PUBLISHED)
def test_published_parameter_counts(name: str, scale: int, published: int) -> None:
    with torch.device("meta"):
        model = litesr.create_model(name, scale=scale)
    unit = PAPER_ROUNDING.get(name, PAPER_ROUNDING.get(name.split("_")[0], 1_000))
    assert round(_paper_count(model) / unit) * unit == published


def test_published_counts_were_registered() -> None:
    """The table above is not vacuous: every paper configuration carries its published counts."""
    assert {s for n, s, _ in PUBLISHED if n == "shufflemixer"} == {2, 3, 4}
    assert get_variant("safmn").paper_params == {2: 228_000, 3: 233_000, 4: 240_000}
    assert get_variant("shufflemixer").paper_params == {2: 394_000, 3: 415_000, 4: 411_000}


def test_rdesa_sizes() -> None:
    counts = {name: count_parameters(litesr.create_model(name, scale=4)) for name in ("rdesa_s", "rdesa", "rdesa_l")}
    assert counts["rdesa_s"] < counts["rdesa"] < counts["rdesa_l"]
    assert 270_000 <= counts["rdesa"] <= 330_000  # "near 300K at x4"


def test_shufflemixer_channel_shuffle_matches_einops() -> None:
    einops = pytest.importorskip("einops")
    from litesr.archs.shufflemixer import SplitPointMlp

    mlp = SplitPointMlp(16).eval()
    x = torch.randn(2, 16, 5, 6)
    x1, x2 = x.chunk(2, dim=1)
    with torch.no_grad():
        want = einops.rearrange(torch.cat([mlp.fc(x1), x2], 1), "b (g d) h w -> b (d g) h w", g=8)
        torch.testing.assert_close(mlp(x), want, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["safmn", "safmn_ntire23", "safmnpp", "safmnpp_light", "rdesa"])
def test_inputs_below_the_pooling_minimum_are_padded(arch: str) -> None:
    model = litesr.create_model(arch, scale=2, **litesr.registry.get_arch(arch).tiny).eval()
    assert model.min_size > 5
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)


# --- SPAN re-parameterisation -----------------------------------------------------------------------------------------


def test_span_deploy_form_equals_training_form() -> None:
    model = _randomise(SPAN(scale=2, feature_channels=8), std=0.05).eval()
    deployed = model.to_deploy()
    assert not any(".sk." in k or ".conv." in k for k in deployed.state_dict())
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        want, got = model(x), deployed(x)
    assert float(want.abs().max()) > 1e-2
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_conv3xc_fused_kernel_equals_the_training_branches() -> None:
    """Train mode runs 1x1 -> 3x3 -> 1x1 + skip, eval mode the fused 3x3: equal once the first 1x1 has no bias
    (with a bias, the zero-padded border sees it in train mode only, as in the official code)."""
    layer = _randomise(Conv3XC(5, 7), std=0.3)
    with torch.no_grad():
        layer.conv[0].bias.zero_()
    x = torch.randn(2, 5, 9, 11)
    with torch.no_grad():
        trained = layer.train()(x)
        fused = layer.eval()(x)
    torch.testing.assert_close(fused, trained, rtol=0, atol=1e-5)


# --- SMSR sparse inference --------------------------------------------------------------------------------------------


def test_smsr_sparse_and_dense_masked_inference_agree() -> None:
    torch.manual_seed(3)
    model = _randomise(SMSR(scale=2, n_feats=16, n_blocks=2, n_layers=3), seed=3, std=0.1).eval()
    with torch.no_grad():
        for smm in model.body:  # channel masks with both kinds of channels in every layer
            smm.body.ch_mask.copy_(torch.randn_like(smm.body.ch_mask) * 3)
            dense, sparse = smm.body.hard_channel_masks()
            assert dense.any(dim=1).all() and sparse.any(dim=1).all()
    x = torch.rand(2, 3, 14, 18) * 255
    with torch.no_grad():
        masks = model.body[0].spa_mask(model.head(model.sub_mean(x)))
        keep = (masks[:, 1:] > masks[:, :1]).float().mean()
        assert 0.05 < float(keep) < 0.95  # the spatial mask really splits the pixels
        model.set_inference_mode("sparse")
        sparse_out = model(x)
        model.set_inference_mode("dense")
        dense_out = model(x)
    torch.testing.assert_close(sparse_out, dense_out, rtol=0, atol=1e-3)  # pixels in [0, 255]
    assert float((dense_out - model.add_mean(torch.zeros_like(dense_out))).abs().max()) > 1.0


def test_smsr_training_forward_keeps_the_sparsity_map() -> None:
    model = SMSR(scale=2, n_feats=16, n_blocks=2, n_layers=2).train()
    model.set_tau(0.5)
    out = model(torch.rand(2, 3, 8, 10) * 255)
    assert out.shape == (2, 3, 16, 20)
    # (blocks x batch, channels x layers, H, W), as the official sparsity regulariser receives it
    assert model.sparsity is not None and model.sparsity.shape == (2 * 2, 16 * 2, 8, 10)
    out.mean().backward()
    assert model.body[0].body.ch_mask.grad is not None and model.body[0].spa_mask[0].weight.grad is not None


# --- official checkpoints ---------------------------------------------------------------------------------------------

# file -> (architecture, config, parameter count, the wrapper key the official test reads)
CHECKPOINTS = {
    "SAFMN/team15_SAFMN.pth": ("safmn_ntire23", {"scale": 4, "dim": 36, "n_blocks": 8, "ffn_scale": 2}, 237_000,
                               "params"),
    "SAFMN/team23_safmnpp.pth": ("safmnpp", {"scale": 4, "dim": 36, "n_blocks": 6, "ffn_scale": 1.5}, 211_572,
                                 "params_ema"),
    "SAFMN/light_safmnpp.pth": ("safmnpp_light", {"scale": 4, "dim": 32, "n_blocks": 2, "ffn_scale": 1.5}, 66_176,
                                "params"),
    "SPAN/team38_span_ch28_slim.pth": ("span", {"scale": 4, "feature_channels": 28, "deploy": True}, 150_688, None),
}


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_official_checkpoint_loads_by_detection(name: str, weights_dir: Path) -> None:
    path = weights_dir / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    arch, config, count, key = CHECKPOINTS[name]
    model = litesr.load_model(path)
    assert model.litesr_arch == arch
    assert {k: model.litesr_config[k] for k in config} == config
    assert count_parameters(model) == count
    if key is not None:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        assert all(torch.equal(v, raw[key][k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 64, 64)


def test_every_checkpoint_of_these_architectures_is_covered(weights_dir: Path) -> None:
    """New files under SAFMN/ or SPAN/ must be added to CHECKPOINTS (and so get checked)."""
    found = {str(p.relative_to(weights_dir))
             for folder in ("SAFMN", "SPAN") for p in (weights_dir / folder).glob("*.pth")}
    assert found == set(CHECKPOINTS)


# --- parity with spandrel ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "config"), [
    ("safmn", {"scale": 2, "dim": 8, "n_blocks": 2}),
    ("safmn", {"scale": 4, "dim": 12, "n_blocks": 1, "ffn_scale": 1.5}),
    ("span", {"scale": 2, "feature_channels": 8}),
    ("span", {"scale": 4, "feature_channels": 12}),
])
def test_parity_with_spandrel(arch: str, config: dict, spandrel) -> None:
    model = _randomise(litesr.create_model(arch, **config), seed=1, std=0.05).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reference = spandrel.ModelLoader().load_from_state_dict(state).model.eval()
    assert type(reference).__name__ == {"safmn": "SAFMN", "span": "SPAN"}[arch]
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert float(want.abs().max()) > 1e-3
    assert float((got - want).abs().max()) <= 1e-5


def test_spandrel_has_none_of_the_others(spandrel) -> None:
    """Guards the claim in the module docstring: the other architectures have no spandrel reference to compare with."""
    import spandrel.architectures as archs

    names = {n.lower() for n in dir(archs)}
    assert {"safmn", "span"} <= names
    assert not names & {"shufflemixer", "smsr", "drsan", "safmnpp", "rdesa"}


def test_min_sizes_are_declared() -> None:
    assert SAFMN.min_size == 8 and SAFMNPPLight.min_size == 8
    assert math.isclose(litesr.create_model("smsr", scale=2).input_range, 255.0)
    assert litesr.create_model("smsr", scale=2).pad_multiple == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_official_checkpoint_reproduces_set5(name: str, weights_dir: Path, datasets_dir: Path) -> None:
    """Set5 x4 (MATLAB protocol) within 0.02 dB of the value measured with the official code (inventory.json).

    For light SAFMN++ this also pins the wrapper key: ``params_ema`` gives 30.43 dB against the official 30.40."""
    import json

    from litesr.evaluate import evaluate

    path = weights_dir / name
    measured = json.loads((weights_dir / "inventory.json").read_text())[name]["measured_set5"]["4"]
    result = evaluate(litesr.load_model(path), "Set5", 4, data_root=datasets_dir)
    assert abs(result.psnr - measured[0]) <= 0.02
    assert abs(result.ssim - measured[1]) <= 0.0005
