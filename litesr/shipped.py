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
    scale: int  # the largest factor it is registered at
    data: str
    iterations: int
    hardware: str
    wall_time: str
    command: str
    # Set5 "bird" PSNR measured when the file was added (MATLAB protocol): the test pins it to 0.01 dB. An
    # arbitrary-scale file records one per integer scale in ``scales``.
    bird_psnr: float | dict[int, float]
    # dataset -> (PSNR, SSIM) by `litesr eval` (MATLAB protocol: LR by MATLAB bicubic, BT.601 Y, crop = scale);
    # an arbitrary-scale file's keys name the factor too ("Set5 x2.5").
    results: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: str = ""
    # The integer scales the variant lists this one file at (an arbitrary-scale model serves them all); () = scale.
    scales: tuple[int, ...] = ()

    @property
    def served_scales(self) -> tuple[int, ...]:
        return self.scales or (self.scale,)

    def bird_psnr_at(self, scale: int) -> float:
        return self.bird_psnr[scale] if isinstance(self.bird_psnr, dict) else self.bird_psnr

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
        bird = entry["bird_psnr"]
        bird = {int(k): float(v) for k, v in bird.items()} if isinstance(bird, dict) else float(bird)
        rest = {k: v for k, v in entry.items() if k not in ("results", "bird_psnr", "scales")}
        entries.append(ShippedWeights(file=file, results=results, bird_psnr=bird,
                                      scales=tuple(int(x) for x in entry.get("scales", ())), **rest))
    return tuple(sorted(entries, key=lambda e: (e.model, e.scale)))


def shipped_record(model: str, scale: int) -> ShippedWeights | None:
    """The record of ``model`` at ``scale``, or None when litesr ships no file for it."""
    return next((e for e in shipped_weights() if e.model == model and scale in e.served_scales), None)


__all__ = ["ShippedWeights", "shipped_record", "shipped_weights", "weights_dir"]
