"""Pieces the zero-shot methods share: a one-line text progress bar, image <-> tensor, the time budget."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch import Tensor


def to_tensor(rgb: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """(H, W, C) float [0, 1] -> (1, C, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0).to(device)


def to_array(x: Tensor) -> np.ndarray:
    """(1, C, H, W) -> (H, W, C) float32 in [0, 1] on the CPU."""
    return x.detach().clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)


class TextProgress:
    """``label [#####.....] 120/300 note`` rewritten in place on stderr; silent when disabled."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, width: int = 24) -> None:
        self.label, self.total, self.enabled, self.width = label, max(1, total), enabled, width
        self._last = 0.0

    def update(self, done: int, note: str = "", *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return  # a terminal redraw per iteration would cost more than some iterations
        self._last = now
        filled = int(self.width * min(done, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total} {note}\x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


class Deadline:
    """A wall-clock budget in seconds (None: unlimited)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def passed(self) -> bool:
        return self.seconds is not None and self.elapsed >= self.seconds
