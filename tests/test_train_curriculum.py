"""Curriculum: the patch size (and degradation) switch at the configured iteration, also after a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from strategy_helpers import Recorder, tiny_config

from litesr.errors import ConfigError
from litesr.train import build_config
from litesr.train.curriculum import stage_at, stage_starts

STAGES = [{"iterations": 2, "patch_size": 16}, {"iterations": 1, "patch_size": 24},
          {"patch_size": 32, "degradation": {"type": "classical"}}]


def test_curriculum_switches_stage_at_the_configured_step(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path, train={"iterations": 5, "batch_size": 2, "ema": {"enabled": False},
                                                    "curriculum": STAGES}))
    trainer = Recorder(cfg)
    trainer.fit()
    sides = [seen["hr"][-1] for seen in trainer.seen]
    assert sides == [16, 16, 24, 32, 32]
    trainer.close()


def test_stage_is_a_function_of_the_iteration() -> None:
    starts = stage_starts(STAGES)
    assert starts == [0, 2, 3]
    assert [stage_at(starts, i) for i in range(6)] == [0, 0, 1, 2, 2, 2]


def test_bad_stage_key_names_file_and_key(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, train={"curriculum": [{"iterations": 2, "patch": 16}, {"patch_size": 24}]})
    with pytest.raises(ConfigError, match=r"cur\.yml: unknown key 'train\.curriculum\[0\]\.patch'.*patch_size"):
        build_config(cfg, source="cur.yml")
    cfg = tiny_config(tmp_path, train={"curriculum": [{"patch_size": 16}, {"patch_size": 24}]})
    with pytest.raises(ConfigError, match=r"train\.curriculum\[0\]\.iterations must be a positive integer"):
        build_config(cfg, source="cur.yml")


def test_scale_curriculum_of_a_multiscale_model(tmp_path: Path) -> None:
    from litesr.data.train import make_synthetic_set
    from litesr.train.multiscale import MultiScaleTrainer

    make_synthetic_set(tmp_path / "hr", count=3, size=48, seed=3)
    cfg = {
        "name": "ms", "output": str(tmp_path / "runs"), "device": "cpu",
        "model": {"name": "vdsr", "scale": 2, "options": {"num_layers": 3, "num_feat": 8}},
        "datasets": {"train": {"hr_dir": str(tmp_path / "hr"), "patch_size": 24, "workers": 0,
                               "cache_dir": str(tmp_path / "cache")}},
        "train": {"type": "multiscale", "scales": [2, 3, 4], "iterations": 6, "batch_size": 2,
                  "ema": {"enabled": False},
                  "curriculum": [{"iterations": 2, "scales": [2]}, {"iterations": 2, "scales": [3]}, {"scales": [4]}]},
        "val": {"every": 0}, "checkpoint": {"every": 0},
        "logger": {"print_every": 1, "tensorboard": False, "progress": False},
    }

    class Seen(MultiScaleTrainer):
        def on_iteration_end(self, metrics):  # noqa: ANN001, ANN202
            self.__dict__.setdefault("factors", []).append(self.batch_scale)

    trainer = Seen(build_config(cfg))
    trainer.fit()
    assert trainer.factors == [2, 2, 3, 3, 4, 4]  # x2 -> x3 -> x4 at the configured steps
    trainer.close()
    cfg["train"]["curriculum"] = [{"iterations": 2, "scales": [8]}, {"scales": [4]}]
    with pytest.raises(ConfigError, match=r"train\.curriculum\[0\]\.scales must be .* from train\.scales"):
        build_config(cfg, source="ms.yml")
    cfg["train"]["curriculum"] = [{"iterations": 2, "patch_size": 24}, {"scales": [4]}]
    with pytest.raises(ConfigError, match=r"unknown key 'train\.curriculum\[0\]\.patch_size'"):
        build_config(cfg, source="ms.yml")
