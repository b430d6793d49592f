"""The SwinIR and SAFMN forms spandrel 0.4.2 reads that litesr lacked: SwinIR with a pixel-unshuffled input
(``conv_first.1``, spandrel's ``start_unshuffle``), SwinIR x8 heads and gray one-step models, SAFMN at x1 and x8,
and SAFMN-BCIE. Parity on random weights with spandrel's own detection, and litesr's detection round trip."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import check_parity

import litesr
from litesr.errors import ConfigError

SWIN = dict(embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, img_size=8)
SWIN_CASES = [
    dict(SWIN, scale=2, start_unshuffle=2, upsampler="nearest+conv"),
    dict(SWIN, scale=2, start_unshuffle=2, upsampler="pixelshuffle", resi_connection="3conv"),
    dict(SWIN, scale=1, start_unshuffle=4, upsampler="nearest+conv"),
    dict(SWIN, scale=8, upsampler="nearest+conv"),
    dict(SWIN, scale=8, upsampler="pixelshuffle"),
    dict(SWIN, scale=2, in_chans=1, upsampler="pixelshuffledirect"),
]


@pytest.mark.parametrize("config", SWIN_CASES,
                         ids=["unshuffle2-nearest", "unshuffle2-pixelshuffle", "unshuffle4-x1", "x8-nearest",
                              "x8-pixelshuffle", "gray-direct"])
def test_swinir_forms_match_spandrel(spandrel, config: dict) -> None:
    """spandrel's unshuffled SwinIR only runs sizes that stay whole windows after the fold: 16 x 32 here. Its
    ``upscale`` is the tail's factor, so ``scale`` is not compared by name (the descriptor's scale is)."""
    check_parity(spandrel, "swinir", config, (16, 32), renames={}, spandrel_id="SwinIR")


def test_unshuffled_swinir_takes_any_size() -> None:
    model = litesr.create_model("swinir", **SWIN_CASES[0]).eval()
    assert [k for k in model.state_dict() if k.startswith("conv_first")] == ["conv_first.1.weight",
                                                                             "conv_first.1.bias"]
    with torch.no_grad():
        assert model(torch.rand(1, 3, 13, 19)).shape == (1, 3, 26, 38)
    with pytest.raises(ConfigError, match="start_unshuffle"):
        litesr.create_model("swinir", **{**SWIN_CASES[0], "scale": 1, "start_unshuffle": 2, "upsampler": ""})


@pytest.mark.parametrize("scale", [1, 8])
def test_safmn_x1_x8_match_spandrel(spandrel, scale: int) -> None:
    check_parity(spandrel, "safmn", dict(scale=scale, dim=8, n_blocks=2), (16, 24),
                 renames={"scale": "upscaling_factor"}, spandrel_id="SAFMN")


@pytest.mark.parametrize("config", [dict(scale=1, dim=8, n_blocks=2, num_layers=2),
                                    dict(scale=1, dim=12, n_blocks=1, num_layers=3, ffn_scale=1.5,
                                         upscaling_factor=4)],
                         ids=["fold2", "fold4"])
def test_safmn_bcie_matches_spandrel(spandrel, config: dict) -> None:
    check_parity(spandrel, "safmn_bcie", config, (32, 48), renames={}, spandrel_id="SAFMNBCIE")


def test_safmn_bcie_any_size() -> None:
    model = litesr.create_model("safmn_bcie", scale=1, **litesr.registry.get_arch("safmn_bcie").tiny).eval()
    assert litesr.describe(model).safe_precisions == ("fp32", "bf16")  # spandrel: supports_half=False
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 11)).shape == (1, 3, 5, 11)
        assert model(torch.rand(1, 3, 21, 35)).shape == (1, 3, 21, 35)
