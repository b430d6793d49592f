"""Arbitrary-scale SR: Meta-SR / LIIF models, the random-scale data pipeline, the scale checks and the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from litesr.arbitrary import check_scale, evaluate_at_scale, upscale_at_scale
from litesr.data.arbitrary_scale import META_SR_SCALES, RandomScalePatches, lr_hr_at_scale, resize_uint8
from litesr.data.train import make_synthetic_set
from litesr.errors import ConfigError
from litesr.imresize import bicubic_downsample_uint8
from litesr.registry import create_model

TINY = {"n_resblocks": 1, "n_feats": 8}


@pytest.mark.parametrize("name,extra", [("metasr", {"hidden": 16}), ("liif", {"hidden": (16, 16)})])
@pytest.mark.parametrize("scale", [1.0, 2, 2.5, 3, 3.7, 4])
def test_models_any_scale(name: str, extra: dict, scale: float) -> None:
    model = create_model(name, **TINY, **extra)
    y = model(torch.rand(1, 3, 9, 11), scale=scale)
    assert y.shape == (1, 3, round(9 * scale), round(11 * scale))


def test_bicubic_residual_starts_at_bicubic() -> None:
    model = create_model("metasr", **TINY, hidden=16, residual="bicubic")
    x = torch.rand(1, 3, 8, 8)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    assert (model(x, scale=2) - bicubic).abs().max() < 0.05


def test_integer_scale_matches_benchmark_protocol() -> None:
    """At an integer factor the Meta-SR protocol is the benchmarks' modcrop + MATLAB imresize on uint8."""
    hr = np.random.default_rng(0).integers(0, 256, (37, 42, 3), dtype=np.uint8)
    lr, crop = lr_hr_at_scale(hr, 3)
    assert np.array_equal(lr, bicubic_downsample_uint8(hr, 3))
    assert crop.shape == (36, 42, 3)


def test_non_integer_protocol_sizes() -> None:
    hr = np.zeros((100, 81, 3), dtype=np.uint8)
    lr, crop = lr_hr_at_scale(hr, 2.5)
    assert lr.shape == (40, 32, 3) and crop.shape == (100, 80, 3)
    assert resize_uint8(lr, (100, 80)).shape == (100, 80, 3)


def test_random_scale_patches(tmp_path: Path) -> None:
    folder = make_synthetic_set(tmp_path / "hr", count=3, size=72, seed=0)
    data = RandomScalePatches([folder], lr_patch=16, seed=3, batch_per_rank=2)
    scales = {data.scale_of(i) for i in range(200)}
    assert scales <= set(META_SR_SCALES) and len(scales) > 20
    a, b = data[(0, (3, 0, 0))], data[(1, (3, 0, 1))]
    assert a["lr"].shape == (3, 16, 16)
    assert a["hr"].shape == b["hr"].shape  # one batch, one factor
    assert torch.equal(data[(0, (3, 0, 0))]["hr"], a["hr"])  # the key decides the sample


def test_integer_model_refuses_non_integer_scale() -> None:
    model = create_model("rdesa", scale=2, channels=8, num_blocks=1, reduction=4, esa_channels=4)
    with pytest.raises(ConfigError, match=r"rdesa is an integer-scale model \(built for x2\); x2.5"):
        check_scale(model, 2.5)
    check_scale(model, 2)


def test_outside_trained_range_warns_once() -> None:
    model = create_model("liif", **TINY, hidden=(8,))
    x = torch.rand(1, 3, 6, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        upscale_at_scale(model, x, 3.5)
        upscale_at_scale(model, x, 6)
        upscale_at_scale(model, x, 8)
    assert [str(w.message) for w in caught if "trained range" in str(w.message)] == [
        "LIIFSR: x6 is outside the trained range x1-x4; expect lower quality"]


def test_evaluate_at_scale_reports_bicubic(tmp_path: Path) -> None:
    folder = make_synthetic_set(tmp_path / "hr", count=2, size=40, seed=1)
    result = evaluate_at_scale(create_model("metasr", **TINY, hidden=8, residual="bicubic"), folder, 2.5)
    assert result.images == 2 and np.isfinite(result.psnr)
    assert abs(result.psnr - result.bicubic_psnr) < 1.0  # a fresh residual model is about bicubic


def test_arbitrary_scale_trainer(tmp_path: Path) -> None:
    from litesr.train import build_config, run

    folder = make_synthetic_set(tmp_path / "hr", count=2, size=64, seed=2)
    for name, options in (("metasr", {**TINY, "hidden": 8}), ("liif", {**TINY, "hidden": [8]})):
        cfg = build_config({
            "name": name, "output": str(tmp_path / "runs"), "device": "cpu", "seed": 0,
            "model": {"name": name, "scale": 2, "options": options},
            "datasets": {"train": {"hr_dir": str(folder), "workers": 0}, "val": {"hr_dir": str(folder)}},
            "train": {"type": "arbitrary_scale", "lr_patch": 12, "sample_queries": 50, "val_scales": [2.5],
                      "iterations": 2, "batch_size": 2, "optimizer": {"type": "adam", "lr": 1e-3},
                      "scheduler": {"type": "constant"}, "losses": [{"type": "l1"}]},
            "val": {"every": 2}, "checkpoint": {"every": 0},
            "logger": {"print_every": 1, "jsonl": False, "tensorboard": False, "progress": False},
        }, source="test")
        summary = run(cfg)
        assert summary["status"] == "completed"
        assert (tmp_path / "runs" / name / "net_best.safetensors").is_file()


def test_arbitrary_scale_trainer_refuses_fixed_models(tmp_path: Path) -> None:
    from litesr.train import build_config

    with pytest.raises(ConfigError, match="arbitrary-scale model"):
        build_config({"model": {"name": "rdesa", "scale": 2}, "train": {"type": "arbitrary_scale"},
                      "datasets": {"train": {"hr_dir": str(tmp_path)}}}, source="test")
