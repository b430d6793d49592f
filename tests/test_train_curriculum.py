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
