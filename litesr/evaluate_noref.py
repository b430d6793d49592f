"""No-reference evaluation: a model's outputs on LR images that have no ground truth, scored by no-reference metrics
(NIQE, sharpness). Used by ``litesr eval --no-reference``."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .descriptor import describe
from .errors import ConfigError, DatasetError


@dataclass
class NoReferenceResult:
    """Per-image no-reference scores of one model's outputs on one folder of LR images."""

    dataset: str
    scale: int
    model: str = ""
    images: list[tuple[str, dict[str, float]]] = field(default_factory=list)

    def score(self, name: str) -> float:
        return float(np.mean([s[name] for _, s in self.images])) if self.images else math.nan

    def to_dict(self) -> dict[str, Any]:
        names = list(self.images[0][1]) if self.images else []
        return {"dataset": self.dataset, "scale": self.scale, "model": self.model,
                "scores": {n: self.score(n) for n in names},
                "images": [{"name": name, "scores": scores} for name, scores in self.images]}


def evaluate_no_reference(model: nn.Module, folder: str | os.PathLike, metrics: Sequence[Any], *,
                          scale: int | None = None, device: str | torch.device = "cpu",
                          save_dir: str | os.PathLike | None = None) -> NoReferenceResult:
    """Upscale every image of ``folder`` (the LR inputs) with ``model`` and score each uint8 output with the
    no-reference ``metrics``; ``save_dir`` receives the outputs as ``<name>.png``."""
    from .data.files import find_images, read_rgb_uint8
    from .evaluate import quantize_uint8
    from .images import write_image
    from .inference import resolve_device, run_model_with_luma

    full = [m.name for m in metrics if not m.no_reference]
    if full:
        raise ConfigError(f"{', '.join(full)}: full-reference metric(s) need HR images; not for --no-reference")
    files = find_images(folder)
    descriptor = describe(model)
    own = descriptor.scale
    scale = own if scale is None else int(scale)
    if scale != own and not (descriptor.multi_scale and hasattr(model, "set_scale")):
        raise ConfigError(f"{descriptor.label} is built for x{own}; it cannot run at x{scale}")
    target = resolve_device(device, model)
    was_training = model.training
    model.to(target).eval()
    if scale != own:
        model.set_scale(scale)
    result = NoReferenceResult(Path(folder).name, scale, descriptor.arch)
    try:
        with torch.inference_mode():
            for path in files:
                lr = read_rgb_uint8(path)
                x = torch.from_numpy(lr).to(target).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
                sr = quantize_uint8(run_model_with_luma(model, x)[0][0])
                try:
                    scores = {m.name: float(m(sr)[0]) for m in metrics}
                except (ValueError, ConfigError) as exc:
                    raise DatasetError(f"{path}: {exc}") from None
                result.images.append((path.stem, scores))
                if save_dir is not None:
                    write_image(Path(save_dir) / f"{path.stem}.png", sr)
    finally:
        model.train(was_training)
        if scale != own:
            model.set_scale(own)
    return result
