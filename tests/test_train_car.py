"""CAR: the learned downscaler gives the LR size, trains jointly with the SR model and is exported on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from strategy_helpers import tiny_config

from litesr.archs.car import CARDownscaler, load_downscaler, quantize_ste
from litesr.errors import ConfigError
from litesr.train import build_config, load_config
from litesr.train.car import CARTrainer


def test_downscaler_output_has_the_lr_size_and_keeps_flat_areas_flat() -> None:
    for scale in (2, 3, 4):
        down = CARDownscaler(scale, channels=8, blocks=1)
        hr = torch.rand(2, 3, 12 * scale, 8 * scale)
        assert down(hr).shape == (2, 3, 12, 8)
        flat = torch.full((1, 3, 4 * scale, 4 * scale), 0.3)
        assert torch.allclose(down(flat), torch.full((1, 3, 4, 4), 0.3), atol=1e-6)  # weights sum to 1


def test_quantize_rounds_forward_and_passes_the_gradient() -> None:
    x = torch.tensor([0.1001, 0.5], requires_grad=True)
    y = quantize_ste(x)
    assert torch.allclose(y * 255, torch.round(x.detach() * 255))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(2))


def test_joint_training_updates_the_downscaler_and_exports_it_alone(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path, train={"type": "car", "iterations": 3, "batch_size": 2,
                                                    "ema": {"enabled": False},
                                                    "car": {"channels": 8, "blocks": 1, "lr_weight": 0.1}},
                                   val={"every": 0}, datasets={"train": {"hr_dir": str(tmp_path / "hr0"),
                                                                         "patch_size": 24, "workers": 0,
                                                                         "cache_dir": str(tmp_path / "cache")},
                                                               "val": {"hr_dir": str(tmp_path / "hr0")}}))
    trainer = CARTrainer(cfg)
    before = {k: v.clone() for k, v in trainer.models["downscaler"].state_dict().items()}
    summary = trainer.fit()
    trainer.close()
    after = trainer.models["downscaler"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the SR loss reached the downscaler
    run_dir = Path(summary["run_dir"])
    exported = run_dir / "downscaler_last.safetensors"
    down = load_downscaler(str(exported))
    untrained = CARDownscaler(2, channels=8, blocks=1)
    assert set(down.state_dict()) == set(untrained.state_dict())
    assert down(torch.rand(1, 3, 24, 24)).shape == (1, 3, 12, 12)
    assert 0 < summary["best"]["psnr"] < 100  # validation ran on SR(CAR(HR)) (an untrained tiny model: low)
    lines = (run_dir / "metrics.jsonl").read_text()
    assert '"car_lr"' in lines and '"l1"' in lines
    with pytest.raises(Exception, match="not a CAR downscaler"):
        load_downscaler(str(run_dir / "net_last.safetensors"))


def test_shipped_car_x4_config_reads_and_bad_kernel_is_named(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    cfg = load_config("car_x4")
    assert cfg["train"]["type"] == "car" and cfg["model"]["scale"] == 4
    with pytest.raises(ConfigError, match=r"car\.yml: train\.car\.kernel_size 5"):
        build_config(tiny_config(tmp_path, train={"type": "car", "car": {"kernel_size": 5}}), source="car.yml")
