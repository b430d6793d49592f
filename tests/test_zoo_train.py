"""Every registered architecture trains through the engine: 20 steps of its tiny config lower the loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from litesr.data.train import make_synthetic_set
from litesr.registry import all_archs, count_parameters, create_model
from litesr.train import Trainer, build_config

STEPS = 20
ARCHS = sorted(all_archs())



class Recorder(Trainer):
    """Keeps each step's loss (the engine itself only logs them)."""

    def on_iteration_end(self, metrics):
        self.losses = [*getattr(self, "losses", []), metrics["loss"] if metrics else float("nan")]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_set(tmp_path_factory.mktemp("zoo") / "hr", count=2, size=64, seed=1)


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_trains(arch: str, images: Path, tmp_path: Path) -> None:
    spec = all_archs()[arch]
    scale = 2 if 2 in spec.scales else spec.scales[0]
    if count_parameters(create_model(arch, scale=scale, **spec.tiny)) == 0:
        pytest.skip(f"{arch} has no parameters to train")
    cfg = build_config({
        "name": arch,
        "output": str(tmp_path / "runs"),
        "device": "cpu",
        "seed": 0,
        "model": {"name": arch, "scale": scale, "options": dict(spec.tiny)},
        "datasets": {"train": {"hr_dir": str(images), "patch_size": 16 * scale, "workers": 0, "preload": True,
                               "cache_dir": str(tmp_path.parent / "zoo-cache")}},
        "train": {"iterations": STEPS, "batch_size": 2, "optimizer": {"type": "adam", "lr": 2e-3},
                  "scheduler": {"type": "constant"}, "losses": [{"type": "l1"}], "ema": {"enabled": False}},
        "val": {"every": 0},
        "checkpoint": {"every": 0},
        "logger": {"print_every": STEPS, "jsonl": False, "tensorboard": False, "progress": False},
    }, source=f"{arch} test config")
    trainer = Recorder(cfg)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 0
    losses = trainer.losses
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first, f"{arch}: loss did not fall ({first:.4f} -> {last:.4f}): {[round(v, 4) for v in losses]}"
