"""The metric registry, the generic Registry, `litesr metrics`, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from litesr.cli import main
from litesr.errors import ConfigError
from litesr.metrics import create_metric, list_metrics
from litesr.registry_base import Registry


def test_registry_did_you_mean_and_patterns():
    reg: Registry[int] = Registry("thing")
    reg.register("MS-SSIM", 1)
    reg.register("fsim", 2)
    assert reg.get("ms_ssim") == 1 and "Ms-Ssim" in reg
    assert reg.names("*sim") == ["fsim", "ms_ssim"]
    with pytest.raises(ConfigError, match="did you mean fsim"):
        reg.get("fsmi")
    with pytest.raises(ValueError, match="twice"):
        reg.register("fsim", 3)


def test_every_metric_is_listed_with_its_direction():
    names = list_metrics()
    for n in ("psnr", "ssim", "ms_ssim", "gmsd", "fsim", "fsimc", "vif", "lpips", "dists", "sharpness"):
        assert n in names
    assert create_metric("gmsd").lower_is_better and not create_metric("fsim").lower_is_better


def test_metrics_rank_a_jpeg_series_and_are_perfect_on_identical_images():
    rng = np.random.default_rng(0)
    hr = (rng.random((1, 3, 192, 192)) * 0.2 + torch.linspace(0, 0.8, 192).view(1, 1, 1, 192).numpy()).clip(0, 1)
    hr = torch.from_numpy(hr)
    mild, strong = hr + 0.01 * torch.randn_like(hr), hr + 0.05 * torch.randn_like(hr)
    for name in ("ms_ssim", "gmsd", "fsim", "fsimc", "vif", "ssim", "psnr"):
        m = create_metric(name)
        a, b = float(m(mild, hr)[0]), float(m(strong, hr)[0])
        assert (a < b) if m.lower_is_better else (a > b), name
    assert float(create_metric("gmsd")(hr, hr)[0]) == 0.0
    assert float(create_metric("fsim")(hr, hr)[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(create_metric("ms_ssim")(hr, hr)[0]) == pytest.approx(1.0, abs=1e-12)


def test_sharpness_falls_with_blur():
    from litesr.imresize import imresize

    torch.manual_seed(0)
    img = torch.rand(1, 3, 96, 96, dtype=torch.float64)
    blurred = imresize(imresize(img, 0.5), 2.0).clamp(0, 1)
    m = create_metric("sharpness")
    assert float(m(img)[0]) > float(m(blurred)[0])


def test_batched_scores_equal_single_images():
    torch.manual_seed(0)
    x, y = torch.rand(3, 3, 64, 64, dtype=torch.float64), torch.rand(3, 3, 64, 64, dtype=torch.float64)
    m = create_metric("gmsd")
    batch = m(x, y)
    assert batch.shape == (3,) and batch.dtype == torch.float64
    assert torch.allclose(batch, torch.cat([m(x[i], y[i]) for i in range(3)]))


def test_bad_input_is_one_clear_error():
    with pytest.raises(ConfigError, match="did you mean fsim"):
        create_metric("fsmi")
    with pytest.raises(ConfigError, match="has no option colour"):
        create_metric("gmsd", colour="y")
    with pytest.raises(ConfigError, match=r"SR is 64x48 .* HR 64x64"):
        create_metric("gmsd")(torch.rand(1, 3, 48, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="gray vs RGB"):
        create_metric("fsim")(torch.rand(1, 1, 64, 64), torch.rand(1, 3, 64, 64))


def test_cli_metrics_lists_and_eval_rejects_typos_and_missing_weights(tmp_path, capsys):
    assert main(["metrics", "fsim*"]) == 0
    assert "fsimc" in capsys.readouterr().out
    out = tmp_path / "r.json"
    base = ["eval", "--model", "bicubic", "--scale", "4", "--dataset", str(tmp_path), "--json", str(out)]
    assert main([*base, "--metric", "gmsd,fsmi"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean fsim" in err[0]
    assert main([*base, "--metric", "lpips"]) == 1
    assert "--metric-weights lpips=FILE" in capsys.readouterr().err
    assert main([*base, "--metric", "lpips", "--metric-weights", f"lpips={tmp_path / 'no.pth'}"]) == 1
    assert "no.pth: no such weights file" in capsys.readouterr().err
    assert not out.exists()


def test_cli_eval_adds_metric_columns(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "HR").mkdir()
    for i in range(2):
        Image.fromarray((rng.random((192, 200, 3)) * 255).astype(np.uint8)).save(tmp_path / "HR" / f"im{i}.png")
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "bicubic", "--scale", "4", "--dataset", str(tmp_path / "HR"), "--metric", "gmsd",
                 "--metric", "vif", "--json", str(out), "--no-progress"]) == 0
    import json

    res = json.loads(out.read_text())["results"][0]
    assert set(res["scores"]) == {"gmsd", "vif"} and set(res["images"][0]["scores"]) == {"gmsd", "vif"}
    assert "gmsd" in capsys.readouterr().out
