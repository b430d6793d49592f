"""The training engine behind ``litesr train``.

    from litesr.train import load_config, run
    cfg = load_config("configs/ssiu_x2.yml", overrides=["train.batch_size=8"])
    summary = run(cfg)                       # or run(cfg, resume="runs/ssiu_x2")

Extending it (GAN, multi-task pre-training): see :mod:`litesr.train.trainer` and docs/training.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import DEFAULTS, build_config, load_config
from .trainer import TRAINERS, Trainer, TrainingError, read_state, register_trainer, trainer_class

__all__ = [
    "DEFAULTS",
    "TRAINERS",
    "Trainer",
    "TrainingError",
    "build_config",
    "load_config",
    "read_state",
    "register_trainer",
    "run",
    "trainer_class",
]


def run(cfg: Mapping[str, Any], *, resume: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train with a validated config (from :func:`load_config`/:func:`build_config`); ``resume`` continues a run.

    Refuses to start a fresh run in a folder that already holds one (resume it, or pick another name/output).
    """
    state = read_state(resume) if resume is not None else None
    run_dir = Path(cfg["output"]) / str(cfg["name"])
    if state is None and (run_dir / "state_last.pt").is_file():
        raise ConfigError(f"{run_dir}: already holds a training run; continue it with --resume {run_dir}, "
                          "or choose another name/output")
    trainer = trainer_class(str(cfg["train"]["type"]))(cfg, state=state)
    try:
        return trainer.fit()
    finally:
        trainer.close()
