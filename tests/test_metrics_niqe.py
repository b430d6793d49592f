"""NIQE against pyiqa's NIQE fed the same pristine model and the same gray plane, the pristine-model fit against the
features pyiqa computes, `litesr fit-niqe`, and one-line errors for bad model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litesr.cli import main
from litesr.data.files import read_rgb_uint8
from litesr.errors import ConfigError
from litesr.metrics import create_metric
from litesr.metrics import niqe as niqe_module
from litesr.metrics.niqe import NIQEModel, fit_niqe_model, gray_uint8_plane, load_niqe_model, niqe_score
from tests.metrics_reference_libs import pyiqa_module
from tests.test_metrics_reference import _jpeg, _sr

PRISTINE = (("Set5", "baby"), ("Set5", "woman"), ("Set14", "barbara"), ("Set14", "pepper"))


@pytest.fixture
def pyiqa_niqe(monkeypatch):
    """pyiqa's NIQE with its Gaussian window kept in float64 (pyiqa casts fspecial's window to float32, which moves
    sigma by up to 4e-4 through the E[x^2] - mu^2 cancellation; MATLAB's window is double), and litesr with float
    noise in flat areas kept as pyiqa has it (litesr's default sets it to the exact 0, see niqe._mscn)."""
    arch = pyiqa_module("niqe_arch")
    import pyiqa.archs.func_util as fu

    def fspecial64(size, sigma, channels=1):
        m = (size - 1.0) / 2.0
        y, x = np.ogrid[-m : m + 1, -m : m + 1]
        h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
        h[h < np.finfo(h.dtype).eps * h.max()] = 0
        return torch.from_numpy(h / h.sum()).repeat(channels, 1, 1, 1)

    monkeypatch.setattr(fu, "fspecial", fspecial64)
    monkeypatch.setattr(niqe_module, "_FLAT", 0.0)
    return arch


@pytest.fixture(scope="module")
def pristine(datasets_dir) -> list[np.ndarray]:
    return [read_rgb_uint8(datasets_dir / ds / "HR" / f"{name}.png") for ds, name in PRISTINE]


@pytest.fixture(scope="module")
def model(pristine) -> NIQEModel:
    return fit_niqe_model(pristine)


def _pyiqa_features(plane: torch.Tensor, arch) -> tuple[torch.Tensor, torch.Tensor]:
    """pyiqa's NIQE features (its MSCN, blockproc, compute_feature and imresize) and each block's mean sigma."""
    import pyiqa.archs.func_util as fu
    import pyiqa.matlab_utils as mu

    h, w = plane.shape
    im = plane[None, None, : h // 96 * 96, : w // 96 * 96]
    kernel = mu.fspecial(7, 7 / 6, 1).to(im)
    mean = mu.imfilter(im, kernel, padding="replicate")
    sigma = (mu.imfilter(im * im, kernel, padding="replicate") - mean**2).abs().sqrt()
    sharp = mu.blockproc(sigma, [96, 96], fun=lambda b, _args: b.mean(dim=(2, 3)))[0, :, 0]
    feats = []
    for scale in (1, 2):
        normalized = fu.normalize_img_with_gauss(im, padding="replicate")
        feats.append(mu.blockproc(normalized, [96 // scale, 96 // scale], fun=arch.compute_feature))
        im = mu.imresize(im / 255.0, scale=0.5, antialiasing=True) * 255.0
    return torch.cat(feats, -1)[0], sharp


def test_fit_equals_the_pristine_model_built_from_pyiqa_features(pristine, pyiqa_niqe):
    arch, model = pyiqa_niqe, fit_niqe_model(pristine)
    kept = []
    for img in pristine:
        feats, sharp = _pyiqa_features(gray_uint8_plane(img), arch)
        kept.append(feats[sharp > 0.75 * sharp.max()])  # estimatemodelparam.m's selection
    feats = torch.cat(kept).numpy()
    rows = feats[~np.isnan(feats).any(axis=1)]
    assert model.patches == feats.shape[0] and model.images == len(pristine)
    np.testing.assert_allclose(model.mu, np.nanmean(feats, axis=0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(model.cov, np.cov(rows, rowvar=False), rtol=1e-4, atol=1e-7)


def test_niqe_matches_pyiqa_on_the_same_plane(datasets_dir, weights_dir, model, pyiqa_niqe):
    arch = pyiqa_niqe
    baboon = read_rgb_uint8(datasets_dir / "Set14" / "HR" / "baboon.png")[:384, :384]
    comic = read_rgb_uint8(datasets_dir / "Set14" / "HR" / "comic.png")
    images = {"baboon": baboon, "baboon-jpeg30": _jpeg(baboon, 30),
              "comic-imdn": _sr(weights_dir / "IMDN" / "IMDN_x4.pth", comic[:360, :248]),
              "comic-carn_m": _sr(weights_dir / "CARN" / "carn_m.pth", comic[:360, :248])}
    mu, cov = torch.from_numpy(model.mu), torch.from_numpy(model.cov)
    scores = {}
    for label, img in images.items():
        plane = gray_uint8_plane(img)
        ref = float(arch.niqe(plane[None, None], mu[None], cov[None]))
        ours = float(niqe_score(plane, mu, cov))
        assert abs(ours - ref) <= 1e-4 * abs(ref), f"{label}: litesr {ours:.6f} vs pyiqa {ref:.6f}"
        scores[label] = ours
    assert scores["baboon-jpeg30"] > scores["baboon"]  # compression makes the image less natural


def test_flat_areas_give_exact_zero_mscn():
    """A flat neighbourhood's MSCN is 0 in exact arithmetic; litesr does not leave the filter's +-1e-14 there, so
    the AGGD fit does not depend on summation order (CPU vs CUDA)."""
    plane = torch.full((100, 120), 117.0, dtype=torch.float64)
    plane[40:60, 50:70] = 30.0
    mscn, _ = niqe_module._mscn(plane, niqe_module.fspecial_gaussian(7, 7 / 6))
    assert (mscn[:30, :40] == 0).all() and (mscn[45:55, 55:65] == 0).all() and (mscn[35:65, 45:75] != 0).any()


def test_niqe_metric_reads_the_model_file_and_ranks_a_blur(tmp_path, model, pristine):
    path = tmp_path / "niqe.npz"
    path.write_bytes(model.to_bytes())
    metric = create_metric("niqe", weights=path)
    assert metric.lower_is_better and metric.no_reference
    img = pristine[3]  # barbara
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    from litesr.imresize import imresize

    blurred = imresize(imresize(x.double() / 255, 0.25), 4.0).clamp(0, 1)
    sharp_score, blur_score = float(metric(x)[0]), float(metric(blurred)[0])
    assert blur_score > sharp_score + 1.0
    assert sharp_score == pytest.approx(float(niqe_score(gray_uint8_plane(img), torch.from_numpy(model.mu),
                                                        torch.from_numpy(model.cov))), rel=1e-12)


def test_model_files_in_the_authors_and_basicsr_names_load(tmp_path, model):
    import scipy.io

    scipy.io.savemat(tmp_path / "niqe_modelparameters.mat", {"mu_prisparam": model.mu[None],
                                                             "cov_prisparam": model.cov})
    np.savez(tmp_path / "niqe_pris_params.npz", mu_pris_param=model.mu, cov_pris_param=model.cov)
    for name in ("niqe_modelparameters.mat", "niqe_pris_params.npz"):
        loaded = load_niqe_model(tmp_path / name)
        np.testing.assert_array_equal(loaded.mu, model.mu)
        np.testing.assert_array_equal(loaded.cov, model.cov)


def test_bad_niqe_models_and_images_are_one_line_errors(tmp_path, model):
    with pytest.raises(ConfigError, match="--metric-weights niqe=FILE"):
        create_metric("niqe")
    with pytest.raises(ConfigError, match="nope.npz: no such NIQE model file"):
        create_metric("niqe", weights=tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ConfigError, match="other.npz: no NIQE model in it"):
        load_niqe_model(tmp_path / "other.npz")
    np.savez(tmp_path / "short.npz", mu_prisparam=np.zeros(18), cov_prisparam=np.eye(18))
    with pytest.raises(ConfigError, match=r"short.npz: NIQE model has mean \(18,\)"):
        load_niqe_model(tmp_path / "short.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="junk.npz: cannot read the NIQE model"):
        load_niqe_model(tmp_path / "junk.npz")
    path = tmp_path / "ok.npz"
    path.write_bytes(model.to_bytes())
    with pytest.raises(ConfigError, match="at least 96x96"):
        create_metric("niqe", weights=path)(torch.rand(1, 3, 64, 200))


def test_cli_fit_niqe_writes_a_model_and_refuses_bad_folders(tmp_path, datasets_dir, capsys):
    import shutil

    folder = tmp_path / "pristine"
    folder.mkdir()
    for name in ("baby", "bird"):
        shutil.copy(datasets_dir / "Set5" / "HR" / f"{name}.png", folder)
    out = tmp_path / "model.npz"
    assert main(["fit-niqe", str(folder), "-o", str(out)]) == 0
    assert "2 images" in capsys.readouterr().out
    direct = fit_niqe_model([read_rgb_uint8(folder / "baby.png"), read_rgb_uint8(folder / "bird.png")])
    np.testing.assert_array_equal(load_niqe_model(out).cov, direct.cov)

    bad = tmp_path / "bad.npz"
    assert main(["fit-niqe", str(tmp_path / "missing"), "-o", str(bad)]) == 1
    assert "no such dataset folder" in capsys.readouterr().err
    (folder / "tiny.png").write_bytes((datasets_dir / "Set5" / "HR" / "baby.png").read_bytes()[:0])
    assert main(["fit-niqe", str(folder), "-o", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tiny.png" in err[0]
    assert not bad.exists()
