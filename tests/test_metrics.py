"""PSNR/SSIM of the MATLAB protocol: Y formula, crop, hand-computed values, SSIM against a direct 2-D reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from litesr.metrics import calculate_metrics, psnr, rgb_to_y, ssim


def _random_pair(
    seed: int = 0, shape: tuple[int, ...] = (40, 36, 3), noise: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, noise, size=shape), 0, 255).round().astype(np.uint8)
    return a, b


def _ssim_reference(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Wang's ssim_index written out directly: full 11x11 window, 'valid' positions, one window sum per pixel."""
    r = np.arange(11) - 5.0
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    w = g / g.sum()
    win = np.lib.stride_tricks.sliding_window_view

    def filt(x: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", win(x, (11, 11)), w)

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu1, mu2 = filt(a), filt(b)
    s1, s2, s12 = filt(a * a) - mu1**2, filt(b * b) - mu2**2, filt(a * b) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(m.mean())


def test_y_formula():
    img = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    y = rgb_to_y(img)
    mixed = 16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255
    expected = [235.0, 16.0, 16 + 65.481, 16 + 128.553, 16 + 24.966, mixed]
    assert y.dtype == np.float64
    assert np.allclose(y[0], expected, rtol=0, atol=1e-12)
    # Not rounded: Y of (10, 20, 30) is fractional.
    assert y[0, 5] != round(y[0, 5])
    # Gray counts as three equal channels.
    gray = np.array([[0, 100, 255]], np.uint8)
    assert np.allclose(rgb_to_y(gray), rgb_to_y(np.repeat(gray[..., None], 3, axis=2)), rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        rgb_to_y(np.zeros((4, 4, 4), np.uint8))


def test_identical_images():
    a, _ = _random_pair()
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    m = calculate_metrics(a, a.copy(), 4)
    assert m.psnr == math.inf and m.ssim == pytest.approx(1.0, abs=1e-12)


def test_hand_computed_psnr():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a + np.uint8(10)
    # RGB: every value off by 10 -> MSE 100.
    assert psnr(a, b, y_channel=False) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-12)
    # Y: a gray step of 10 is 10 * 219/255 in Y.
    dy = 10 * 219 / 255
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-9)
    assert psnr(a, b) == pytest.approx(29.4527, abs=1e-4)


def test_crop_border_ignores_the_frame():
    a, b = _random_pair(shape=(30, 30, 3))
    c = a.copy()
    c[:3] = b[:3]
    c[:, -3:] = b[:, -3:]
    assert psnr(a, c, 3) == math.inf
    assert psnr(a, c, 2) < math.inf
    assert psnr(a, c, 0) < psnr(a, c, 2)
    with pytest.raises(ValueError):
        psnr(a, c, 15)


def test_ssim_matches_direct_reference_and_properties():
    a, b = _random_pair(seed=1, shape=(37, 45, 3))
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    assert ssim(a, b) == pytest.approx(_ssim_reference(ya, yb), abs=1e-12)
    # RGB: mean of the per-channel SSIMs.
    per_channel = [_ssim_reference(a[..., c].astype(float), b[..., c].astype(float)) for c in range(3)]
    assert ssim(a, b, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-12)
    # Symmetric, below 1, and lower for more noise.
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    assert ssim(a, b) < 1.0
    _, noisier = _random_pair(seed=1, shape=(37, 45, 3), noise=30.0)
    assert ssim(a, noisier) < ssim(a, b)
    # calculate_metrics gives the same pair as the separate functions, crop included.
    m = calculate_metrics(a, b, 4)
    assert m.psnr == pytest.approx(psnr(a, b, 4), abs=1e-12) and m.ssim == pytest.approx(ssim(a, b, 4), abs=1e-12)
    with pytest.raises(ValueError):
        ssim(a[:10, :10], b[:10, :10])
    with pytest.raises(ValueError):
        psnr(a, b[:-1])


def test_sixteen_bit_uses_peak_65535():
    a, b = _random_pair(seed=2)
    a16, b16 = a.astype(np.uint16) * 257, b.astype(np.uint16) * 257
    # Everything scales by 257, the peak too: the same PSNR and SSIM as the 8-bit pair.
    for y_channel in (True, False):
        assert psnr(a16, b16, 2, y_channel=y_channel) == pytest.approx(psnr(a, b, 2, y_channel=y_channel), abs=1e-9)
        assert ssim(a16, b16, 2, y_channel=y_channel) == pytest.approx(ssim(a, b, 2, y_channel=y_channel), abs=1e-9)
    assert rgb_to_y(np.full((1, 1, 3), 65535, np.uint16))[0, 0] == pytest.approx(235 * 257)
    # Forcing the 8-bit peak on 16-bit data gives a different (wrong) figure.
    assert psnr(a16, b16, 2, peak=255) != pytest.approx(psnr(a16, b16, 2))


def test_gray_images():
    a, b = _random_pair(seed=3, shape=(32, 32))
    rgb_a, rgb_b = np.repeat(a[..., None], 3, axis=2), np.repeat(b[..., None], 3, axis=2)
    assert psnr(a, b, 2) == pytest.approx(psnr(rgb_a, rgb_b, 2), abs=1e-12)
    assert ssim(a, b, 2) == pytest.approx(ssim(rgb_a, rgb_b, 2), abs=1e-12)
    assert psnr(a, b, 2, y_channel=False) == pytest.approx(psnr(rgb_a, rgb_b, 2, y_channel=False), abs=1e-12)
