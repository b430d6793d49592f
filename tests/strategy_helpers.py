"""A seconds-long training config for the learning-strategy tests (tests/test_train_<strategy>.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litesr.data.train import make_synthetic_set
from litesr.train import Trainer

TINY_RDESA = {"channels": 8, "num_blocks": 2, "reduction": 4, "esa_channels": 4}


def tiny_config(tmp_path: Path, *, folders: int = 1, **sections: Any) -> dict[str, Any]:
    """rdesa (8 channels, 2 blocks) x2, 24-pixel HR patches of three synthetic images per folder, 4 iterations."""
    dirs = []
    for i in range(folders):
        hr = tmp_path / f"hr{i}"
        if not hr.exists():
            make_synthetic_set(hr, count=3, size=40, seed=i)
        dirs.append(str(hr))
    cfg: dict[str, Any] = {
        "name": "t",
        "output": str(tmp_path / "runs"),
        "device": "cpu",
        "model": {"name": "rdesa", "scale": 2, "options": dict(TINY_RDESA)},
        "datasets": {"train": {"hr_dir": dirs if folders > 1 else dirs[0], "patch_size": 24, "workers": 0,
                               "cache_dir": str(tmp_path / "cache")}},
        "train": {"iterations": 4, "batch_size": 2, "ema": {"enabled": False}},
        "val": {"every": 0},
        "checkpoint": {"every": 0},
        "logger": {"print_every": 1, "tensorboard": False, "progress": False},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    return cfg


class Recorder(Trainer):
    """The sr trainer, keeping each step's batch shapes and losses (for checking a mechanism, not a number)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.seen: list[dict[str, Any]] = []
        super().__init__(*args, **kwargs)

    def training_step(self, batch):  # noqa: ANN001, ANN201 - the Trainer seam
        losses = super().training_step(batch)
        self.seen.append({"iteration": self.iteration, "hr": tuple(batch["hr"].shape),
                          "losses": {k: float(v.detach()) for k, v in losses.items()}})
        return losses
