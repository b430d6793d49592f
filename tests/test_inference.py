"""The upscaling engine: tiling without seams, self-ensemble, reduced precision, memory budget, decoded images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import litesr
from litesr.archs.base import SRModel
from litesr.archs.blocks import CCALayer
from litesr.demo import sample_image
from litesr.errors import ConfigError
from litesr.images import Image, read_image
from litesr.inference import (
    activation_bytes_per_pixel,
    run_model,
    tile_for_memory,
    tile_starts,
    upscale_image,
    upscale_tensor,
)
from litesr.registry import get_arch

ONE_LEVEL = 1 / 255


def tiny_imdn(scale: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return litesr.create_model("imdn", scale=scale, **get_arch("imdn").tiny).eval()


def demo_crop(h: int = 48, w: int = 64) -> Tensor:
    """A crop of litesr's own sample picture (always available): lettering, lines, texture."""
    rgb = torch.from_numpy(sample_image(2).rgb).permute(2, 0, 1)
    return rgb[None, :, 8 : 8 + h, 4 : 4 + w].contiguous()


class LocalNet(SRModel):
    """A two-conv x3 model with a size multiple of 4 and a 2-pixel receptive field: tiling must be exact."""

    pad_multiple = 4

    def __init__(self, scale: int = 3) -> None:
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


# ---------------------------------------------------------------------------------------------------------- tiling


@pytest.mark.parametrize(("length", "tile", "overlap"), [(100, 64, 32), (64, 64, 16), (37, 16, 8), (130, 48, 16)])
def test_tile_starts_cover_with_full_tiles_and_enough_overlap(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == length  # the last tile moved inward, not cut short
    assert all(0 <= s <= length - tile for s in starts)
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    assert tile_starts(20, 64, 16) == [0]


def test_tiling_is_exact_for_a_local_model_with_a_size_multiple() -> None:
    torch.manual_seed(1)
    model = LocalNet().eval()
    x = torch.rand(2, 3, 37, 50)
    whole = upscale_tensor(model, x)
    tiled = upscale_tensor(model, x, tile=15, tile_overlap=8)  # rounded up to 16, the model's multiple
    assert whole.shape == (2, 3, 111, 150)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_tiled_tiny_imdn_matches_untiled_within_one_level() -> None:
    model = tiny_imdn()
    x = demo_crop()
    whole = upscale_tensor(model, x)
    tiled = upscale_tensor(model, x, tile=32, tile_overlap=16)
    assert tiled.shape == whole.shape == (1, 3, 96, 128)
    assert (tiled - whole).abs().max().item() <= ONE_LEVEL


class AttentionNet(SRModel):
    """conv -> contrast-aware channel attention (made sensitive) -> conv -> PixelShuffle."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.cca = CCALayer(16, reduction=4)
        self.tail = nn.Sequential(nn.Conv2d(16, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        with torch.no_grad():
            for p in self.cca.conv_du.parameters():
                p.mul_(10.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.tail(self.cca(self.head(x)))


def test_whole_image_attention_statistics_are_what_makes_tiling_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Contrast-aware attention squeezes the whole feature map: with per-tile statistics every pixel shifts."""
    torch.manual_seed(0)
    model = AttentionNet().eval()
    x = demo_crop()
    whole = upscale_tensor(model, x)
    with_statistics = (upscale_tensor(model, x, tile=32, tile_overlap=16) - whole).abs().max().item()
    monkeypatch.setattr(CCALayer, "whole_image_statistics", None)  # the layer no longer declares its squeeze
    per_tile = (upscale_tensor(model, x, tile=32, tile_overlap=16) - whole).abs().max().item()
    assert with_statistics <= 0.01 * ONE_LEVEL
    assert per_tile > 2 * ONE_LEVEL


def test_tiled_imdn_x2_official_weights_on_set5(datasets_dir: Path, weights_dir: Path) -> None:
    checkpoint = weights_dir / "IMDN" / "IMDN_x2.pth"
    if not checkpoint.exists():
        pytest.skip(f"{checkpoint} not found")
    model = litesr.load_model(checkpoint)
    assert isinstance(model, type(litesr.create_model("imdn", scale=2)))
    lr = read_image(datasets_dir / "Set5" / "LR_bicubic" / "X2" / "butterflyx2.png")
    x = torch.from_numpy(lr.rgb).permute(2, 0, 1)[None, :, :64, :80].contiguous()
    whole = upscale_tensor(model, x)
    tiled = upscale_tensor(model, x, tile=48, tile_overlap=16)
    assert (tiled - whole).abs().max().item() <= ONE_LEVEL


# ------------------------------------------------------------------------------------------ ensemble and precision


def test_self_ensemble_of_an_equivariant_model_equals_plain() -> None:
    bicubic = litesr.create_model("bicubic", scale=2)
    x = demo_crop(30, 41)
    torch.testing.assert_close(upscale_tensor(bicubic, x, self_ensemble=True), upscale_tensor(bicubic, x),
                               atol=1e-5, rtol=0)


def test_self_ensemble_averages_the_eight_transforms() -> None:
    model = tiny_imdn()
    x = demo_crop(20, 28)
    expected = torch.zeros(1, 3, 40, 56)
    with torch.no_grad():
        for k in range(4):  # the 8 transforms as rotations and rotated mirror images
            for mirror in (False, True):
                t = torch.rot90(x.flip(-1) if mirror else x, k, dims=(-2, -1))
                y = torch.rot90(run_model(model, t), -k, dims=(-2, -1))
                expected += y.flip(-1) if mirror else y
    expected = (expected / 8).clamp(0, 1)
    ensemble = upscale_tensor(model, x, self_ensemble=True)
    torch.testing.assert_close(ensemble, expected, atol=1e-5, rtol=0)
    assert (ensemble - upscale_tensor(model, x)).abs().max() > 1e-3  # not the plain result


def test_bf16_is_close_to_fp32() -> None:
    model = tiny_imdn()
    x = demo_crop()
    fp32 = upscale_tensor(model, x)
    bf16 = upscale_tensor(model, x, precision="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    assert (bf16 - fp32).abs().mean().item() < 0.5 * ONE_LEVEL
    assert (bf16 - fp32).abs().max().item() < 4 * ONE_LEVEL


def test_fp16_on_cpu_and_missing_cuda_are_clear_errors() -> None:
    model = tiny_imdn()
    with pytest.raises(ConfigError, match="fp16 needs a CUDA"):
        upscale_tensor(model, demo_crop(8, 8), precision="fp16", device="cpu")
    with pytest.raises(ConfigError, match="precision"):
        upscale_tensor(model, demo_crop(8, 8), precision="int4")  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            upscale_tensor(model, demo_crop(8, 8), device="cuda")


def test_result_is_an_ordinary_tensor_in_range() -> None:
    y = upscale_tensor(tiny_imdn(), demo_crop(16, 16)[0])
    assert y.shape == (3, 32, 32) and not y.is_inference()
    assert 0.0 <= y.min() and y.max() <= 1.0
    y.mul_(0.5)  # callers may modify it in place


# ------------------------------------------------------------------------------------------------------- memory


def test_memory_budget_picks_tiles_from_a_measured_calibration() -> None:
    model = tiny_imdn()
    per_pixel = activation_bytes_per_pixel(model)
    # At least the first feature map (16 channels, float32) is alive during a pass; far less than 1 MB per pixel.
    assert 16 * 4 <= per_pixel < 2**20
    assert tile_for_memory(model, (1, 64, 64), 2**34) is None  # fits in one pass
    side = tile_for_memory(model, (1, 2000, 2000), 512 * 2**20)
    resident = 2000 * 2000 * 3 * 4 * 9  # the input and two x2 result buffers
    assert side is not None and 16 <= side < 2000
    assert per_pixel * side * side <= 512 * 2**20 - resident
    gpu_side = tile_for_memory(model, (1, 2000, 2000), 512 * 2**20, result_on_device=False)
    assert gpu_side is not None and gpu_side > side  # the result buffers live elsewhere
    with pytest.raises(ConfigError, match="cannot even hold"):
        tile_for_memory(model, (1, 2000, 2000), 2**20)
    x = demo_crop()
    budget = int(per_pixel * 24 * 24) + x.numel() * 4 * 9
    tiled = upscale_tensor(model, x, max_memory=budget, tile_overlap=8)
    assert (tiled - upscale_tensor(model, x)).abs().max().item() <= 2 * ONE_LEVEL


# ------------------------------------------------------------------------------------------------- decoded images


def test_upscale_image_keeps_gray_alpha_and_bit_depth() -> None:
    model = tiny_imdn()
    rng = np.random.default_rng(0)
    gray = Image(rgb=rng.random((10, 12, 1), dtype=np.float32), alpha=rng.random((10, 12), dtype=np.float32),
                 bit_depth=16, mode="LA;16", format="PNG")
    out = upscale_image(model, gray)
    assert out.rgb.shape == (20, 24, 1) and out.alpha.shape == (20, 24)
    assert (out.bit_depth, out.mode, out.format) == (16, "LA;16", "PNG")
    assert 0.0 <= out.alpha.min() and out.alpha.max() <= 1.0
    # Alpha is bicubic-upscaled: a constant alpha stays constant.
    flat = Image(rgb=gray.rgb.repeat(3, axis=2), alpha=np.full((10, 12), 0.25, dtype=np.float32))
    out = upscale_image(model, flat)
    assert out.rgb.shape == (20, 24, 3)
    np.testing.assert_allclose(out.alpha, 0.25, atol=1e-6)
    # Gray through an RGB model equals the mean of the RGB result of the replicated picture.
    rgb_result = upscale_image(model, Image(rgb=gray.rgb.repeat(3, axis=2)))
    np.testing.assert_allclose(upscale_image(model, gray).rgb[..., 0], rgb_result.rgb.mean(axis=2), atol=1e-6)
