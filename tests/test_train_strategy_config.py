"""Strategy keys in the config: a typo or a misuse is one line naming the file and the key, before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from strategy_helpers import Recorder, tiny_config

from litesr.errors import ConfigError
from litesr.train import build_config, load_config


def _write(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "run.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_unknown_strategy_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg["train"]["udl"] = {"stage1_iter": 10}
    path = _write(tmp_path, cfg)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and "'train.udl.stage1_iter'" in message
    assert "did you mean 'train.udl.stage1_iters'" in message
    cfg = tiny_config(tmp_path)
    cfg["train"]["curriculumm"] = []
    with pytest.raises(ConfigError, match="unknown key 'train.curriculumm'.*did you mean 'train.curriculum'"):
        load_config(_write(tmp_path, cfg))


def test_strategies_refused_with_trainers_that_do_not_apply_them(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, train={"type": "car", "udl": {"stage1_iters": 2}})
    with pytest.raises(ConfigError, match=r"x\.yml: train\.udl works with train\.type sr, not 'car'"):
        build_config(cfg, source="x.yml")


def test_udl_stage1_must_leave_a_stage2(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, train={"iterations": 4, "udl": {"stage1_iters": 4}})
    with pytest.raises(ConfigError, match=r"x\.yml: train\.udl\.stage1_iters 4 leaves no iteration for stage 2"):
        build_config(cfg, source="x.yml")


def test_val_self_ensemble_reaches_the_evaluator(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import litesr.evaluate as evaluate_module

    calls = []
    real = evaluate_module.evaluate

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(kwargs.get("self_ensemble", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", spy)
    for flag in (False, True):
        cfg = tiny_config(tmp_path, name=f"se{flag}", val={"every": 0, "self_ensemble": flag},
                          train={"iterations": 1, "batch_size": 2, "ema": {"enabled": False}})
        cfg["datasets"]["val"] = {"hr_dir": str(tmp_path / "hr0")}
        trainer = Recorder(build_config(cfg))
        trainer.fit()
        trainer.close()
    assert calls == [False, True]
