"""SRFormer and SRFormer-light: parity with spandrel-extra-arches 0.2.0 (spandrel's reader for SRFormer) on random
weights at sizes that are not window multiples, the published parameter counts, detection of every variant."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta

import litesr

RENAMES = {"scale": "upscale"}
CASES = [
    dict(scale=2, embed_dim=12, depths=(2, 2), num_heads=(2, 3), window_size=4, img_size=16,
         upsampler="pixelshuffledirect"),
    dict(scale=3, embed_dim=12, depths=(3,), num_heads=(2,), window_size=4, img_size=8, upsampler="pixelshuffle",
         qkv_bias=False),
    dict(scale=4, embed_dim=16, depths=(2,), num_heads=(2,), window_size=8, img_size=16, upsampler="nearest+conv",
         resi_connection="3conv"),
]


@pytest.fixture(scope="module")
def spandrel_srformer(spandrel):
    try:
        import spandrel_extra_arches
    except ImportError as exc:
        pytest.skip(f"spandrel-extra-arches not installed ({exc}): `pip install --no-deps spandrel-extra-arches`")
    spandrel_extra_arches.install(ignore_duplicates=True)
    return spandrel


@pytest.mark.parametrize("config", CASES, ids=lambda c: c["upsampler"])
def test_srformer_matches_spandrel(spandrel_srformer, config: dict) -> None:
    check_parity(spandrel_srformer, "srformer", config, (13, 19), renames=RENAMES, spandrel_id="SRFormer")


def test_parameter_counts() -> None:
    """SRFormer-light 853K / 861K / 873K at x2 / x3 / x4 (the SSIU table in ../shared/reference)."""
    counts = {s: parameter_count_on_meta("srformer_light", s) for s in (2, 3, 4)}
    assert counts == {2: 853_272, 3: 861_387, 4: 872_748}
    assert litesr.registry.get_variant("srformer_light").paper_params == {s: round(n, -3) for s, n in counts.items()}


def test_variants_detect_as_themselves() -> None:
    assert {"srformer", "srformer_m", "srformer_light"} <= set(check_variants_detect_as_themselves("srformer"))


def test_patch_no_larger_than_the_window_has_no_shifts() -> None:
    model = litesr.create_model("srformer", scale=2, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4,
                                img_size=4)
    assert [b.shift_size for b in model.layers[0].residual_group.blocks] == [0, 0]
    assert not any(k.endswith("attn_mask") for k in model.state_dict())


def test_any_size_and_tiling_contract() -> None:
    model = litesr.create_model("srformer", scale=2, **litesr.registry.get_arch("srformer").tiny).eval()
    assert model.pad_multiple == 4 and model.input_range == 1.0
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 9)).shape == (1, 3, 10, 18)
