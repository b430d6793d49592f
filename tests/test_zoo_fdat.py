"""FDAT: parity with spandrel 0.4.2 on random weights for every UniUpsample-v3 head (incl. DySample, LDA-AQU and
the pixel-attention head), the unshuffled x1/x2 form, gray input, at sizes that are not window multiples; detection
of the five presets; their parameter counts (a community architecture: no paper figure); any input size."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta

import litesr

BASE = dict(embed_dim=16, num_groups=2, depth_per_group=1, num_heads=2, window_size=4, mid_dim=16)
HEADS = [(u, s) for u in ("transpose+conv", "pixelshuffle", "pixelshuffledirect", "nearest+conv", "lda", "pa_up")
         for s in (2, 3, 4)]
OTHER = [
    dict(BASE, scale=2, unshuffle_mod=True, upsampler_type="pixelshuffle"),
    dict(BASE, scale=1, unshuffle_mod=True, upsampler_type="transpose+conv"),
    dict(BASE, scale=1, upsampler_type="conv"),
    dict(BASE, scale=3, num_in_ch=1, num_out_ch=1, mid_dim=24, upsampler_type="lda", ffn_expansion_ratio=1.5,
         aim_reduction_ratio=4, window_size=8),
]


@pytest.mark.parametrize(("upsampler", "scale"), HEADS, ids=lambda v: str(v))
def test_fdat_heads_match_spandrel(spandrel, upsampler: str, scale: int) -> None:
    check_parity(spandrel, "fdat", dict(BASE, scale=scale, upsampler_type=upsampler), (13, 19), renames={},
                 spandrel_id="FDAT")


@pytest.mark.parametrize("config", OTHER, ids=["unshuffle-x2", "unshuffle-x1", "conv-x1", "gray-lda-mid24"])
def test_fdat_forms_match_spandrel(spandrel, config: dict) -> None:
    check_parity(spandrel, "fdat", config, (13, 19), renames={}, spandrel_id="FDAT")


class _TorchWithoutPinnedMemory:
    """spandrel's FDAT DySample builds a tensor with pin_memory=True, which fails without CUDA: this stand-in for
    that module's ``torch`` drops the flag (pinning changes no value)."""

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(torch, name)

    @staticmethod
    def tensor(*args, pin_memory: bool = False, **kwargs) -> torch.Tensor:  # noqa: ANN002, ANN003
        return torch.tensor(*args, **kwargs)


@pytest.mark.parametrize("config", [dict(BASE, scale=2, upsampler_type="dysample"),
                                    dict(BASE, scale=4, mid_dim=24, upsampler_type="dysample")],
                         ids=["x2", "x4-mid24"])
def test_fdat_dysample_matches_spandrel(spandrel, monkeypatch, config: dict) -> None:
    import importlib

    module = importlib.import_module("spandrel.architectures.FDAT.__arch.fdat")
    monkeypatch.setattr(module, "torch", _TorchWithoutPinnedMemory())
    check_parity(spandrel, "fdat", config, (13, 19), renames={}, spandrel_id="FDAT")


def test_preset_parameter_counts() -> None:
    """No published figures (community presets). These are also what spandrel's FDAT builds for the same presets
    (measured once side by side); pinned so a change of the builder shows."""
    counts = {n: parameter_count_on_meta(n, 4) for n in ("fdat_tiny", "fdat_light", "fdat_medium", "fdat_large",
                                                          "fdat_xl")}
    assert counts == EXPECTED_COUNTS


EXPECTED_COUNTS = {"fdat_tiny": 1_209_615, "fdat_light": 2_076_891, "fdat_medium": 4_030_623,
                   "fdat_large": 11_121_579, "fdat_xl": 23_118_819}


def test_variants_detect_as_themselves() -> None:
    names = set(check_variants_detect_as_themselves("fdat"))
    assert {"fdat", "fdat_tiny", "fdat_light", "fdat_medium", "fdat_large", "fdat_xl"} <= names


def test_any_size_and_contract() -> None:
    model = litesr.create_model("fdat", scale=4, **litesr.registry.get_arch("fdat").tiny).eval()
    assert model.pad_multiple == 1 and model.input_range == 1.0
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)
    folded = litesr.create_model("fdat", scale=2, unshuffle_mod=True, **litesr.registry.get_arch("fdat").tiny)
    assert folded.pad_multiple == 2
    with torch.no_grad():
        assert folded.eval()(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(litesr.errors.ConfigError, match="unshuffle_mod"):
        litesr.create_model("fdat", scale=4, unshuffle_mod=True)
    with pytest.raises(litesr.errors.ConfigError, match="'conv'"):
        litesr.create_model("fdat", scale=4, upsampler_type="conv")
