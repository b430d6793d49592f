"""What a run reports: a progress bar (or plain lines off a terminal), a JSONL metrics log and TensorBoard."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Monitor:
    """Rank 0's reporter. Other ranks get a :class:`Monitor` with ``enabled=False`` that does nothing."""

    def __init__(self, run_dir: Path, cfg: dict[str, Any], *, total: int, start: int, enabled: bool = True,
                 console: Console | None = None) -> None:
        self.enabled = enabled
        self.total = total
        self.console = console or Console(file=sys.stdout, soft_wrap=True)
        log_cfg = cfg["logger"]
        self.print_every = max(1, int(log_cfg["print_every"]))
        self._jsonl = None
        self._tb = None
        self._progress: Progress | None = None
        self._task = None
        self._t0 = time.perf_counter()
        self._start_iter = start
        if not enabled:
            return
        if log_cfg["jsonl"]:
            self._jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if log_cfg["tensorboard"]:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                if log_cfg["tensorboard"] is True:
                    self.print("tensorboard is not installed; logging to metrics.jsonl only")
        use_bar = log_cfg["progress"]
        if use_bar == "auto":
            use_bar = self.console.is_terminal
        if use_bar:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[speed]} it/s  loss {task.fields[loss]}  lr {task.fields[lr]}"),
                TimeRemainingColumn(), console=self.console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(cfg["name"], total=total, completed=start, speed="-", loss="-",
                                                 lr="-")

    def print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, markup=False)

    def record(self, record: dict[str, Any]) -> None:
        """Append one record to the JSONL log and TensorBoard."""
        if not self.enabled:
            return
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
        if self._tb is not None and "iter" in record:
            prefix = f"val/{record['dataset']}/" if "dataset" in record else "train/"
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("iter", "epoch", "time"):
                    self._tb.add_scalar(prefix + key, value, record["iter"])

    def step(self, iteration: int, epoch: int, metrics: dict[str, float], lr: float) -> None:
        """Called every logged iteration with the window's mean losses."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._t0
        speed = (iteration - self._start_iter) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - iteration) / speed if speed > 0 else None
        self.record({"iter": iteration, "epoch": epoch, "lr": lr, **metrics, "it_per_s": round(speed, 3),
                     "eta_s": None if eta is None else round(eta, 1), "time": round(elapsed, 3)})
        loss = metrics.get("loss", float("nan"))
        if self._progress is not None:
            self._progress.update(self._task, completed=iteration, speed=f"{speed:.2f}", loss=f"{loss:.4g}",
                                  lr=f"{lr:.3g}")
        else:
            eta_text = "-" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
            parts = "  ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())
            self.print(f"iter {iteration}/{self.total}  {parts}  lr {lr:.3g}  {speed:.2f} it/s  eta {eta_text}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
