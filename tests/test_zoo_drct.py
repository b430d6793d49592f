"""DRCT and DRCT-L: parity with spandrel 0.4.2 on random weights, the published parameter counts (on the meta
device), detection of every registered variant, and the no-shift rule for models built with a patch no larger than
the window."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta

import litesr

RENAMES = {"scale": "upscale"}
CASES = [
    dict(scale=2, embed_dim=12, num_heads=(2, 3), window_size=4, gc=4, img_size=16),
    # widths 12, 17, 22, 27, 32 with 3 heads: the blocks get 3, 1, 2, 3, 1 heads
    dict(scale=3, embed_dim=12, num_heads=(3,), window_size=4, gc=5, img_size=8, mlp_ratio=1.5,
         resi_connection="identity"),
    dict(scale=4, in_chans=1, embed_dim=8, num_heads=(2,), window_size=4, gc=4, img_size=4, qkv_bias=False),
]


@pytest.mark.parametrize("config", CASES, ids=lambda c: f"x{c['scale']}")
def test_drct_matches_spandrel(spandrel, config: dict) -> None:
    """The official forward needs window multiples (16 x 20 at window 4); litesr's also takes other sizes."""
    check_parity(spandrel, "drct", config, (16, 20), renames=RENAMES, spandrel_id="DRCT")


def test_heads_divide_the_growing_widths() -> None:
    model = litesr.create_model("drct", **CASES[1])
    group = model.layers[0]
    assert [getattr(group, f"swin{k}").attn.num_heads for k in range(1, 6)] == [3, 1, 2, 3, 1]


def test_patch_no_larger_than_the_window_turns_shifts_off() -> None:
    """As in the official code (and so no ``attn_mask`` buffers): a window-sized training patch has no shifts."""
    model = litesr.create_model("drct", scale=2, embed_dim=8, num_heads=(2,), window_size=4, gc=4, img_size=4)
    assert all(getattr(model.layers[0], f"swin{k}").shift_size == 0 for k in range(1, 6))
    assert not any(k.endswith("attn_mask") for k in model.state_dict())
    shifted = litesr.create_model("drct", scale=2, embed_dim=8, num_heads=(2,), window_size=4, gc=4, img_size=8)
    assert [getattr(shifted.layers[0], f"swin{k}").shift_size for k in range(1, 6)] == [0, 2, 0, 2, 0]


def test_parameter_counts() -> None:
    """DRCT README (x4): DRCT 14.13M, DRCT-L 27.58M (litesr counts 14,139,579: the README truncates)."""
    counts = {n: parameter_count_on_meta(n, 4) for n in ("drct_m", "drct_l")}
    assert counts == {"drct_m": 14_139_579, "drct_l": 27_580_719}
    assert litesr.registry.get_variant("drct_m").paper_params[4] == counts["drct_m"] // 10_000 * 10_000
    assert litesr.registry.get_variant("drct_l").paper_params[4] == round(counts["drct_l"], -4)


def test_variants_detect_as_themselves() -> None:
    assert {"drct", "drct_m", "drct_l"} <= set(check_variants_detect_as_themselves("drct"))


def test_any_size_and_tiling_contract() -> None:
    model = litesr.create_model("drct", scale=2, **litesr.registry.get_arch("drct").tiny).eval()
    assert model.pad_multiple == 4 and model.input_range == 1.0
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 9)).shape == (1, 3, 10, 18)
