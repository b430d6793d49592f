"""MATLAB-compatible bicubic resize: bit-exact against the benchmark LR files, hand-derived values, properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litesr.imresize import bicubic_downsample_uint8, imresize, modcrop, round_half_away, to_uint8_range


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _lr_file(folder: Path, stem: str, scale: int) -> Path:
    for name in (f"{stem}x{scale}.png", f"{stem}.png"):
        if (folder / name).is_file():
            return folder / name
    raise AssertionError(f"{folder}: no LR file for {stem}")


# (dataset, LR folder, border, scale, round after each pass): every LR file shipped in ../shared/datasets.
LR_CASES = [
    *[("Set5", "LR_bicubic", "symmetric", s, True) for s in (2, 3, 4)],
    ("Set5", "LR_bicubic", "symmetric", 8, False),  # X8 was made by the double pipeline (one rounding at the end)
    *[(ds, "LR_bicubic_replicate", "replicate", s, True) for ds in ("Set5", "Set14", "B100") for s in (2, 3, 4)],
]


@pytest.mark.parametrize(("dataset", "folder", "border", "scale", "round_each_pass"), LR_CASES,
                         ids=[f"{c[0]}-{c[1]}-X{c[3]}" for c in LR_CASES])
def test_bit_exact_with_benchmark_lr_files(datasets_dir, dataset, folder, border, scale, round_each_pass):
    lr_dir = datasets_dir / dataset / folder / f"X{scale}"
    hr_files = sorted((datasets_dir / dataset / "HR").glob("*.png"))
    assert hr_files and lr_dir.is_dir()
    for hr_path in hr_files:
        expected = _read(_lr_file(lr_dir, hr_path.stem, scale))
        got = bicubic_downsample_uint8(_read(hr_path), scale, border, round_each_pass=round_each_pass)
        assert got.dtype == np.uint8
        assert got.shape == expected.shape, hr_path.name
        mismatched = int((got != expected).sum())
        assert mismatched == 0, f"{hr_path.name}: {mismatched} pixels differ from {lr_dir.name}"


def test_pass_order_and_rounding_matter(datasets_dir):
    """The bit-exact match is not vacuous: the double pipeline differs from the uint8 one on these files."""
    hr = _read(datasets_dir / "Set5" / "HR" / "butterfly.png")
    per_pass = bicubic_downsample_uint8(hr, 4)
    once = bicubic_downsample_uint8(hr, 4, round_each_pass=False)
    replicate = bicubic_downsample_uint8(hr, 4, "replicate")
    assert (per_pass != once).any()
    assert (per_pass != replicate).any()
    # The border rules only differ near the edges.
    assert (per_pass[3:-3, 3:-3] == replicate[3:-3, 3:-3]).all()


def test_hand_derived_upscale_values():
    """imresize([1 2 3 4], 2): first outputs worked out by hand from MATLAB's contributions() (all dyadic, exact)."""
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    sym = imresize(x, size=(1, 8))
    # u = 0.75: weights -3/128, 29/128, 111/128, -9/128 on pixels 2, 1, 1, 2 (mirrored) -> 1.09375*1 - 0.09375*2
    assert sym[0, 0].item() == 0.90625
    assert sym[0, 1].item() == 1.1796875
    assert torch.equal(sym, -imresize(-x, size=(1, 8)))
    rep = imresize(x, size=(1, 8), border="replicate")
    assert rep[0, 0].item() == 0.9296875  # pixels 1, 1 (clamped) instead of the mirrored 2, 1
    assert torch.equal(rep[0, 1:7], sym[0, 1:7])
    # Keys' cubic reproduces linear ramps away from the borders: output k (1-based) sits at u = k/2 + 0.25.
    ramp = torch.arange(1.0, 11.0, dtype=torch.float64)
    up = imresize(ramp[None], size=(1, 20))[0]
    k = torch.arange(4, 18, dtype=torch.float64)
    assert torch.equal(up[3:17], k / 2 + 0.25)


def test_constant_image_stays_constant():
    x = torch.full((2, 3, 17, 23), 0.375, dtype=torch.float64)
    for kwargs in ({"scale": 0.25}, {"scale": 3}, {"scale": 1.7}, {"size": (5, 40)}):
        for border in ("symmetric", "replicate"):
            y = imresize(x, border=border, **kwargs)
            assert torch.allclose(y, x.new_full(y.shape, 0.375), rtol=0, atol=1e-14), (kwargs, border)


def test_output_shapes_and_inverse_shapes():
    x = torch.rand(1, 3, 48, 64)
    assert imresize(x, 0.25).shape == (1, 3, 12, 16)
    assert imresize(imresize(x, 0.25), 4).shape == x.shape
    assert imresize(torch.rand(255, 102), 1 / 3).shape == (85, 34)  # 255 * (1/3) must not round up to 86
    assert imresize(torch.rand(10, 7), 1.5).shape == (15, 11)  # ceil(10.5)
    assert imresize(torch.rand(2, 10, 7), size=(20, 13)).shape == (2, 20, 13)
    assert imresize(torch.rand(10, 7), (2.0, 0.5)).shape == (20, 4)
    # Scale 1 is the identity.
    y = torch.rand(9, 11, dtype=torch.float64)
    assert torch.equal(imresize(y, 1.0), y)


def test_batched_equals_per_image_and_dtypes():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 21, 30, dtype=torch.float64)
    batched = imresize(x, 0.5)
    for i in range(3):
        assert torch.equal(batched[i], imresize(x[i], 0.5))
        assert torch.equal(batched[i, 1], imresize(x[i, 1], 0.5))
    for scale in (0.25, 0.5, 2, 3, 1.3):
        d = imresize(x, scale)
        f = imresize(x.float(), scale)
        assert f.dtype == torch.float32 and d.dtype == torch.float64
        assert torch.allclose(f.double(), d, atol=1e-5, rtol=0)
    assert imresize(x.half(), 2).dtype == torch.float16


def test_antialias_flag():
    torch.manual_seed(0)
    x = torch.rand(1, 32, 32, dtype=torch.float64)
    smooth = imresize(x, 0.25)
    sharp = imresize(x, 0.25, antialias=False)
    assert smooth.shape == sharp.shape == (1, 8, 8)
    assert smooth.std() < sharp.std()  # the widened kernel averages noise away
    assert torch.equal(imresize(x, 2), imresize(x, 2, antialias=False))  # upscaling never widens


def test_bad_inputs():
    with pytest.raises(TypeError):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), 2)
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4), 2, size=(8, 8))
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4))
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4), 2, border="reflect")
    with pytest.raises(ValueError):
        bicubic_downsample_uint8(np.zeros((8, 8), dtype=np.float32), 2)


def test_round_half_away_from_zero():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999, 254.5, 255.6, -3.0])
    assert round_half_away(x).tolist() == [1.0, 2.0, 3.0, -1.0, -3.0, 2.0, 255.0, 256.0, -3.0]
    assert torch.round(torch.tensor(2.5)).item() == 2.0  # what torch would have done
    assert to_uint8_range(x).tolist() == [1.0, 2.0, 3.0, 0.0, 0.0, 2.0, 255.0, 255.0, 0.0]


def test_modcrop_and_gray_uint8_pipeline():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(13, 10, 3), dtype=np.uint8)
    assert modcrop(rgb, 4).shape == (12, 8, 3)
    assert modcrop(torch.zeros(2, 3, 13, 10), 3).shape == (2, 3, 12, 9)
    lr = bicubic_downsample_uint8(rgb, 4)
    assert lr.shape == (3, 2, 3) and lr.dtype == np.uint8
    # A gray (H, W) image gives the same as each channel of an RGB one.
    for c in range(3):
        assert np.array_equal(bicubic_downsample_uint8(rgb[..., c], 4), lr[..., c])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 40, 50, dtype=torch.float64)
    for scale in (0.25, 3):
        assert torch.allclose(imresize(x.cuda(), scale).cpu(), imresize(x, scale), atol=1e-12, rtol=0)
