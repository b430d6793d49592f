"""HFFN (built from the paper's abstract, no official code): the frequency split reconstructs its input, the
high-frequency branch does most of a block's MACs, the low branch's 1x1 conv at the pooled size is that conv of the
low-frequency map, parameter counts of litesr's configuration, shapes at every scale and odd sizes, detection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs.hffn import HFFB, LFFB, frequency_split
from litesr.detect import detect_architecture
from litesr.profile import OpCounter


@pytest.mark.parametrize("size", [(8, 10), (6, 6), (16, 12)])
def test_frequency_split_reconstructs_the_input(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, *size, dtype=torch.float64)
    pooled, low, high = frequency_split(x)
    assert pooled.shape == (2, 5, size[0] // 2, size[1] // 2)
    assert torch.equal(pooled, F.avg_pool2d(x, 2))
    assert low.shape == high.shape == x.shape
    assert float((low + high - x).abs().max()) <= 1e-12
    assert float(high.abs().max()) > 0.1  # random noise is mostly high frequency: the split is not trivial
    # a constant map has no high frequency at all
    _, low_c, high_c = frequency_split(torch.full((1, 2, *size), 0.3, dtype=torch.float64))
    assert float(high_c.abs().max()) <= 1e-15
    assert float((low_c - 0.3).abs().max()) <= 1e-15


def test_low_branch_is_the_1x1_conv_of_the_low_frequency_map() -> None:
    """The 1x1 conv runs at the pooled size and is upsampled after: the same as the 1x1 conv of ``low`` (bilinear
    weights sum to one, so the bias passes through), at a quarter of the MACs."""
    torch.manual_seed(1)
    block = HFFB(8, 4).double()
    x = torch.randn(1, 8, 10, 14, dtype=torch.float64)
    pooled, low, _ = frequency_split(x)
    with torch.no_grad():
        assert float((block.low_branch(pooled, x.shape[-2:]) - block.low_conv(low)).abs().max()) <= 1e-12


def test_hffb_is_a_fused_high_and_low_branch_with_a_residual() -> None:
    torch.manual_seed(2)
    block = HFFB(8, 4).double().eval()
    x = torch.randn(1, 8, 16, 18, dtype=torch.float64)
    pooled, _, high = frequency_split(x)
    with torch.no_grad():
        want = block.fuse(torch.cat([block.high_branch(high), block.low_branch(pooled, (16, 18))], 1)) + x
        assert torch.equal(block(x), want)
        block.fuse.weight.zero_()
        block.fuse.bias.zero_()
        assert torch.equal(block(x), x)


def test_lffb_fuses_every_hffb_output() -> None:
    torch.manual_seed(3)
    lffb = LFFB(8, 3, 4).double().eval()
    x = torch.randn(1, 8, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        a = lffb.blocks[0](x)
        b = lffb.blocks[1](a)
        c = lffb.blocks[2](b)
        assert torch.equal(lffb(x), lffb.fuse(torch.cat([a, b, c], 1)) + x)


def _macs(fn) -> int:  # noqa: ANN001
    counter = OpCounter()
    with torch.no_grad(), counter:
        fn()
    return sum(counter.macs.values())


def test_high_frequency_branch_does_most_of_the_work() -> None:
    """The abstract's point: more computation for high frequencies. At the default width, per block, the high branch
    (two 3x3 convs + ESA) is 98.7% of the branches' MACs and 89% of the block's; the low branch under 2%."""
    block = HFFB(48, 12).eval()
    x = torch.rand(1, 48, 64, 64)
    pooled, _, high = frequency_split(x)
    high_macs = _macs(lambda: block.high_branch(high))
    low_macs = _macs(lambda: block.low_branch(pooled, (64, 64)))
    total = _macs(lambda: block(x))
    assert low_macs == 48 * 48 * 32 * 32  # one 1x1 conv at a quarter of the pixels
    assert high_macs / (high_macs + low_macs) > 0.98
    assert high_macs / total > 0.85
    assert high_macs + low_macs + 2 * 48 * 48 * 64 * 64 == total  # the rest is the 1x1 fusion of the concatenation


def test_parameter_counts_of_the_default_configuration() -> None:
    """No published count could be read: this pins litesr's own configuration (48 channels, 3 LFFBs x 3 HFFBs)."""
    c = 48
    esa = (c * 12 + 12) + (12 * 12 + 12) + 4 * (12 * 12 * 9 + 12) + (12 * c + c)
    hffb = 2 * (c * c * 9 + c) + esa + (c * c + c) + (2 * c * c + c)
    lffb = 3 * hffb + (3 * c * c + c)
    body = (3 * c * 9 + c) + 3 * lffb + (3 * c * c + c) + (c * c * 9 + c)
    counts = [parameter_count_on_meta("hffn", s) for s in (2, 3, 4)]
    assert counts == [body + c * 3 * s * s * 9 + 3 * s * s for s in (2, 3, 4)] == [551_748, 558_243, 567_336]
    assert litesr.registry.get_variant("hffn").paper_params == {}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes_at_every_scale_and_odd_sizes(scale: int) -> None:
    model = litesr.create_model("hffn", scale=scale, num_feat=16, num_lffbs=2, num_hffbs=2, esa_channels=4).eval()
    model.load_state_dict(random_state(model, seed=scale))
    with torch.no_grad():
        for size in ((13, 9), (17, 16), (1, 3), (20, 31)):
            out = model(torch.rand(1, 3, *size))
            assert out.shape == (1, 3, size[0] * scale, size[1] * scale)
            assert torch.isfinite(out).all()


def test_even_inputs_of_sixteen_pixels_or_more_are_not_padded() -> None:
    model = litesr.create_model("hffn", scale=2, num_feat=8, num_lffbs=1, num_hffbs=1, esa_channels=4).eval()
    model.load_state_dict(random_state(model, seed=5))
    x = torch.rand(1, 3, 16, 22)
    with torch.no_grad():
        assert torch.equal(model._forward(x), model(x))


def test_swapped_tail() -> None:
    model = litesr.create_model("hffn", scale=3, num_feat=8, num_lffbs=1, num_hffbs=1, esa_channels=4,
                                upsampler="decomposed").eval()
    assert "upsampler.vertical.weight" in model.state_dict()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 7, 9)).shape == (1, 3, 21, 27)


def test_variants_detect_as_themselves() -> None:
    assert check_variants_detect_as_themselves("hffn") == ["hffn"]


def test_detection_round_trip() -> None:
    model = litesr.create_model("hffn", scale=3, num_feat=24, num_lffbs=2, num_hffbs=4, esa_channels=8)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("hffn", {"scale": 3, "num_feat": 24, "num_lffbs": 2,
                                                               "num_hffbs": 4, "esa_channels": 8})]
