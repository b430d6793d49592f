"""Synthetic degradations: kernel statistics, noise levels, JPEG quality read back, seeded pipelines, eval and train."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litesr.cli import main
from litesr.data import degradations as D
from litesr.errors import ConfigError

KERNEL_FUNCTIONS = [
    lambda: D.gaussian_kernel(21, 2.0),
    lambda: D.gaussian_kernel(21, 3.0, 1.0, 0.7),
    lambda: D.generalized_gaussian_kernel(15, 2.0, 1.5, 0.3, beta=0.6),
    lambda: D.plateau_kernel(15, 2.0, 1.0, 1.1, beta=1.5),
    lambda: D.sinc_kernel(np.pi / 3, 13, pad_to=21),
]


@pytest.mark.parametrize("make", KERNEL_FUNCTIONS)
def test_every_kernel_sums_to_one(make) -> None:  # noqa: ANN001 - a kernel factory
    kernel = make()
    assert kernel.ndim == 2 and kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)


def _second_moments(kernel: np.ndarray) -> np.ndarray:
    ax = np.arange(kernel.shape[0]) - kernel.shape[0] // 2
    xx, yy = np.meshgrid(ax, ax)
    k = kernel.astype(np.float64)
    return np.array([[(k * xx * xx).sum(), (k * xx * yy).sum()], [(k * xx * yy).sum(), (k * yy * yy).sum()]])


def test_anisotropic_gaussian_has_the_asked_covariance() -> None:
    """A wide kernel's second moments are R diag(sx^2, sy^2) R^T (the discrete sum of a sampled Gaussian)."""
    sx, sy, theta = 2.5, 1.0, 0.6
    c, s = math.cos(theta), math.sin(theta)
    rotation = np.array([[c, -s], [s, c]])
    expected = rotation @ np.diag([sx**2, sy**2]) @ rotation.T
    assert np.allclose(_second_moments(D.gaussian_kernel(41, sx, sy, theta)), expected, atol=1e-4)
    iso = _second_moments(D.gaussian_kernel(41, 1.7))
    assert np.allclose(iso, np.diag([1.7**2, 1.7**2]), atol=1e-4)


def test_generalized_gaussian_with_beta_one_is_the_gaussian_and_plateau_is_flatter() -> None:
    assert np.allclose(D.generalized_gaussian_kernel(21, 2.0, 1.2, 0.4, beta=1.0), D.gaussian_kernel(21, 2.0, 1.2, 0.4))
    plateau = D.plateau_kernel(21, 2.0, beta=2.0)
    gaussian = D.gaussian_kernel(21, 2.0)
    centre = 10
    # Flat top: the plateau keeps more of its peak one pixel out than the Gaussian does.
    plateau_ratio = plateau[centre, centre + 1] / plateau[centre, centre]
    assert plateau_ratio > gaussian[centre, centre + 1] / gaussian[centre, centre]


def test_sinc_kernel_is_a_low_pass_with_the_asked_cutoff() -> None:
    kernel = D.sinc_kernel(np.pi / 2, 21, pad_to=41)
    response = np.abs(np.fft.fftshift(np.fft.fft2(kernel, s=(256, 256))))
    freqs = np.fft.fftshift(np.fft.fftfreq(256)) * 2 * np.pi
    radius = np.hypot(*np.meshgrid(freqs, freqs))
    assert response[radius < np.pi / 4].min() > 0.85  # pass band
    assert response[radius > 3 * np.pi / 4].max() < 0.15  # stop band


def test_random_kernels_of_a_stage_sum_to_one_at_the_largest_size() -> None:
    rng = np.random.default_rng(0)
    stage = D.StageConfig()
    for _ in range(50):
        kernel = D.random_kernel(rng, stage)
        assert kernel.shape == (21, 21) and float(kernel.sum()) == pytest.approx(1.0, abs=1e-5)


def test_blur_with_a_delta_kernel_is_the_identity_and_keeps_the_mean() -> None:
    x = torch.rand(3, 20, 24)
    delta = np.zeros((5, 5), np.float32)
    delta[2, 2] = 1
    assert torch.allclose(D.blur(x, delta), x)
    blurred = D.blur(x, D.gaussian_kernel(7, 1.5, 0.8, 0.3))
    assert blurred.shape == x.shape and blurred.mean().item() == pytest.approx(x.mean().item(), abs=0.01)
    shifted = np.zeros((3, 3), np.float32)
    shifted[1, 2] = 1  # a true convolution moves content right by one pixel
    assert torch.allclose(D.blur(x, shifted)[:, :, 1:], x[:, :, :-1])


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_has_the_asked_sigma(gray: bool) -> None:
    x = torch.full((3, 128, 128), 0.5)
    noisy = D.add_gaussian_noise(x, 15.0, np.random.default_rng(1), gray=gray)
    noise = (noisy - x) * 255
    assert noise.std().item() == pytest.approx(15.0, rel=0.02) and abs(noise.mean().item()) < 0.3
    same_planes = torch.allclose(noise[0], noise[1]) and torch.allclose(noise[1], noise[2])
    assert same_planes == gray


def test_poisson_noise_level_follows_the_counts() -> None:
    """Shot noise on a flat image v: variance v / vals times scale^2, where vals = 2^ceil(log2(levels))."""
    x = torch.full((3, 128, 128), 100 / 255)
    x[:, :, :64] = 200 / 255  # two levels -> vals = 2
    scale = 0.5
    noise = D.add_poisson_noise(x, scale, np.random.default_rng(2)) - x
    for value, half in ((100 / 255, noise[:, :, 64:]), (200 / 255, noise[:, :, :64])):
        assert half.var().item() == pytest.approx(value / 2 * scale**2, rel=0.05)
    gray = D.add_poisson_noise(x, scale, np.random.default_rng(2), gray=True) - x
    assert torch.allclose(gray[0], gray[2])


_LUMA_TABLE = np.array([  # JPEG Annex K luminance quantisation table (natural order)
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


def _quality_from_table(table: list[int]) -> int:
    """The libjpeg quality whose scaled Annex K table is ``table`` (IJG jcparam.c: 5000/q below 50, 200 - 2q above)."""
    for q in range(1, 101):
        factor = 5000 // q if q < 50 else 200 - 2 * q  # integers, as libjpeg
        expected = np.clip((_LUMA_TABLE * factor + 50) // 100, 1, 255)
        if np.array_equal(np.sort(expected), np.sort(np.asarray(table))):
            return q
    raise AssertionError("no libjpeg quality gives this table")


@pytest.mark.parametrize("quality", [30, 55, 75, 95])
def test_jpeg_quality_reads_back_from_the_file(quality: int) -> None:
    x = torch.rand(3, 32, 32)
    data = D.encode_jpeg(x, quality)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and _quality_from_table(list(im.quantization[0])) == quality
    # Lower quality, larger error: the round trip really compresses.
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8), size=(64, 64), mode="bicubic")[0].clamp(0, 1)
    assert (D.jpeg(smooth, 30) - smooth).abs().mean() > (D.jpeg(smooth, 95) - smooth).abs().mean()


@pytest.mark.parametrize("name", ["bicubic", "classical", "realesrgan", "bsrgan"])
def test_pipelines_are_seeded_and_give_8_bit_lr_of_the_right_size(name: str) -> None:
    hr = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 12), size=(96, 96), mode="bicubic")[0].clamp(0, 1)
    degradation = D.build_degradation(name, 4)
    a = degradation(hr, np.random.default_rng([7, 0]))
    b = degradation(hr, np.random.default_rng([7, 0]))
    assert a.shape == (3, 24, 24) and torch.equal(a, b)
    assert torch.equal(a, torch.round(a * 255) / 255) and a.min() >= 0 and a.max() <= 1
    if name != "bicubic":  # a random pipeline: another seed, another image
        outs = [degradation(hr, np.random.default_rng([s, 0])) for s in range(1, 4)]
        assert any(not torch.equal(a, o) for o in outs)


def test_degradation_config_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'stage1'"):
        D.build_degradation({"type": "realesrgan", "stage_1": {}}, 4)
    with pytest.raises(ConfigError, match="noise_range"):
        D.build_degradation({"type": "realesrgan", "stage2": {"noise_rnage": [1, 2]}}, 4)
    with pytest.raises(ConfigError, match="jpeg_range"):
        D.build_degradation({"type": "classical", "stage": {"jpeg_range": [10, 120]}}, 2)
    with pytest.raises(ConfigError, match="unknown degradation type"):
        D.build_degradation({"type": "realesrgna"}, 4)
    with pytest.raises(ConfigError, match="no such degradation file"):
        D.build_degradation(str(tmp_path / "nope.yml"), 4)
    good = tmp_path / "deg.yml"
    good.write_text("degradation:\n  type: classical\n  seed: 5\n  stage: {blur_prob: 0, noise_prob: 0}\n")
    assert isinstance(D.build_degradation(str(good), 2), D.ClassicalDegradation)
    assert D.degradation_seed(str(good)) == 5


def test_classical_without_blur_noise_or_jpeg_is_matlab_bicubic() -> None:
    """... in MATLAB's double pipeline im2uint8(imresize(im2double(hr), 1/s)), up to float32 rounding."""
    from litesr.imresize import bicubic_downsample_uint8

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, size=(40, 48, 3)).astype(np.uint8)
    plain = D.build_degradation({"type": "classical", "stage": {"blur_prob": 0, "noise_prob": 0, "jpeg_prob": 0}}, 2)
    ours = D.degrade_uint8(hr, plain, rng).astype(int)
    reference = bicubic_downsample_uint8(hr, 2, round_each_pass=False).astype(int)
    assert np.abs(ours - reference).max() <= 1 and (ours != reference).mean() < 0.002


def _hr_set(root: Path, count: int = 2, size: int = 64) -> Path:
    folder = root / "Tiny" / "HR"
    folder.mkdir(parents=True)
    for i in range(count):
        coarse = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(i))
        up = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")[0].clamp(0, 1)
        Image.fromarray((up * 255).round().byte().permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    return root


def test_eval_degradation_builds_the_same_test_set_for_the_same_seed(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = _hr_set(tmp_path)
    args = ["eval", "--model", "bicubic", "--data-root", str(root), "--dataset", "Tiny", "--scale", "2",
            "--device", "cpu", "--no-progress", "--degradation", "realesrgan"]
    runs = []
    for seed in ("1", "1", "2"):
        out = tmp_path / f"r{len(runs)}.json"
        assert main([*args, "--degradation-seed", seed, "--json", str(out)]) == 0
        runs.append(json.loads(out.read_text())["results"][0])
    assert runs[0]["psnr"] == runs[1]["psnr"] and runs[0]["psnr"] != runs[2]["psnr"]
    assert runs[0]["lr_source"] == "degradation:realesrgan:seed1"
    capsys.readouterr()
    assert main([*args, "--lr-source", "given"]) == 1
    assert "--degradation" in capsys.readouterr().err
    assert main([*args[:-1], "realesrgna"]) == 1
    assert "realesrgna" in capsys.readouterr().err


def test_training_patches_are_degraded_on_the_fly_and_seeded(tmp_path: Path) -> None:
    from litesr.data.train import TrainPatches, collect_pairs

    root = _hr_set(tmp_path, count=2, size=80)
    pairs = collect_pairs([root / "Tiny" / "HR"], [None], 4)
    data = TrainPatches(pairs, 4, 48, degradation=D.build_degradation("realesrgan", 4))
    first, again, other = data[(0, (0, 0, 0))], data[(0, (0, 0, 0))], data[(0, (0, 0, 1))]
    assert first["lr"].shape == (3, 12, 12) and first["hr"].shape == (3, 48, 48)
    assert torch.equal(first["lr"], again["lr"]) and torch.equal(first["hr"], again["hr"])
    assert not torch.equal(first["lr"], other["lr"])
    with pytest.raises(Exception, match="x2"):
        TrainPatches(pairs, 4, 48, degradation=D.build_degradation("bsrgan", 2))
