"""Crash safety: a training process SIGKILLed at chosen moments (between steps, inside a checkpoint write, during
validation), then resumed, ends exactly where an uninterrupted run of the same seed ends: final weights, EMA,
optimiser states and metrics log (fp32 within 1e-6), with a consistent checkpoint set and no temporary file left.

The killed runs are real processes: ``python -m litesr.cli train`` for the flag form (the issue's command), torchrun
for DDP, and otherwise a fork of this test process that runs the same CLI entry point (no second torch import, which
on a loaded 2-core machine costs more than the training). The test-only hook ``LITESR_TEST_PAUSE`` makes the process
stop at an exact point (and write a marker file) so that the kill lands there.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from litesr.cli import main
from litesr.data.train import make_synthetic_set
from litesr.train.state import MANIFEST_FILE, PAUSE_ENV, STATE_FILE, verify_checkpoint_set

ITERS = 10
TIMING_KEYS = {"it_per_s", "eta_s", "time"}  # wall-clock fields of the step records
TINY_IMDN = {"nf": 16, "num_modules": 1}


# ------------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    make_synthetic_set(root / "hr", count=3, size=32, seed=1)
    make_synthetic_set(root / "val", count=1, size=24, seed=2)
    return root


def config(root: Path, name: str, **sections: Any) -> dict[str, Any]:
    """A config-file run: tiny IMDN x2, 10 steps, a checkpoint every 3, losses logged every 2 (a logging window is
    open at each checkpoint), EMA, validation every 4."""
    cfg: dict[str, Any] = {
        "name": name,
        "output": str(root / "runs"),
        "seed": 5,
        "deterministic": True,
        "device": "cpu",
        "model": {"name": "imdn", "scale": 2, "options": TINY_IMDN},
        "datasets": {"train": {"hr_dir": str(root / "hr"), "patch_size": 16, "workers": 0,
                               "cache_dir": str(root / "cache")},
                     "val": {"name": "val", "hr_dir": str(root / "val")}},
        "train": {"iterations": ITERS, "batch_size": 2, "optimizer": {"type": "adamw", "lr": 2e-3},
                  "scheduler": {"type": "cosine", "warmup_iters": 2, "eta_min": 1e-5},
                  "losses": [{"type": "l1"}, {"type": "fft", "weight": 0.01}], "ema": {"decay": 0.9}},
        "val": {"every": 4},
        "checkpoint": {"every": 3},
        "logger": {"print_every": 2, "tensorboard": False, "progress": False},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    return cfg


def write_config(root: Path, cfg: Mapping[str, Any]) -> Path:
    path = root / f"{cfg['name']}.yml"
    path.write_text(yaml.safe_dump(dict(cfg)), encoding="utf-8")
    return path


def wait_for(marker: Path, alive: Any, log: Path | None, timeout: float = 300.0, processes: int = 1) -> list[int]:
    """Wait until ``processes`` processes paused (each appends a line with its pid to ``marker``); their pids."""
    deadline = time.monotonic() + timeout
    while not marker.exists() or marker.read_text().count("\n") < processes:
        if not alive():
            raise AssertionError(f"the run ended before its pause point: {log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no pause within {timeout} s")
        time.sleep(0.02)
    return [int(line.rsplit(" ", 1)[1]) for line in marker.read_text().splitlines()]


def fork_cli(argv: Sequence[str], log: Path, pause: str | None = None) -> int:
    """``litesr <argv>`` in a forked child (output to ``log``); returns its pid."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        rc = 99
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.environ.pop(PAUSE_ENV, None)
            if pause:
                os.environ[PAUSE_ENV] = pause
            rc = main(list(argv))
        except BaseException:  # noqa: BLE001 - report anything, then leave
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            os._exit(rc)
    return pid


def kill_forked_at(argv: Sequence[str], point: str, tmp: Path) -> None:
    """Run ``litesr <argv>`` until it pauses at ``point`` (``step@7`` ...), then SIGKILL it."""
    marker = tmp / f"paused-{point.replace('@', '-')}-{time.monotonic_ns()}"
    log = marker.with_suffix(".log")
    pid = fork_cli(argv, log, f"{point}:{marker}")
    state = {"status": None}

    def alive() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            state["status"] = status
        return not done

    try:
        wait_for(marker, alive, log)
    finally:
        if state["status"] is None:
            os.kill(pid, signal.SIGKILL)
            _, state["status"] = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(state["status"]) and os.WTERMSIG(state["status"]) == signal.SIGKILL


def cli(*argv: str) -> None:
    assert main(list(argv)) == 0


def records(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


def assert_close(a: Any, b: Any, where: str, tol: float = 1e-6) -> None:
    """Nested tensors/containers equal (tensors within ``tol``)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape, where
        worst = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
        assert worst <= tol, f"{where}: differs by {worst}"
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping) and set(a) == set(b), f"{where}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}", tol)
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]", tol)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-6, abs=tol), f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def assert_same_run(resumed: Path, reference: Path) -> None:
    """The resumed run's files against the uninterrupted run's."""
    weights = sorted(p.name for p in reference.glob("*_last.safetensors"))
    assert weights == sorted(p.name for p in resumed.glob("*_last.safetensors"))
    assert "net_last.safetensors" in weights
    for name in weights:
        assert_close(load_file(resumed / name), load_file(reference / name), name)
    a = torch.load(resumed / STATE_FILE, weights_only=True)
    b = torch.load(reference / STATE_FILE, weights_only=True)
    for key in ("iteration", "models", "ema", "ema_updates", "optimizers", "scheduler", "rng", "best"):
        assert_close(a[key], b[key], key)
    assert_close(a["log"]["window"], b["log"]["window"], "log.window")
    assert_close(records(resumed), records(reference), "metrics.jsonl")
    assert verify_checkpoint_set(resumed, a["iteration"]) == []
    assert not list(resumed.glob(".*.tmp")), "a temporary file was left behind"


# --------------------------------------------------------------------------------------------- config-started


@pytest.fixture(scope="module")
def reference(data: Path) -> Path:
    """The uninterrupted config-file run (in this process)."""
    cli("train", "--config", str(write_config(data, config(data, "reference"))))
    run = data / "runs" / "reference"
    assert verify_checkpoint_set(run, ITERS) == []
    return run


@pytest.mark.parametrize("point", ["step@5", "checkpoint-state@6", "checkpoint-weights@6", "checkpoint-manifest@9",
                                   "validation@8"])
def test_config_run_killed_then_resumed_matches(data: Path, reference: Path, point: str) -> None:
    name = f"cfg-{point.replace('@', '-')}"
    run = data / "runs" / name
    kill_forked_at(["train", "--config", str(write_config(data, config(data, name)))], point, data)
    iteration = int(point.split("@")[1])
    if point.startswith("checkpoint-state"):
        # Killed inside the state write: the temporary file is there, the previous complete set is intact.
        assert list(run.glob(f".{STATE_FILE}.*.tmp"))
        assert verify_checkpoint_set(run, iteration - 3) == []
    elif point.startswith(("checkpoint-weights", "checkpoint-manifest")):
        # The state is already the new one: the set on disk is mixed until the resume rewrites it from the state.
        state = torch.load(run / STATE_FILE, weights_only=True)
        assert state["iteration"] == iteration
        assert verify_checkpoint_set(run, iteration)
        # Resuming repairs the set from the state before anything else (here with nothing left to train).
        cli("train", "--resume", str(run), f"train.iterations={iteration}")
        assert verify_checkpoint_set(run, iteration) == []
        assert_close(load_file(run / "net_ema_last.safetensors"), state["ema"], "net_ema_last")
        assert_close(load_file(run / "net_last.safetensors"), state["models"]["net"], "net_last")
    cli("train", "--resume", str(run))
    assert_same_run(run, reference)


# ------------------------------------------------------------------------------------------ the flag form


def flag_command(root: Path, name: str) -> list[str]:
    """The issue's command with tiny sizes (the options it names are all there)."""
    return ["train", "--model", "imdn", "--scale", "2", "--train_dir", str(root / "hr"), "--val_dir", str(root / "val"),
            "--iters", str(ITERS), "--batch_size", "2", "--patch_size", "16", "--workers", "0", "--seed", "7",
            "--precision", "fp32", "--deterministic", "--model-opt", "nf=16", "--model-opt", "num_modules=1",
            "val.every=0", "checkpoint.every=3", "logger.tensorboard=false", "logger.progress=false",
            "--output", str(root / "flag_runs"), "--name", name]


def test_flag_started_run_killed_in_a_subprocess_resumes_exactly(data: Path) -> None:
    """``litesr train --model ... --iters ...`` (no config file) SIGKILLed after step 7, then ``--resume``."""
    run = data / "flag_runs" / "cut"
    marker = data / "flag-paused"
    env = {**os.environ, "OMP_NUM_THREADS": "1", PAUSE_ENV: f"step@7:{marker}"}
    proc = subprocess.Popen([sys.executable, "-m", "litesr.cli", *flag_command(data, "cut")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(marker, lambda: proc.poll() is None, None)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, output
    assert torch.load(run / STATE_FILE, weights_only=True)["iteration"] == 6

    cli(*flag_command(data, "straight"))  # the uninterrupted run, meanwhile
    cli("train", "--resume", str(run))
    straight = data / "flag_runs" / "straight"
    assert_same_run(run, straight)
    # The run folder's own config is what its resume reads back: no key of another optimiser (momentum) in it.
    written = yaml.safe_load((run / "config.yml").read_text())
    assert set(written["train"]["optimizer"]) == {"type", "lr", "betas", "weight_decay", "eps", "fused"}
    cli("train", "--resume", str(straight))  # a finished run resumes too (nothing left to do)
    assert_same_run(run, straight)


# ------------------------------------------------------------------------------ other trainers and precisions


def test_gan_run_killed_then_resumed_matches(data: Path) -> None:
    gan = {"model": {"name": "srgan", "scale": 4, "options": {"num_blocks": 1, "num_feat": 8}},
           "datasets": {"train": {"hr_dir": str(data / "hr"), "patch_size": 32, "workers": 0,
                                  "cache_dir": str(data / "cache")}},
           "train": {"type": "gan", "iterations": 6, "batch_size": 2, "losses": [{"type": "l1", "weight": 1.0}],
                     "discriminator": {"num_feat": 8}, "perceptual": {"weight": 0.0}, "adversarial": {"weight": 0.1},
                     "ema": {"decay": 0.9}},
           "val": {"every": 0}, "checkpoint": {"every": 2}}
    cli("train", "--config", str(write_config(data, config(data, "gan-straight", **gan))))
    kill_forked_at(["train", "--config", str(write_config(data, config(data, "gan-cut", **gan)))], "step@3", data)
    run = data / "runs" / "gan-cut"
    cli("train", "--resume", str(run))
    assert_same_run(run, data / "runs" / "gan-straight")
    assert (run / "disc_last.safetensors").is_file()


def test_multiscale_run_killed_then_resumed_matches(data: Path) -> None:
    ms = {"model": {"name": "vdsr", "scale": 2, "options": {"num_layers": 3, "num_feat": 8}},
          "datasets": {"train": {"hr_dir": str(data / "hr"), "patch_size": 12, "workers": 0,
                                 "cache_dir": str(data / "cache")}},
          "train": {"type": "multiscale", "scales": [2, 3], "iterations": 8, "batch_size": 2,
                    "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
                    "scheduler": {"type": "multistep", "milestones": [5], "gamma": 0.5},
                    "losses": [{"type": "l2"}], "clip_theta": 1e-3, "ema": {"decay": 0.9}},
          "val": {"every": 0}}
    cli("train", "--config", str(write_config(data, config(data, "ms-straight", **ms))))
    kill_forked_at(["train", "--config", str(write_config(data, config(data, "ms-cut", **ms)))],
                   "checkpoint-weights@6", data)
    run = data / "runs" / "ms-cut"
    cli("train", "--resume", str(run))
    assert_same_run(run, data / "runs" / "ms-straight")


def _cpu_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.skipif(not _cpu_bf16(), reason="this CPU has no bf16 instructions (avx512_bf16/AMX; e.g. an AVX2-only "
                                             "AMD EPYC), where litesr refuses train.precision bf16")
def test_bf16_run_killed_then_resumed_matches(data: Path) -> None:
    bf16 = {"train": {**config(data, "x")["train"], "precision": "bf16"}}
    cli("train", "--config", str(write_config(data, config(data, "bf16-straight", **bf16))))
    kill_forked_at(["train", "--config", str(write_config(data, config(data, "bf16-cut", **bf16)))], "step@5", data)
    run = data / "runs" / "bf16-cut"
    cli("train", "--resume", str(run))
    assert_same_run(run, data / "runs" / "bf16-straight")


# ------------------------------------------------------------------------------------------------------- DDP


def torchrun(*argv: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "litesr.cli", *argv]


def test_torchrun_two_processes_killed_then_resumed_matches(data: Path) -> None:
    """Both processes paused after step 4 (checkpoint at 3) and the whole job SIGKILLed; resumed under torchrun."""
    ddp = {"train": {**config(data, "x")["train"], "iterations": 6, "batch_size": 4}, "val": {"every": 0}}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    marker = data / "ddp-paused"
    straight = subprocess.Popen(torchrun("train", "--config", str(write_config(data, config(data, "ddp-straight",
                                                                                            **ddp)))),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cut = subprocess.Popen(torchrun("train", "--config", str(write_config(data, config(data, "ddp-cut", **ddp)))),
                           env={**env, PAUSE_ENV: f"step@4:{marker}"}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    workers: list[int] = []
    try:
        workers = wait_for(marker, lambda: cut.poll() is None, None, processes=2)
    finally:
        # torchrun starts each worker in a session of its own: kill them, then the agent.
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        os.killpg(cut.pid, signal.SIGKILL)
        cut_output, _ = cut.communicate(timeout=60)
        straight_output, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, straight_output
    run = data / "runs" / "ddp-cut"
    state = torch.load(run / STATE_FILE, weights_only=True)
    assert state["iteration"] == 3 and state["data"]["world_size"] == 2, cut_output
    resumed = subprocess.run(torchrun("train", "--resume", str(run)), env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming imdn x2" in resumed.stdout
    assert_same_run(run, data / "runs" / "ddp-straight")


# ------------------------------------------------------------------------------------------------------ slow


@pytest.mark.slow
def test_twenty_random_kills_then_resumed_matches(data: Path, reference: Path) -> None:
    """SIGKILL at 20 random moments (a checkpoint every step, so many land inside a write), resuming after each."""
    name = "random-kills"
    cfg = config(data, name, checkpoint={"every": 1})
    straight = config(data, "random-straight", checkpoint={"every": 1})
    cli("train", "--config", str(write_config(data, straight)))
    config_file = write_config(data, cfg)
    run = data / "runs" / name
    rng = random.Random(20)
    log = data / f"{name}.log"
    kills = 0
    while kills < 20:
        started = (run / STATE_FILE).is_file()
        argv = ["train", "--resume", str(run)] if started else ["train", "--config", str(config_file)]
        pid = fork_cli(argv, log)
        time.sleep(rng.uniform(0.0, 1.5))
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:  # finished before the kill: start this run again from scratch
            assert json.loads((run / MANIFEST_FILE).read_text())["iteration"] == ITERS
            for path in run.iterdir():
                path.unlink()
            continue
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
    cli("train", "--resume", str(run)) if (run / STATE_FILE).is_file() else cli("train", "--config", str(config_file))
    assert_same_run(run, data / "runs" / "random-straight")
