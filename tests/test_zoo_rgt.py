"""RGT and RGT-S: parity with spandrel 0.4.2 on random weights (shifted and unshifted L-SA blocks, RG-SA blocks, both
residual convs, one-channel input), the published parameter counts (on the meta device), detection of every registered
variant, the recursion depth rule of RG-SA and the small-input padding."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs.rgt import recursion_depth

RENAMES = {"scale": "upscale"}
# spandrel builds every RGT for 64 x 64 training patches (the stored shift masks must match), so img_size stays 64.
CASES = [
    # group 0: L-SA, RG-SA, shifted L-SA; group 1: shifted L-SA, RG-SA
    dict(scale=2, embed_dim=16, split_size=(2, 4), depth=(3, 2), num_heads=(2, 4), mlp_ratio=2.0),
    dict(scale=3, embed_dim=16, split_size=(4, 4), depth=(2, 1), num_heads=(2, 2), mlp_ratio=1.5, c_ratio=0.25,
         resi_connection="3conv", qkv_bias=False),
    dict(scale=4, in_chans=1, embed_dim=16, split_size=(2, 8), depth=(3,), num_heads=(4,), mlp_ratio=2.0),
    # the position-bias MLP is embed_dim / 32 wide: from 64 on it is more than a per-head constant
    dict(scale=2, embed_dim=64, split_size=(2, 4), depth=(3,), num_heads=(4,), mlp_ratio=1.0),
]


@pytest.mark.parametrize("config", CASES, ids=lambda c: f"x{c['scale']}-{c['embed_dim']}")
def test_rgt_matches_spandrel(spandrel, config: dict) -> None:
    """17 x 21: not a split multiple (L-SA pads) and RG-SA reduces 16x to a 1 x 1 map."""
    check_parity(spandrel, "rgt", config, (17, 21), renames=RENAMES, spandrel_id="RGT")


def test_rgt_matches_spandrel_at_a_size_with_a_larger_reduced_map(spandrel) -> None:
    """At 35 x 67 the reduced map is 2 x 4 tokens, so the CPE conv and the cross-attention see several positions."""
    config = dict(scale=2, embed_dim=8, split_size=(2, 4), depth=(2,), num_heads=(2,), mlp_ratio=1.0)
    check_parity(spandrel, "rgt", config, (35, 67), renames=RENAMES, spandrel_id="RGT")


def test_recursion_depth_is_the_official_float_formula() -> None:
    """At inference max(floor(log4(side // 16))) but at least 2: sides below 1024 reduce twice (16x), from 1024 on
    three times (64x); in training floor(log4(side // 4)) (2 for the 64 x 64 patches)."""
    assert recursion_depth(16, 16, training=False) == 2
    assert recursion_depth(1023, 64, training=False) == 2
    assert recursion_depth(64, 1024, training=False) == 3
    assert recursion_depth(64, 64, training=True) == 2


def test_parameter_counts() -> None:
    """RGT README (x4): RGT-S 10.20M, RGT 13.37M."""
    counts = {n: parameter_count_on_meta(n, 4) for n in ("rgt_s", "rgt_m")}
    assert counts == {"rgt_s": 10_198_767, "rgt_m": 13_365_543}
    for name, count in counts.items():
        assert litesr.registry.get_variant(name).paper_params[4] == round(count, -4)


def test_variants_detect_as_themselves() -> None:
    assert {"rgt", "rgt_s", "rgt_m"} <= set(check_variants_detect_as_themselves("rgt"))


def test_small_inputs_are_padded_and_cropped() -> None:
    """RG-SA needs 16 pixels per side; smaller inputs (tiles, thumbnails) are padded to 16 and the output cropped."""
    model = litesr.create_model("rgt", scale=2, **litesr.registry.get_arch("rgt").tiny).eval()
    assert model.pad_multiple == 1 and model.input_range == 1.0
    assert litesr.describe(model).safe_precisions == ("fp32", "bf16")  # spandrel: supports_half=False
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 9)).shape == (1, 3, 10, 18)
        assert model(torch.rand(1, 3, 16, 20)).shape == (1, 3, 32, 40)


def test_blocks_match_spandrel_at_full_weight_scale(spandrel) -> None:
    """Whole-model parity runs at the 0.05 weight scale, where attention barely reaches the output and the position
    MLP (embed_dim / 32 wide) is nearly constant. Here each block of one group (L-SA, RG-SA, shifted L-SA, RG-SA)
    runs alone at weight scale 0.5 and embed 128: a mirrored position table changes them by ~2% (checked by hand),
    the tolerance is 1e-5 of the output."""
    config = dict(scale=2, embed_dim=128, split_size=(2, 4), depth=(4,), num_heads=(4,), mlp_ratio=1.0)
    ours = litesr.create_model("rgt", **config).eval()
    state = random_state(ours, 0, std=0.5)
    ours.load_state_dict(state)
    reference = spandrel.ModelLoader().load_from_state_dict(dict(state)).model.eval()
    h, w = 32, 40  # RG-SA reduces to 2 x 2
    x = torch.randn(1, h * w, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for ours_block, their_block in zip(ours.layers[0].blocks, reference.layers[0].blocks, strict=True):
            want = their_block(x, (h, w))
            assert float((ours_block(x, h, w) - want).abs().max()) <= 1e-5 * float(want.abs().max())
