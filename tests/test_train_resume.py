"""A run stopped mid-way (SIGTERM in a subprocess, or the same stop path in-process) and resumed ends with exactly the
weights of an uninterrupted run; the config a run writes is exactly what its resume reads back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from litesr.data.train import make_synthetic_set
from litesr.errors import ConfigError
from litesr.train import Trainer, build_config, load_config, read_state, run
from litesr.train.config import dump_config, packaged_configs_dir, read_yaml

TOTAL = 12


def config(tmp_path: Path, name: str, workers: int = 0) -> dict:
    return {
        "name": name,
        "output": str(tmp_path / "runs"),
        "deterministic": True,
        "seed": 3,
        "device": "cpu",
        "model": {"name": "imdn", "scale": 2, "options": {"nf": 16, "num_modules": 1}},
        "datasets": {"train": {"hr_dir": str(tmp_path / "hr"), "patch_size": 24, "data_repeat": 3,
                               "workers": workers, "cache_dir": str(tmp_path / "cache")}},
        "train": {"iterations": TOTAL, "batch_size": 2, "clip_grad": 1.0,
                  "optimizer": {"type": "adamw", "lr": 2e-3},
                  "scheduler": {"type": "cosine", "warmup_iters": 2, "eta_min": 1e-5},
                  "losses": [{"type": "l1"}, {"type": "fft", "weight": 0.01}],
                  "ema": {"enabled": True, "decay": 0.9}},
        "val": {"every": 0},
        "checkpoint": {"every": 0},
        "logger": {"print_every": 1, "tensorboard": False, "progress": False},
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """The uninterrupted run's final net and EMA weights."""
    tmp = tmp_path_factory.mktemp("resume")
    make_synthetic_set(tmp / "hr", count=3, size=40)
    summary = run(build_config(config(tmp, "straight")))
    assert summary["status"] == "completed" and summary["iteration"] == TOTAL
    out = tmp / "runs" / "straight"
    return tmp, load_file(out / "net_last.safetensors"), load_file(out / "net_ema_last.safetensors")


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-6, f"resumed weights differ by {worst}"


def test_sigterm_then_resume_matches_uninterrupted(reference) -> None:
    """Killed with two DataLoader workers, resumed with none: the keyed sample stream does not depend on them."""
    tmp, net_ref, ema_ref = reference
    cfg_file = tmp / "killed.yml"
    cfg_file.write_text(yaml.safe_dump(config(tmp, "killed", workers=2)))
    run_dir = tmp / "runs" / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as in this process (one_thread)
    # Its own process group, signalled as a whole (as a batch scheduler does): DataLoader workers get it too.
    proc = subprocess.Popen([sys.executable, "-m", "litesr.cli", "train", "--config", str(cfg_file)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    log = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    try:
        # Stop it once it has taken a few steps (the JSONL log has one line per step).
        while time.monotonic() < deadline and proc.poll() is None:
            if log.is_file() and sum(1 for line in log.read_text().splitlines() if '"loss"' in line) >= 3:
                os.killpg(proc.pid, signal.SIGTERM)
                break
            time.sleep(0.05)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    stopped_at = read_state(run_dir)["iteration"]
    assert 3 <= stopped_at < TOTAL, f"the run was not stopped mid-way (at {stopped_at}): {output}"
    assert "SIGTERM" in output and "--resume" in output

    summary = run(build_config(config(tmp, "killed")), resume=run_dir)
    assert summary["status"] == "completed" and summary["iteration"] == TOTAL
    assert_same(load_file(run_dir / "net_last.safetensors"), net_ref)
    assert_same(load_file(run_dir / "net_ema_last.safetensors"), ema_ref)
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "interrupted" and e["signal"] == "SIGTERM" for e in events)


class StopAt(Trainer):
    """Stops through the signal handler's own path (request_stop) after a given iteration."""

    stop_after = 5

    def on_iteration_end(self, metrics):
        if self.iteration == self.stop_after:
            self.request_stop("test")


def test_stop_with_workers_then_resume_matches(reference) -> None:
    """Stopped in-process (the signal handler's path) with two workers, resumed with two."""
    tmp, net_ref, ema_ref = reference
    cfg = build_config(config(tmp, "workers", workers=2))
    trainer = StopAt(cfg)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    assert summary == {**summary, "status": "interrupted", "iteration": StopAt.stop_after}
    run_dir = tmp / "runs" / "workers"
    state = torch.load(run_dir / "state_last.pt", weights_only=True)  # plain tensors and containers only
    assert state["iteration"] == StopAt.stop_after
    run(cfg, resume=run_dir)
    assert_same(load_file(run_dir / "net_last.safetensors"), net_ref)
    assert_same(load_file(run_dir / "net_ema_last.safetensors"), ema_ref)


# ------------------------------------------------------------------------------- what a run writes, it reads back


def _optimizer_keys_apply(cfg: dict) -> None:
    from litesr.train.config import OPTIMIZER_KEYS, SCHEDULER_KEYS

    for section, value in cfg["train"].items():
        if section.startswith("optimizer"):
            assert set(value) <= OPTIMIZER_KEYS[value["type"]], (section, sorted(value))
        if section.startswith("scheduler"):
            assert set(value) <= SCHEDULER_KEYS[value["type"]], (section, sorted(value))


@pytest.mark.parametrize("shipped", sorted(p.stem for p in packaged_configs_dir().glob("*.yml")))
def test_shipped_config_round_trip_is_identity(tmp_path: Path, shipped: str) -> None:
    """dump -> load -> dump gives the same text, and only keys of the chosen types are written."""
    cfg = load_config(shipped)
    _optimizer_keys_apply(cfg)
    dump_config(cfg, tmp_path / "a.yml")
    again = load_config(tmp_path / "a.yml")
    dump_config(again, tmp_path / "b.yml")
    assert again == cfg
    assert (tmp_path / "a.yml").read_text() == (tmp_path / "b.yml").read_text()


def test_flag_form_round_trip_is_identity(tmp_path: Path) -> None:
    from litesr.cli import build_parser
    from litesr.cli.train import flags_from_args

    args = build_parser().parse_args(
        ["train", "--model", "imdn", "--scale", "2", "--train_dir", "hr", "--val_dir", "Set5/HR", "--iters", "40",
         "--batch_size", "4", "--patch_size", "48", "--workers", "0", "--seed", "7", "--precision", "fp32",
         "val.every=0", "checkpoint.every=5", "--output", str(tmp_path / "runs"), "--name", "cut"])
    cfg = build_config({}, source="command line", overrides=args.overrides, flags=flags_from_args(args))
    _optimizer_keys_apply(cfg)
    assert "momentum" not in cfg["train"]["optimizer"]  # the key that broke --resume of every flag-started run
    dump_config(cfg, tmp_path / "config.yml")
    assert build_config(read_yaml(tmp_path / "config.yml"), source="config.yml") == cfg


def test_state_written_before_the_fix_still_resumes(tmp_path: Path) -> None:
    """A version-1 state carries every schema default (momentum for adamw): its config is read as what applies."""
    old = build_config({"model": {"name": "imdn"}, "output": str(tmp_path)})
    old["train"]["optimizer"]["momentum"] = 0.9
    old["train"]["scheduler"].update(milestones=[], gamma=0.5, periods=[], restart_weights=[])
    torch.save({"format": "litesr-train-state", "version": 1, "config": old}, tmp_path / "state_last.pt")
    cfg = build_config(read_state(tmp_path)["config"], source="state_last.pt")
    assert "momentum" not in cfg["train"]["optimizer"] and "gamma" not in cfg["train"]["scheduler"]
    with pytest.raises(ConfigError, match="momentum is not used by the 'adamw'"):
        build_config({**old, "train": {**old["train"]}}, source="state_last.pt")
