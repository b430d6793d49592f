"""CRAFT: parity with spandrel 0.4.2 on random weights (several groups and depths, both residual tails, one-channel
input, sizes that are and are not window multiples), the published parameter counts, detection of the registered
variant, the official mirror padding and the small-input extension of it."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs.craft import mirror_pad

RENAMES = {"scale": "upscale"}
# spandrel assumes window 16 (it is not stored), so the parity configs keep it; their split sides divide 16.
CASES = [
    dict(scale=2, embed_dim=16, depths=(2, 1), num_heads=(2, 4), split_size=(2, 4)),
    dict(scale=3, embed_dim=16, depths=(1,), num_heads=(4,), split_size=(4, 8), mlp_ratio=1.5,
         resi_connection="identity", qkv_bias=False),
    dict(scale=4, in_chans=1, embed_dim=12, depths=(1, 1), num_heads=(2, 2), split_size=(4, 16)),
    # the position-bias MLP is embed_dim / 32 wide: from 64 on it is more than a per-head constant
    dict(scale=2, embed_dim=64, depths=(1,), num_heads=(4,), split_size=(2, 8), mlp_ratio=1.0),
]


@pytest.mark.parametrize("config", CASES, ids=lambda c: f"x{c['scale']}-{c['embed_dim']}")
def test_craft_matches_spandrel(spandrel, config: dict) -> None:
    check_parity(spandrel, "craft", config, (13, 19), renames=RENAMES, spandrel_id="CRAFT")


def test_craft_matches_spandrel_at_a_window_multiple(spandrel) -> None:
    """A 16 x 32 input still gets a further mirrored window (the official ``(h // ws + 1) * ws``)."""
    check_parity(spandrel, "craft", CASES[0], (16, 32), renames=RENAMES, spandrel_id="CRAFT")


def test_split_sizes_are_read_from_the_offsets_as_stored() -> None:
    """With values the split is read exactly (s0 > s1 too, which spandrel's shape rule would swap)."""
    config = dict(scale=2, embed_dim=16, depths=(1,), num_heads=(2,), split_size=(8, 2))
    matches = litesr.detect.detect_architecture(litesr.create_model("craft", **config).state_dict())
    assert matches[0].config["split_size"] == (8, 2)


def test_mirror_padding_is_the_official_one() -> None:
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 20, 5)
    padded = mirror_pad(x, 4)
    assert padded.shape[-2:] == (24, 8)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 4, 3, 2]  # the edge pixel repeats: flip, not reflect
    tiny = mirror_pad(torch.rand(1, 3, 3, 2), 16)  # official code fails here (one flip is not enough)
    assert tiny.shape[-2:] == (16, 16)


def test_parameter_counts() -> None:
    """Published (SSIU table, from the CRAFT paper): 737K / 744K / 753K at x2 / x3 / x4."""
    counts = {s: parameter_count_on_meta("craft", s) for s in (2, 3, 4)}
    assert counts == {2: 737_756, 3: 744_251, 4: 753_344}
    assert litesr.registry.get_variant("craft").paper_params == {s: counts[s] // 1000 * 1000 for s in counts}


def test_variants_detect_as_themselves() -> None:
    assert "craft" in check_variants_detect_as_themselves("craft")


def test_any_size() -> None:
    model = litesr.create_model("craft", scale=2, **litesr.registry.get_arch("craft").tiny).eval()
    assert model.pad_multiple == 1 and model.input_range == 1.0
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 9)).shape == (1, 3, 10, 18)


def test_groups_match_spandrel_at_full_weight_scale(spandrel) -> None:
    """Whole-model parity runs at the 0.05 weight scale, where attention barely reaches the output and the position
    MLP (embed_dim / 32 wide) is nearly constant. Here one residual group (SRWAB, shifted SRWAB, HFERB, HFB) runs
    alone at weight scale 0.5 and embed 128; tolerance 1e-5 of the output."""
    config = dict(scale=2, embed_dim=128, depths=(1,), num_heads=(4,), split_size=(2, 8), mlp_ratio=1.0)
    ours = litesr.create_model("craft", **config).eval()
    state = random_state(ours, 0, std=0.5)
    ours.load_state_dict(state)
    ref = spandrel.ModelLoader().load_from_state_dict(dict(state)).model.eval()
    x = torch.randn(1, 128, 16, 24, generator=torch.Generator().manual_seed(1))
    params = {"attn_mask": (None, None), "rpi_sa_h": ref.relative_position_index_h,
              "rpi_sa_v": ref.relative_position_index_v, "biases_v": ref.biases_v, "biases_h": ref.biases_h}
    tables = (ours.biases_h, ours.relative_position_index_h, ours.biases_v, ours.relative_position_index_v)
    with torch.no_grad():
        want = ref.layers[0](x, (16, 24), params)
        assert float((ours.layers[0](x, tables) - want).abs().max()) <= 1e-5 * float(want.abs().max())
