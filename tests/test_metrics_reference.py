"""litesr.metrics against pyiqa and piq on real images: Set5/Set14 crops, the x4 SR outputs of two zoo models (IMDN,
CARN-M official weights) and JPEG-degraded copies. Each metric core is fed the same plane (or RGB image) on both
sides; agreement is asked within 1e-4 relative where pyiqa and piq agree with each other (docs/metrics.md)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from litesr.metrics import create_metric
from tests.metrics_reference_libs import piq_module, pyiqa_module

REL = 1e-4


def _crop(path, size=(192, 240)) -> np.ndarray:
    img = np.asarray(Image.open(path).convert("RGB"))
    h, w = size
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return np.ascontiguousarray(img[top : top + h, left : left + w])


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _sr(weights, hr: np.ndarray) -> np.ndarray:
    from litesr.detect import load_model
    from litesr.evaluate import quantize_uint8
    from litesr.imresize import imresize, to_uint8_range

    model = load_model(weights).eval()
    if getattr(model, "multi_scale", False):  # CARN-M's checkpoint holds x2/x3/x4
        model.set_scale(4)
    x = torch.from_numpy(hr).permute(2, 0, 1)[None].double()
    lr = to_uint8_range(imresize(x, 0.25)).clamp(0, 255).float() / 255
    with torch.inference_mode():
        return quantize_uint8(model(lr)[0])


@pytest.fixture(scope="module")
def pairs(datasets_dir, weights_dir) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, distorted, reference) uint8 RGB pairs, 192x240 (even sizes, FSIM's F = 1)."""
    out = []
    for ds, name in (("Set14", "baboon"), ("Set14", "comic"), ("Set5", "butterfly")):
        hr = _crop(datasets_dir / ds / "HR" / f"{name}.png")
        out.append((f"{name}-jpeg30", _jpeg(hr, 30), hr))
        out.append((f"{name}-jpeg70", _jpeg(hr, 70), hr))
    hr = _crop(datasets_dir / "Set14" / "HR" / "comic.png")
    out.append(("comic-imdn", _sr(weights_dir / "IMDN" / "IMDN_x4.pth", hr), hr))
    out.append(("comic-carn_m", _sr(weights_dir / "CARN" / "carn_m.pth", hr), hr))
    return out


def _rgb(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].double() / 255


def _gray(img: np.ndarray) -> torch.Tensor:
    """The rounded rgb2gray plane both sides get, in [0, 1]."""
    g = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    return torch.from_numpy(np.round(g))[None, None] / 255


def _close(ours: torch.Tensor, ref, label: str, rel: float = REL) -> None:
    ref = float(torch.as_tensor(ref).double().flatten()[0])
    assert abs(float(ours[0]) - ref) <= rel * abs(ref), f"{label}: litesr {float(ours[0]):.8f} vs {ref:.8f}"


def _libs_agree(a, b, rel: float = REL) -> bool:
    a, b = float(torch.as_tensor(a).flatten()[0]), float(torch.as_tensor(b).flatten()[0])
    return abs(a - b) <= rel * abs(b)


def test_gmsd_matches_pyiqa_and_piq(pairs):
    py, pq = pyiqa_module("gmsd_arch"), piq_module("gmsd")
    metric = create_metric("gmsd", color="rgb")  # 1-channel input: the plane as given
    for label, d, r in pairs:
        x, y = _gray(d), _gray(r)
        ours = metric(x, y)
        _close(ours, py.gmsd(x, y, channels=1, test_y_channel=False), f"{label} pyiqa")
        _close(ours, pq.gmsd(x, y, data_range=1.0), f"{label} piq")


@pytest.mark.slow
def test_ms_ssim_matches_pyiqa_and_piq(pairs):
    py, pq = pyiqa_module("ssim_arch"), piq_module("ms_ssim")
    metric = create_metric("ms_ssim", color="rgb")
    for label, d, r in pairs:
        x, y = _gray(d), _gray(r)
        ours = metric(x, y)
        _close(ours, py.ms_ssim(x * 255, y * 255, data_range=255), f"{label} pyiqa")
        _close(ours, pq.multi_scale_ssim(x, y, data_range=1.0), f"{label} piq")
        # RGB: per-channel MS-SSIM averaged, as piq does for colour input
        _close(create_metric("ms_ssim", color="rgb")(_rgb(d), _rgb(r)),
               pq.multi_scale_ssim(_rgb(d), _rgb(r), data_range=1.0), f"{label} piq rgb")


def test_ms_ssim_odd_size_follows_matlab_symmetric_pooling():
    """On odd sizes the two libraries pad differently; litesr averages the last row with itself (msssim.m)."""
    from litesr.metrics._filters import downsample2_symmetric

    x = torch.arange(15.0, dtype=torch.float64).view(1, 1, 3, 5)
    out = downsample2_symmetric(x)
    assert out.shape == (1, 1, 2, 3)
    assert out[0, 0, 1, 2] == x[0, 0, 2, 4]  # the odd corner pairs with itself
    assert out[0, 0, 0, 0] == x[0, 0, :2, :2].mean()


@pytest.mark.slow
def test_vif_matches_piq(pairs):
    pq = piq_module("vif")
    metric = create_metric("vif", color="rgb")
    for label, d, r in pairs:
        x, y = _gray(d), _gray(r)
        _close(metric(x, y), pq.vif_p(x, y, data_range=1.0), f"{label} piq")


def test_fsim_matches_pyiqa_and_piq(pairs):
    py, pq = pyiqa_module("fsim_arch"), piq_module("fsim")
    metric = create_metric("fsim", color="gray")
    for label, d, r in pairs:
        x, y = _gray(d), _gray(r)
        ours = metric(x, y)
        _close(ours, py.fsim(x, y, chromatic=False), f"{label} pyiqa")
        _close(ours, pq.fsim(x, y, chromatic=False, data_range=1.0), f"{label} piq")


@pytest.mark.slow
def test_fsimc_matches_the_libraries_with_their_chroma_rule(pairs):
    """The libraries take |S_I S_Q|^lambda and 4-digit YIQ; with those (chroma="libraries") litesr agrees with them.
    The MATLAB rule (default) differs only where S_I S_Q < 0, which the JPEG copies have."""
    py, pq = pyiqa_module("fsim_arch"), piq_module("fsim")
    lib_rule = create_metric("fsimc", chroma="libraries")
    matlab = create_metric("fsimc")
    for label, d, r in pairs:
        x, y = _rgb(d), _rgb(r)
        ref_py, ref_pq = py.fsim(x, y, chromatic=True), pq.fsim(x, y, chromatic=True, data_range=1.0)
        assert _libs_agree(ref_py, ref_pq), label
        _close(lib_rule(x, y), ref_py, f"{label} pyiqa")
        _close(lib_rule(x, y), ref_pq, f"{label} piq")
        _close(matlab(x, y), ref_pq, f"{label} matlab rule", rel=1e-3)


def test_psnr_ssim_registry_equals_the_paper_protocol(pairs):
    from litesr.metrics import calculate_metrics

    for label, d, r in pairs:
        expected = calculate_metrics(d, r, 4)
        got_p = create_metric("psnr", crop=4)(d, r)
        got_s = create_metric("ssim", crop=4)(d, r)
        assert float(got_p[0]) == pytest.approx(expected.psnr, rel=1e-12), label
        assert float(got_s[0]) == pytest.approx(expected.ssim, rel=1e-12), label


def test_psnr_ssim_match_piq_on_the_same_plane(pairs):
    pq_psnr, pq_ssim = piq_module("psnr"), piq_module("ssim")
    for label, d, r in pairs[:3]:
        x, y = _gray(d), _gray(r)
        _close(create_metric("psnr", color="rgb")(x, y), pq_psnr.psnr(x, y, data_range=1.0), f"{label} psnr")
        # piq's SSIM pads nothing and filters 'valid' like ssim_index; downsample=False keeps full resolution
        _close(create_metric("ssim", color="rgb")(x, y), pq_ssim.ssim(x, y, data_range=1.0, downsample=False),
               f"{label} ssim")
