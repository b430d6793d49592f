"""train.type cycle: both generators and both discriminators step on unpaired folders, and the cycle loss falls."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from litesr.data.train import make_synthetic_set
from litesr.errors import ConfigError
from litesr.train import build_config
from litesr.unsupervised.cycle import CycleTrainer


def config(root: Path, iterations: int, **datasets) -> dict:
    return {
        "name": "cycle", "output": str(root / "runs"), "device": "cpu", "seed": 0,
        "model": {"name": "espcn", "scale": 2},
        "datasets": {"train": {"hr_dir": str(root / "hr"), "lr_dir": str(root / "lr"), "patch_size": 32,
                               "workers": 0, **datasets}},
        "train": {"type": "cycle", "iterations": iterations, "batch_size": 2,
                  "down_generator": {"num_feat": 8, "num_blocks": 1}, "discriminator": {"num_feat": 8}},
        "val": {"every": 0}, "checkpoint": {"every": 0},
        "logger": {"print_every": 1, "tensorboard": False, "progress": False},
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cycle")
    make_synthetic_set(root / "hr", count=3, size=48, seed=1)
    make_synthetic_set(root / "lr", count=3, size=24, seed=7)  # other images: unpaired
    return root


def test_all_four_networks_step_and_cycle_loss_falls(root: Path) -> None:
    trainer = CycleTrainer(build_config(config(root, 25)))
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in trainer.models.items()}
    assert set(before) == {"net", "down", "disc_hr", "disc_lr"}
    cycles: list[float] = []
    trainer.on_iteration_end = lambda metrics: cycles.append(metrics["cycle"])
    try:
        assert trainer.fit()["status"] == "completed"
    finally:
        trainer.close()
    for name, model in trainer.models.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], model.parameters())), f"{name} did not step"
    assert len(cycles) == 25 and sum(cycles[-5:]) < sum(cycles[:5])
    assert (root / "runs" / "cycle" / "disc_lr_last.safetensors").exists() or any((root / "runs" / "cycle").iterdir())


def test_cycle_needs_an_lr_folder(root: Path) -> None:
    cfg = config(root, 1, lr_dir=None)
    with pytest.raises(ConfigError, match="lr_dir"):
        build_config(cfg, source="cycle test")
