"""AsConvSR (built from the paper's abstract, no official code readable): the assembled convolution against a plain
convolution with the kernel mixed by hand, images of a batch getting their own kernels, the repeat-upscaled skip,
shapes at every scale and odd sizes, detection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs.asconvsr import AssembledConv
from litesr.detect import detect_architecture


def test_assembled_conv_is_a_conv_with_the_mixed_kernel() -> None:
    torch.manual_seed(0)
    layer = AssembledConv(8, 6, num_kernels=3, temperature=2.0).double()
    with torch.no_grad():
        layer.bias_bank.normal_()
    x = torch.randn(3, 8, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        logits = layer.control[4](F.relu(layer.control[2](x.mean(dim=(2, 3)))))
        mix = torch.softmax(logits / 2.0, dim=1)
        assert torch.allclose(layer.coefficients(x), mix)
        got = layer(x)
        for i in range(3):
            weight = sum(mix[i, e] * layer.weight_bank[e] for e in range(3))
            bias = sum(mix[i, e] * layer.bias_bank[e] for e in range(3))
            want = F.conv2d(x[i:i + 1], weight, bias, padding=1)
            assert float((got[i:i + 1] - want).abs().max()) <= 1e-12
        assert float(mix.std(dim=0).max()) > 1e-3  # the images did get different kernels


def test_each_image_of_a_batch_gets_its_own_kernel() -> None:
    model = litesr.create_model("asconvsr", scale=2, num_feat=16, num_blocks=2).eval()
    model.load_state_dict(random_state(model, seed=1, std=0.2))
    x = torch.rand(2, 3, 10, 12)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[:1]), model(x[1:])])
    assert float((together - alone).abs().max()) <= 1e-5


def test_zero_tail_gives_the_repeated_input() -> None:
    model = litesr.create_model("asconvsr", scale=3, num_feat=8, num_blocks=1).eval()
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()
        x = torch.rand(1, 3, 5, 6)
        out = model(x)
    assert torch.equal(out, x.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes_at_every_scale_and_odd_sizes(scale: int) -> None:
    model = litesr.create_model("asconvsr", scale=scale, num_feat=8, num_blocks=2, num_kernels=2).eval()
    model.load_state_dict(random_state(model, seed=scale))
    with torch.no_grad():
        for size in ((13, 9), (8, 16), (1, 3)):
            out = model(torch.rand(1, 3, *size))
            assert out.shape == (1, 3, size[0] * scale, size[1] * scale)
            assert torch.isfinite(out).all()


def test_parameter_count_of_the_default_configuration() -> None:
    """No published count could be read: this pins litesr's own configuration (32 channels, 3 blocks, 4 kernels)."""
    # head 12*32*9+32, 3 x (bank 4*(32*32*9+32) + control 32*8+8 + 8*4+4), tail 32*3*(2s)^2*9 + 3*(2s)^2
    body = 3 * (4 * (32 * 32 * 9 + 32) + 32 * 8 + 8 + 8 * 4 + 4)
    for scale in (2, 3, 4):
        tail = 32 * 3 * (2 * scale) ** 2 * 9 + 3 * (2 * scale) ** 2
        assert parameter_count_on_meta("asconvsr", scale) == 12 * 32 * 9 + 32 + body + tail


def test_variants_detect_as_themselves() -> None:
    assert "asconvsr" in check_variants_detect_as_themselves("asconvsr")


def test_detection_round_trip() -> None:
    model = litesr.create_model("asconvsr", scale=4, num_feat=24, num_blocks=2, num_kernels=3)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("asconvsr", {"scale": 4, "num_feat": 24, "num_blocks": 2,
                                                                   "num_kernels": 3})]
