"""GRL (base, small, tiny): parity with spandrel 0.4.2 on random weights, both for files without position tables
(spandrel and litesr then assume the released window 32 / stripes 64 x 64) and for older files that store them
(window, stripes and down factor read from their shapes), over the anchor projections, QKV projections, residual
convs and reconstruction tails spandrel detects; detection of the registered variants; their parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
from zoo_parity import check_parity, check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs._grl_ops import anchor_mask, coords_table, position_index, tables_for

# spandrel builds every GRL for 64 x 64 patches (its tables are dropped and recomputed): img_size is not compared.
RENAMES = {"scale": "upscale", "in_chans": "in_channels", "img_size": "-"}
_SMALL = dict(embed_dim=16, depths=(4,), num_heads_window=(2,), num_heads_stripe=(2,), mlp_ratio=1.0)
# Files with the tables: small windows and rectangular stripes (H and V stripes differ), shapes read back.
STORED = dict(stored_tables=True, img_size=16, window_size=4, stripe_size=(8, 16), anchor_window_down_factor=2)
CASES = {
    # no tables: window 32, stripes 64 x 64, anchors pooled 4x (1024-token windows: two blocks keep it to seconds;
    # the table cases below run blocks 0-3, every shift and stripe direction)
    "released-sizes-x2": dict(scale=2, **{**_SMALL, "embed_dim": 8, "depths": (2,)}),
    # the channel-attention branch needs embed_dim >= 18 (squeeze 18)
    "tables-b-x2": dict(scale=2, **{**_SMALL, "embed_dim": 36}, **STORED, local_connection=True, conv_type="3conv",
                        qkv_proj_type="separable_conv", anchor_proj_type="conv2d"),
    "tables-t-x3": dict(scale=3, **_SMALL, **STORED, upsampler="pixelshuffledirect", conv_type="1conv1x1",
                        anchor_proj_type="separable_conv", qkv_bias=False),
    "tables-real-x4": dict(scale=4, **{**_SMALL, "depths": (2, 2), "num_heads_window": (2, 1),
                                       "num_heads_stripe": (1, 2)},
                           **{**STORED, "anchor_window_down_factor": 4}, upsampler="nearest+conv",
                           anchor_proj_type="patchmerging", anchor_one_stage=False, conv_type="linear"),
    # two 2x stages (a one-stage 2x conv would have the same shapes, and be read as one stage)
    "tables-restoration-x1": dict(scale=1, **_SMALL, **{**STORED, "anchor_window_down_factor": 4}, upsampler="",
                                  in_chans=1, anchor_proj_type="separable_conv", anchor_one_stage=False),
}


# The released sizes mean 1024-token windows: ~10 s of CPU (and the variants' detection covers their reading).
_SLOW = {"released-sizes-x2"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in CASES])
def test_grl_matches_spandrel(spandrel, name: str) -> None:
    """20 x 27: padded to the stripe multiple (reflect) inside both models."""
    check_parity(spandrel, "grl", CASES[name], (20, 27), renames=RENAMES, spandrel_id="GRL")


def test_stored_tables_are_read_back_from_their_shapes() -> None:
    state = litesr.create_model("grl", **CASES["tables-b-x2"]).state_dict()
    assert tuple(state["table_sh"].shape) == (1, 8 + 4 - 1, 16 + 8 - 1, 2)
    assert tuple(state["mask_w"].shape) == (16, 16, 16)  # (16 / 4)^2 windows of the 16 x 16 training patch
    detected = litesr.registry.get_arch("grl").detect(state)
    assert (detected["window_size"], detected["stripe_size"], detected["anchor_window_down_factor"],
            detected["img_size"]) == (4, (8, 16), 2, 16)


def test_position_tables() -> None:
    """Window form (down factor 1): Swin's index; log-spaced offsets in [-1, 1]; anchor masks block pixels of other
    shifted regions and a zero shift masks nothing (as the official slices do)."""
    index = position_index((3, 3))
    assert index.shape == (9, 9) and int(index[0, 0]) == 2 * 5 + 2 and int(index[0, 8]) == 0
    table = coords_table((4, 8), 2)
    assert table.shape == (1, 5, 11, 2) and float(table.abs().max()) == pytest.approx(math.log2(9) / 3)
    mask = anchor_mask(16, 16, (8, 8), (4, 4), 2, True)
    assert mask.shape == (4, 64, 16) and set(mask.unique().tolist()) == {-100.0, 0.0}
    assert not anchor_mask(16, 16, (8, 8), (0, 0), 2, True).any()


def test_parameter_counts() -> None:
    """At x4 on the meta device: 20.20M / 3.49M / 0.91M. The paper's table could not be read on this machine, so
    the registry carries no paper count for GRL; these pin litesr's (and spandrel's, by parity) structure."""
    counts = {n: parameter_count_on_meta(n, 4) for n in ("grl_b", "grl_s", "grl_t")}
    assert counts == {"grl_b": 20_201_299, "grl_s": 3_487_715, "grl_t": 906_192}


def test_variants_detect_as_themselves() -> None:
    assert {"grl", "grl_b", "grl_s", "grl_t"} <= set(check_variants_detect_as_themselves("grl"))


def test_pads_to_the_stripe_multiple() -> None:
    model = litesr.create_model("grl", scale=2, **litesr.registry.get_arch("grl").tiny).eval()
    assert model.pad_multiple == 8 and model.input_range == 1.0
    assert litesr.describe(model).safe_precisions == ("fp32", "bf16")  # spandrel: supports_half=False
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 9)).shape == (1, 3, 10, 18)  # too small to reflect: zeros, as official


def test_blocks_match_spandrel_at_full_weight_scale(spandrel) -> None:
    """Whole-model parity runs at the 0.05 weight scale, where attention barely reaches the output. Here blocks 0-3
    (window shift or not, horizontal / vertical stripes, stripe shift in 2 and 3, the CAB branch) run alone at weight
    scale 0.5 with their tables for the map; tolerance 1e-5 of the output."""
    config = dict(scale=2, **{**_SMALL, "embed_dim": 36}, **STORED, local_connection=True)
    ours = litesr.create_model("grl", **config).eval()
    state = random_state(ours, 0, std=0.5)
    ours.load_state_dict(state)
    ref = spandrel.ModelLoader().load_from_state_dict(dict(state)).model.eval()
    h, w = 16, 32
    x = torch.randn(1, h * w, 36, generator=torch.Generator().manual_seed(1))
    tables = tables_for(h, w, 4, (8, 16), 2)
    with torch.no_grad():
        their_tables = ref.get_table_index_mask(x.device, (h, w))
        for ours_block, their_block in zip(ours.layers[0].blocks, ref.layers[0].blocks, strict=True):
            want = their_block(x, (h, w), their_tables)
            assert float((ours_block(x, h, w, tables) - want).abs().max()) <= 1e-5 * float(want.abs().max())


def test_generator_under_model_g_is_unwrapped(tmp_path) -> None:
    """GRL's GAN files keep the generator under ``model_g.`` beside the discriminator (spandrel cleans them the same
    way): load_model reads the generator alone."""
    model = litesr.create_model("grl", **CASES["tables-t-x3"])
    state = {f"model_g.{k}": v for k, v in model.state_dict().items()}
    state["model_d.conv0.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save({"state_dict": state}, tmp_path / "bsr_grl.ckpt")
    loaded = litesr.load_model(tmp_path / "bsr_grl.ckpt")
    assert litesr.describe(loaded).arch == "grl" and litesr.describe(loaded).scale == 3
    assert torch.equal(loaded.conv_first.weight, model.conv_first.weight)
