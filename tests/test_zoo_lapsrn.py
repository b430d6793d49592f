"""LapSRN (Lai et al., CVPR 2017): the port's layout and counts, progressive x2/x4/x8 outputs, Charbonnier loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from litesr.archs.lapsrn import lapsrn_loss
from litesr.detect import load_model
from litesr.imresize import imresize
from litesr.registry import count_parameters, create_model


@pytest.mark.parametrize("scale,expected", [(2, 435_344), (4, 870_112), (8, 1_304_880)])
def test_parameter_counts_of_the_port_layout(scale: int, expected: int) -> None:
    with torch.device("meta"):
        model = create_model("lapsrn", scale=scale)
    # conv_input 3*3*64; per level: 10 convs 64*64*9, transposed conv 64*64*16, residual 64*9, image 16.
    assert count_parameters(model) == expected == 576 + (scale.bit_length() - 1) * (10 * 36_864 + 65_536 + 576 + 16)
    assert all(not name.endswith("bias") for name, _ in model.named_parameters())


def test_port_key_names() -> None:
    keys = list(create_model("lapsrn", scale=4, depth=2).state_dict())
    assert keys[:1] == ["conv_input.weight"]
    assert {"convt_I1.weight", "convt_R1.weight", "convt_F1.cov_block.0.weight", "convt_F1.cov_block.2.weight",
            "convt_F1.cov_block.4.weight", "convt_I2.weight", "convt_F2.cov_block.4.weight"} <= set(keys)


def test_pyramid_gives_every_level_and_forward_the_last() -> None:
    torch.manual_seed(0)
    model = create_model("lapsrn", scale=8, n_feats=8, depth=1).eval()
    x = torch.rand(1, 1, 6, 5)
    with torch.no_grad():
        levels = model.pyramid(x)
        assert [tuple(o.shape[-2:]) for o in levels] == [(12, 10), (24, 20), (48, 40)]
        assert torch.equal(model(x), levels[-1])


def test_image_branch_starts_as_bilinear_upsampling() -> None:
    """The 4x4 stride-2 transposed conv initialised bilinear is 2x bilinear interpolation away from the border."""
    model = create_model("lapsrn", scale=2, n_feats=8, depth=1)
    x = torch.rand(1, 1, 10, 12)
    with torch.no_grad():
        up = model.convt_I1(x)
    reference = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(up[..., 1:-1, 1:-1], reference[..., 1:-1, 1:-1], atol=1e-6)


def test_multi_level_charbonnier_loss() -> None:
    hr = torch.rand(1, 1, 32, 32)
    outputs = [torch.rand(1, 1, 16, 16), torch.rand(1, 1, 32, 32)]
    expected = sum(torch.sqrt((o - t) ** 2 + 1e-6).mean() for o, t in zip(outputs, [imresize(hr, size=(16, 16)), hr]))
    assert lapsrn_loss(outputs, hr).item() == pytest.approx(expected.item(), rel=1e-6)
    assert lapsrn_loss([hr], hr).item() == pytest.approx(1e-3, rel=1e-3)  # perfect: sqrt(eps^2) per pixel


def test_detect_reads_the_config_back_and_scale_checks() -> None:
    loaded = load_model(create_model("lapsrn", scale=8, n_feats=16, depth=3).state_dict())
    assert loaded.litesr_arch == "lapsrn" and loaded.litesr_config == {"scale": 8, "num_channels": 1, "n_feats": 16,
                                                                       "depth": 3}
    from litesr.errors import ConfigError

    with pytest.raises(ConfigError, match="x2, x4, x8"):
        create_model("lapsrn", scale=3)
