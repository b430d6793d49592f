"""The weights litesr trains itself and ships in ``litesr/weights``: what each file is and how it was made.

``litesr/weights/shipped.json`` is the record (one entry per file: model, scale, training data, iterations,
hardware, wall time, the exact command, and the PSNR/SSIM measured with ``litesr eval``); the zoo's variants name
their files in ``pretrained``, and ``tests/test_shipped_weights.py`` holds the two to each other and to the files.
``litesr models --shipped`` prints it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .checkpoint import packaged_weights_dir as weights_dir
from .errors import LitesrError

MANIFEST = "shipped.json"


@dataclass(frozen=True)
class ShippedWeights:
    """One shipped file and its training record."""

    file: str
    model: str  # registered variant
    scale: int
    data: str
    iterations: int
    hardware: str
    wall_time: str
    command: str
    # Set5 "bird" PSNR measured when the file was added (MATLAB protocol): the test pins it to 0.01 dB.
    bird_psnr: float
    # dataset -> (PSNR, SSIM) by `litesr eval` (MATLAB protocol: LR by MATLAB bicubic, BT.601 Y, crop = scale).
    results: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: str = ""

    @property
    def path(self) -> Path:
        return weights_dir() / self.file


@lru_cache(maxsize=1)
def shipped_weights() -> tuple[ShippedWeights, ...]:
    """Every shipped file's record, sorted by model and scale."""
    path = weights_dir() / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LitesrError(f"{path}: cannot read the shipped-weights record ({exc})") from None
    entries = []
    for file, entry in raw.items():
        results = {k: (float(v[0]), float(v[1])) for k, v in entry.get("results", {}).items()}
        entries.append(ShippedWeights(file=file, results=results,
                                      **{k: v for k, v in entry.items() if k != "results"}))
    return tuple(sorted(entries, key=lambda e: (e.model, e.scale)))


def shipped_record(model: str, scale: int) -> ShippedWeights | None:
    """The record of ``model`` at ``scale``, or None when litesr ships no file for it."""
    return next((e for e in shipped_weights() if e.model == model and e.scale == scale), None)


__all__ = ["ShippedWeights", "shipped_record", "shipped_weights", "weights_dir"]
