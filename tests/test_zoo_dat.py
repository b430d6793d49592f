"""DAT (S, DAT, 2, light): parity with spandrel 0.4.2 on random weights at sizes that are not split multiples
(shifted and unshifted spatial blocks, channel blocks, both upsamplers), the published parameter counts (on the meta
device), detection of every registered variant, and the split size read from shapes alone."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta

import litesr
from litesr.archs.dat import _split_size, is_shifted

RENAMES = {"scale": "upscale"}
CASES = [
    # group 0: blocks 0 (spatial), 1 (channel), 2 (shifted spatial); group 1: block 0 shifted
    dict(scale=2, embed_dim=16, split_size=(2, 4), depth=(3, 2), num_heads=(2, 4), expansion_factor=2.0,
         img_size=16),
    dict(scale=3, embed_dim=16, split_size=(4, 4), depth=(3, 1), num_heads=(2, 2), expansion_factor=1.5, img_size=8,
         resi_connection="3conv", upsampler="pixelshuffledirect", qkv_bias=False),
    dict(scale=4, in_chans=1, embed_dim=16, split_size=(2, 8), depth=(3,), num_heads=(4,), expansion_factor=2.0,
         img_size=16),
]


@pytest.mark.parametrize("config", CASES, ids=lambda c: f"x{c['scale']}")
def test_dat_matches_spandrel(spandrel, config: dict) -> None:
    check_parity(spandrel, "dat", config, (13, 19), renames=RENAMES, spandrel_id="DAT")


def test_shift_rule() -> None:
    """Even groups shift blocks 2, 6, 10 ...; odd groups blocks 0, 4, 8 ... (only spatial blocks, the even ones)."""
    assert [b for b in range(12) if is_shifted(0, b)] == [2, 6, 10]
    assert [b for b in range(12) if is_shifted(1, b)] == [0, 4, 8]


@pytest.mark.parametrize("split", [(8, 32), (8, 16), (2, 4), (4, 4)])
def test_split_size_from_values_and_from_shapes(split: tuple[int, int]) -> None:
    config = dict(scale=2, embed_dim=16, split_size=split, depth=(1,), num_heads=(2,))
    key = "layers.0.blocks.0.attn.attns.0.rpe_biases"
    assert _split_size(litesr.create_model("dat", **config).state_dict(), key) == split
    with torch.device("meta"):
        assert _split_size(litesr.create_model("dat", **config).state_dict(), key) == split


def test_parameter_counts() -> None:
    """DAT README (x4): DAT-S 11.21M, DAT 14.80M, DAT-2 11.21M, DAT-light 573K."""
    counts = {n: parameter_count_on_meta(n, 4) for n in ("dat_s", "dat_m", "dat_2", "dat_light")}
    assert counts == {"dat_s": 11_212_131, "dat_m": 14_802_051, "dat_2": 11_212_131, "dat_light": 572_766}
    for name, count in counts.items():
        digits = -3 if name == "dat_light" else -4
        assert litesr.registry.get_variant(name).paper_params[4] == round(count, digits)


def test_variants_detect_as_themselves() -> None:
    assert {"dat", "dat_s", "dat_m", "dat_2", "dat_light"} <= set(check_variants_detect_as_themselves("dat"))


def test_any_size() -> None:
    model = litesr.create_model("dat", scale=2, **litesr.registry.get_arch("dat").tiny).eval()
    assert model.pad_multiple == 1 and model.input_range == 1.0
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 9)).shape == (1, 3, 10, 18)
