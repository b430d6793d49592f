"""HAT (S, M, L): parity with spandrel 0.4.2 on random weights at sizes that are not window multiples, the published
parameter counts (on the meta device), detection of every registered variant, and the tiny config end to end."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta

import litesr
from litesr.archs.hat import overlap_position_index, read_overlap_ratio, read_ratio

RENAMES = {"scale": "upscale"}
CASES = [
    dict(scale=2, embed_dim=12, depths=(2, 2), num_heads=(2, 3), window_size=4, compress_ratio=3, squeeze_factor=4,
         num_feat=8),
    dict(scale=3, embed_dim=12, depths=(3,), num_heads=(2,), window_size=8, compress_ratio=4, squeeze_factor=2,
         num_feat=8, overlap_ratio=0.25, resi_connection="identity", mlp_ratio=4.0, qkv_bias=False),
    dict(scale=4, in_chans=1, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, compress_ratio=2,
         squeeze_factor=4, num_feat=4, patch_norm=False),
]


@pytest.mark.parametrize("config", CASES, ids=lambda c: f"x{c['scale']}")
def test_hat_matches_spandrel(spandrel, config: dict) -> None:
    check_parity(spandrel, "hat", config, (13, 19), renames=RENAMES, spandrel_id="HAT")


def test_hat_with_absolute_position_embedding_matches_spandrel(spandrel) -> None:
    """``ape``: the embedding fixes the (padded) input size, which detection reads back as img_size."""
    config = dict(scale=2, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, compress_ratio=2,
                  squeeze_factor=4, num_feat=4, ape=True, img_size=16)
    check_parity(spandrel, "hat", config, (14, 16), renames=RENAMES, spandrel_id="HAT")
    model = litesr.create_model("hat", **config).eval()
    with pytest.raises(ValueError, match="16x16"):
        model(torch.rand(1, 3, 20, 20))


def test_parameter_counts() -> None:
    """HAT README: HAT-S 9.6M, HAT 20.8M (the DRCT README quotes HAT at 20.77M), at x4; HAT-L has no count there."""
    counts = {n: parameter_count_on_meta(n, 4) for n in ("hat_s", "hat_m", "hat_l")}
    assert counts == {"hat_s": 9_621_183, "hat_m": 20_772_507, "hat_l": 40_846_575}
    assert litesr.registry.get_variant("hat_s").paper_params[4] == round(counts["hat_s"], -5) == 9_600_000
    assert litesr.registry.get_variant("hat_m").paper_params[4] == round(counts["hat_m"], -4) == 20_770_000


def test_variants_detect_as_themselves() -> None:
    assert {"hat", "hat_s", "hat_m", "hat_l"} <= set(check_variants_detect_as_themselves("hat"))


def test_overlap_index_is_the_official_one_with_its_negative_entries() -> None:
    """The official OCAB index is (ky - qy + ws - ows + 1) * (ws + ows - 1) + (kx - qx + ws - ows + 1): it does not
    centre the enlarged window, so about half its entries are negative and gather from the end of the bias table
    (Python indexing). The released models were trained that way, so litesr keeps it."""
    ws, ows = 4, 6
    index = overlap_position_index(ws, ows)
    side, offset = ws + ows - 1, ws - ows + 1
    want = torch.tensor([[(k // ows - q // ws + offset) * side + (k % ows - q % ws + offset) for k in range(ows * ows)]
                         for q in range(ws * ws)])
    assert torch.equal(index, want)
    assert index.min() == -40 and index.max() == 40


def test_ratios_read_back() -> None:
    assert read_overlap_ratio(16, 24) == 0.5 and read_overlap_ratio(16, 16) == 0
    assert read_ratio(180, 60) == 3 and read_ratio(144, 6) == 24 and read_ratio(180, 6) == 30


def test_any_size_and_tiling_contract() -> None:
    model = litesr.create_model("hat", scale=2, **litesr.registry.get_arch("hat").tiny).eval()
    assert model.pad_multiple == 4 and model.input_range == 1.0
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 9)).shape == (1, 3, 10, 18)
