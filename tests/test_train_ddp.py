"""Two CPU processes under torchrun (gloo): the run completes, and only rank 0 logs and checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from litesr.data.train import make_synthetic_set
from litesr.train import read_state

ITERS = 4


def test_torchrun_two_processes(tmp_path: Path) -> None:
    make_synthetic_set(tmp_path / "hr", count=3, size=32)
    cfg = {
        "name": "ddp",
        "output": str(tmp_path / "runs"),
        "device": "cpu",
        "model": {"name": "imdn", "scale": 2, "options": {"nf": 16, "num_modules": 1}},
        "datasets": {"train": {"hr_dir": str(tmp_path / "hr"), "patch_size": 16, "workers": 0,
                               "cache_dir": str(tmp_path / "cache")}},
        "train": {"iterations": ITERS, "batch_size": 4},
        "val": {"every": 0},
        "checkpoint": {"every": 0},
        "logger": {"print_every": 1, "tensorboard": False, "progress": False},
    }
    cfg_file = tmp_path / "ddp.yml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "litesr.cli", "train", "--config", str(cfg_file)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert proc.stdout.count("training imdn x2") == 1, output  # one banner: rank 0 alone reports
    assert "x2 processes" in proc.stdout
    assert proc.stdout.count(f"iter {ITERS}/{ITERS}") == 1, output
    run_dir = tmp_path / "runs" / "ddp"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["iter"] for r in records if "loss" in r]
    assert steps == list(range(1, ITERS + 1))  # each step logged once, not once per process
    assert sum(r.get("event") == "checkpoint" for r in records) == 1
    state = read_state(run_dir)
    assert state["iteration"] == ITERS
    assert state["data"]["world_size"] == 2 and state["data"]["batch_per_rank"] == 2
    assert sorted(p.name for p in run_dir.glob("*.safetensors")) == ["net_ema_last.safetensors",
                                                                      "net_last.safetensors"]
