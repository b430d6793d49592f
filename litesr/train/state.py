"""A run's resumable state on disk: the checkpoint set, its manifest, the training-state file and the metrics log.

One file is the source of truth for resuming: ``state_last.pt`` (every model, the EMA, the optimisers, RNG states,
counters and the config). The exported weights (``net_last``, ``net_ema_last``, ``disc_last`` ...) are written after
it, and ``checkpoint.json`` last: it names the iteration and the SHA-256 of every file of the set, so a set that a
crash left mixed from two iterations is recognised (:func:`verify_checkpoint_set`) and rewritten from the state when
the run resumes. Every file is written atomically (temporary file, then rename); the temporary files a SIGKILL leaves
behind are removed on resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..checkpoint import atomic_output, load_state_dict, save_safetensors
from ..descriptor import describe, is_bound
from ..errors import ConfigError, LitesrError
from .config import dump_config, prune_unused_keys

# 2: the config holds only the keys that apply to its optimiser/scheduler types; the metrics-log offset is saved.
STATE_VERSION = 2
STATE_FILE = "state_last.pt"
MANIFEST_FILE = "checkpoint.json"
METRICS_FILE = "metrics.jsonl"
PAUSE_ENV = "LITESR_TEST_PAUSE"


class TrainingError(LitesrError):
    """Training cannot go on (diverged, or a checkpoint does not belong to this run)."""


# ---------------------------------------------------------------------------------------------------------------
# RNG states as plain lists and tensors (so the state loads with weights_only=True)


def rng_state(device: torch.device) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------------------------
# Reading


def find_state_file(path: str | os.PathLike) -> Path:
    """``--resume`` takes a run folder or its state file."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no training state to resume from (expected a run folder or its {STATE_FILE})")
    return path


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The training state of a run folder (or state file), its config brought up to :data:`STATE_VERSION`."""
    path = find_state_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing error
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise TrainingError(f"{path}: not a readable litesr training state ({first})") from None
    if not isinstance(state, dict) or state.get("format") != "litesr-train-state":
        raise TrainingError(f"{path}: not a litesr training state")
    if int(state.get("version", 1)) < 2 and isinstance(state.get("config"), dict):
        # Version 1 stored every schema default, e.g. train.optimizer.momentum for adamw: keep what applies.
        prune_unused_keys(state["config"])
    return state


def warm_start(model: nn.Module, path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Load every tensor of ``path`` whose name and shape match ``model`` (x2 -> x3/x4: all but the upsampler).

    Returns (loaded keys, skipped keys with the reason)."""
    source = load_state_dict(path)
    own = model.state_dict()
    loaded, skipped = [], []
    for key, tensor in own.items():
        if key not in source:
            skipped.append(f"{key} (not in checkpoint)")
        elif tuple(source[key].shape) != tuple(tensor.shape):
            skipped.append(f"{key} (shape {tuple(source[key].shape)} vs {tuple(tensor.shape)})")
        else:
            loaded.append(key)
    if not loaded:
        raise ConfigError(f"{path}: no tensor of this checkpoint fits the model (wrong architecture?)")
    model.load_state_dict({k: source[k] for k in loaded}, strict=False)
    return loaded, skipped


# ---------------------------------------------------------------------------------------------------------------
# Writing the checkpoint set


def pause_for_crash_test(point: str, iteration: int) -> None:
    """Test-only hook: with ``LITESR_TEST_PAUSE=<point>@<iteration>:<marker file>`` the process appends a line
    with its pid to the marker file and sleeps at that point, so that a crash test's SIGKILL lands exactly there.
    Points: ``step`` (after an iteration), ``validation`` (after the first validation set), ``checkpoint-state``
    (state written to its temporary file, not renamed yet), ``checkpoint-weights`` (state in place, the first
    exported weights written, the others not), ``checkpoint-manifest`` (every file but the manifest written)."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    where, _, marker = spec.partition(":")
    want, _, at = where.partition("@")
    if want != point or not at.isdigit() or int(at) != iteration or not marker:
        return
    with open(marker, "a", encoding="utf-8") as f:  # one line per paused process (torchrun: each rank)
        f.write(f"{point}@{iteration} pid {os.getpid()}\n")
    while True:  # until killed
        time.sleep(0.5)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint_set(
    run_dir: Path,
    iteration: int,
    weights: Mapping[str, tuple[Mapping[str, Tensor], dict[str, str]]],
    state: Mapping[str, Any] | None,
) -> None:
    """``state_last.pt`` (unless ``state`` is None: it is already on disk), then ``weights`` ({file name: (tensors,
    metadata)}), then the manifest naming them all at ``iteration``. A crash at any point leaves either the previous
    complete set or a state file newer than the manifest, which :func:`verify_checkpoint_set` reports."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if state is not None:
        with atomic_output(run_dir / STATE_FILE) as tmp:
            torch.save(dict(state), tmp)
            pause_for_crash_test("checkpoint-state", iteration)
    for i, (name, (tensors, meta)) in enumerate(weights.items()):
        save_safetensors(tensors, run_dir / name, meta)
        if i == 0:
            pause_for_crash_test("checkpoint-weights", iteration)
    pause_for_crash_test("checkpoint-manifest", iteration)
    files = [STATE_FILE, *weights]
    manifest = {"format": "litesr-checkpoint-set", "iteration": int(iteration),
                "files": {name: {"bytes": (run_dir / name).stat().st_size, "sha256": sha256_of(run_dir / name)}
                          for name in files}}
    with atomic_output(run_dir / MANIFEST_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def verify_checkpoint_set(run_dir: str | os.PathLike, iteration: int | None = None) -> list[str]:
    """What is wrong with a run folder's checkpoint set (empty: every file is the one the manifest names, all of
    one iteration, ``iteration`` when given)."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{path}: no readable manifest ({exc.__class__.__name__})"]
    problems = []
    if iteration is not None and manifest.get("iteration") != iteration:
        problems.append(f"{path}: names iteration {manifest.get('iteration')}, the state is at {iteration}")
    for name, entry in (manifest.get("files") or {}).items():
        file = run_dir / name
        if not file.is_file():
            problems.append(f"{file}: missing")
        elif file.stat().st_size != entry.get("bytes") or sha256_of(file) != entry.get("sha256"):
            problems.append(f"{file}: not the file of iteration {manifest.get('iteration')}")
    return problems


# Temporary files of fileio.atomic_output: ".<name>.<random>.tmp".
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp$")
_OWN_SUFFIXES = (".safetensors", ".pt", ".json", ".yml")


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files that a killed writer left in the run folder (never a complete file)."""
    removed = []
    for path in run_dir.glob(".*.tmp"):
        match = _TEMPORARY.match(path.name)
        if match and match.group("name").endswith(_OWN_SUFFIXES) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------------------------
# The metrics log


def metrics_log_size(run_dir: Path) -> int:
    path = run_dir / METRICS_FILE
    return path.stat().st_size if path.is_file() else 0


def rewind_metrics_log(run_dir: Path, size: int) -> None:
    """Cut ``metrics.jsonl`` back to ``size`` bytes: the records after the checkpoint being resumed belong to
    iterations that will run again (and a kill may have left half a line)."""
    path = run_dir / METRICS_FILE
    if path.is_file() and path.stat().st_size > size:
        os.truncate(path, size)


# ---------------------------------------------------------------------------------------------------------------
# The trainer's side: what goes into the state and the checkpoint set, and how a resumed run takes it back


class ResumableState:
    """Checkpointing for :class:`~litesr.train.Trainer` (a base class of it, kept here with the files it writes).

    Uses the trainer's ``models``, ``ema``, ``optimizers``, ``scaler``, ``schedule``, counters, ``run_dir`` and
    ``monitor``."""

    # Set by the trainer's constructor.
    cfg: dict[str, Any]
    run_dir: Path
    device: torch.device

    def _metadata(self) -> dict[str, str]:
        net = self.net
        identity = describe(net).metadata()
        config = identity["config"] if is_bound(net) else {"scale": self.scale}
        return {"arch": identity["arch"], "config": json.dumps(config),
                "iteration": str(self.iteration), "run": str(self.cfg["name"])}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as plain tensors/lists/dicts (loads with ``weights_only=True``)."""
        return {
            "format": "litesr-train-state",
            "version": STATE_VERSION,
            "iteration": self.iteration,
            "config": self.cfg,
            "models": {name: m.state_dict() for name, m in self.models.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scheduler": {"type": self.schedule.kind, "iteration": self.iteration, "total": self.total_iterations},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(self.device),
            "data": {"consumed_per_rank": self.iteration * self.per_rank_batch, "world_size": self.dist.world_size,
                     "batch_per_rank": self.per_rank_batch, "seed": int(self.cfg["seed"])},
            "counters": {"nonfinite_total": self.nan_total, "nonfinite_in_row": self.nan_in_row,
                         "elapsed_s": self.elapsed_before},
            "best": dict(self.best),
            # The metrics log up to this checkpoint (a resumed run cuts what came after) and the open logging window.
            "log": {"metrics_bytes": metrics_log_size(self.run_dir),
                    "window": {"sums": dict(self.log_window["sums"]), "steps": int(self.log_window["steps"])}},
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        for name, model in self.models.items():
            model.load_state_dict(state["models"][name], strict=True)
        if self.ema is not None:
            if state.get("ema") is None:
                raise TrainingError("the training state has no EMA weights but train.ema.enabled is true")
            self.ema.load_state_dict(state["ema"])
            self.ema.updates = int(state.get("ema_updates", 0))
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        counters = state.get("counters", {})
        self.nan_total = int(counters.get("nonfinite_total", 0))
        self.nan_in_row = int(counters.get("nonfinite_in_row", 0))
        self.elapsed_before = float(counters.get("elapsed_s", 0.0))
        self.best = dict(state.get("best") or {})
        log = state.get("log") or {}
        window = log.get("window") or {}
        self.log_window = {"sums": {str(k): float(v) for k, v in (window.get("sums") or {}).items()},
                           "steps": int(window.get("steps", 0))}
        self.resume_log_bytes = log.get("metrics_bytes")
        data = state.get("data", {})
        if data.get("world_size", 1) != self.dist.world_size or data.get("batch_per_rank") != self.per_rank_batch:
            print(f"warning: resuming with {self.dist.world_size} process(es) x batch {self.per_rank_batch} "
                  f"(was {data.get('world_size')} x {data.get('batch_per_rank')}): the data order differs")
        if self.dist.is_main:
            set_rng_state(state["rng"], self.device)

    def checkpoint_weights(self) -> dict[str, tuple[dict[str, Tensor], dict[str, str]]]:
        """The exported weights of the checkpoint set: {file name: (tensors, metadata)}, ``net_last`` first."""
        meta = self._metadata()
        weights = {f"{name}_last.safetensors": (model.state_dict(), meta) for name, model in self.models.items()}
        if self.ema is not None:
            weights["net_ema_last.safetensors"] = (self.ema.state_dict(), meta)
        if self.cfg["checkpoint"]["keep_history"]:
            for name, model in self.models.items():
                weights[f"{name}_iter{self.iteration}.safetensors"] = (model.state_dict(), meta)
        return weights

    def save_checkpoint(self) -> None:
        """The checkpoint set (state_last.pt, then net_last / net_ema_last ..., then checkpoint.json naming them);
        rank 0 only. The ``checkpoint`` event is logged first: the state then covers the log up to it."""
        if not self.dist.is_main:
            return
        if self.monitor is not None:
            self.monitor.record({"iter": self.iteration, "event": "checkpoint"})
        write_checkpoint_set(self.run_dir, self.iteration, self.checkpoint_weights(), self.state_dict())

    def _prepare_run_folder(self) -> None:
        """Rank 0, before the first step: no stale temporary file, the metrics log cut back to the checkpoint being
        resumed (a fresh run starts a new one), the checkpoint set consistent with the state, the config written."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.run_dir)
        rewind_metrics_log(self.run_dir, int(self.resume_log_bytes or 0) if self.resumed else 0)
        if self.resumed and verify_checkpoint_set(self.run_dir, self.iteration):
            # A crash between the state and the manifest: the state is the truth, the exports are written from it.
            write_checkpoint_set(self.run_dir, self.iteration, self.checkpoint_weights(), None)
        dump_config(self.cfg, self.run_dir / "config.yml")
