"""Paper-protocol evaluation of a model on a benchmark set: PSNR/SSIM on Y, border = scale, MATLAB bicubic LR.

Used by ``litesr eval`` and by the trainer's validation. One image at a time (test images differ in size), under
``torch.inference_mode``; the SR output is quantised to uint8 as MATLAB ``im2uint8`` does before measuring. Y-channel
models (SRCNN, VDSR, FSRCNN-Y) are measured on their own output plane, as their papers do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .data.benchmark import BenchmarkDataset, open_dataset
from .data.degradations import Degradation, degrade_uint8, image_rng
from .descriptor import describe
from .errors import ConfigError, DatasetError
from .imresize import to_uint8_range
from .inference import resolve_device, run_model_with_luma
from .metrics import calculate_metrics, rgb_to_y
from .metrics.psnr_ssim import DEFAULT_SSIM_EXPONENTS, SSIMExponents
from .tiling import DIHEDRAL, transform, untransform


@dataclass(frozen=True)
class ImageResult:
    name: str
    psnr: float
    ssim: float
    #: the extra metrics (``extra_metrics``) by name
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class DatasetResult:
    """Per-image and mean PSNR/SSIM of one model on one dataset at one scale."""

    dataset: str
    scale: int
    images: list[ImageResult] = field(default_factory=list)
    lr_source: str = "generate"
    y_channel: bool = True
    crop_border: int = 0
    model: str = ""
    gray: str = "y"
    self_ensemble: bool = False

    @property
    def psnr(self) -> float:
        return float(np.mean([r.psnr for r in self.images])) if self.images else math.nan

    @property
    def ssim(self) -> float:
        return float(np.mean([r.ssim for r in self.images])) if self.images else math.nan

    def score(self, name: str) -> float:
        """The mean of extra metric ``name`` over the images."""
        return float(np.mean([r.scores[name] for r in self.images])) if self.images else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the settings, the means and every image (an infinite PSNR becomes the string "inf")."""
        out = asdict(self)
        out["images"] = [{**asdict(r), "psnr": _json_number(r.psnr)} for r in self.images]
        out["psnr"] = _json_number(self.psnr)
        out["ssim"] = self.ssim
        out["scores"] = {k: self.score(k) for k in (self.images[0].scores if self.images else {})}
        return out


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def quantize_uint8(x: torch.Tensor) -> np.ndarray:
    """A (3, H, W) tensor in [0, 1] as uint8 (H, W, 3): clamp, scale, round half away from zero (MATLAB im2uint8)."""
    return to_uint8_range(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _device(device: str | torch.device | None, model: nn.Module) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(device, model)


def evaluate(
    model: nn.Module,
    dataset: str | os.PathLike | BenchmarkDataset,
    scale: int,
    *,
    lr_source: str = "generate",
    lr_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    y_channel: bool = True,
    crop_border: int | None = None,
    gray: Literal["y", "raw"] = "y",
    device: str | torch.device | None = "cpu",
    save_dir: str | os.PathLike | None = None,
    progress: bool = False,
    extra_metrics: Sequence[Any] = (),
    self_ensemble: bool = False,
    ssim_exponents: SSIMExponents = DEFAULT_SSIM_EXPONENTS,
    degradation: Degradation | None = None,
    degradation_seed: int = 0,
) -> DatasetResult:
    """PSNR/SSIM of ``model`` on ``dataset`` (a name under ``data_root``, a folder, or an opened dataset) at ``scale``.

    ``crop_border`` defaults to the scale; ``y_channel=False`` measures RGB. Gray HR files (Set14 ``bridge``) go
    through the model as three equal channels; ``gray="y"`` (default, as BasicSR and the IMDN/SwinIR tables) measures
    them like any RGB image, so on Y = 16 + 219/255 v; ``gray="raw"`` measures their gray values against the SR
    channel mean, as ``Evaluate_PSNR_SSIM.m`` does for single-channel HR (the published bicubic Set14 row).

    The model is moved to ``device`` (``"auto"``: CUDA when available) and switched to ``scale`` if it is
    multi-scale; its train/eval mode and scale are restored afterwards. ``save_dir`` receives the SR images as
    ``<name>.png``. ``self_ensemble`` averages the outputs of the 8 flips/transposes of the LR image before the
    uint8 quantisation (the "+" rows of EDSR+/RCAN+); ``ssim_exponents`` are SSIM's alpha, beta, gamma (default 1).
    ``degradation`` (:mod:`litesr.data.degradations`) makes each LR image from its HR one instead, seeded per image by
    ``(degradation_seed, image index)``, so the same test set comes out on every run.
    """
    if isinstance(dataset, BenchmarkDataset):
        if dataset.scale != scale:
            raise ConfigError(f"dataset {dataset.name} was opened for x{dataset.scale}, not x{scale}")
        data = dataset
    else:
        data = open_dataset(dataset, scale, root=data_root, lr_source=lr_source, lr_dir=lr_dir)
    border = scale if crop_border is None else int(crop_border)
    if border < 0:
        raise ConfigError(f"crop border must be >= 0, not {border}")
    if gray not in ("y", "raw"):
        raise ConfigError(f"gray must be 'y' or 'raw', not {gray!r}")
    target = _device(device, model)
    out_dir = Path(save_dir) if save_dir is not None else None

    descriptor = describe(model)
    previous_scale = descriptor.scale
    if previous_scale != scale:
        if not descriptor.multi_scale or not hasattr(model, "set_scale"):
            raise ConfigError(f"{descriptor.label} is built for x{previous_scale}; it cannot be evaluated at x{scale}")
        model.set_scale(scale)
    was_training = model.training
    model.to(target).eval()
    if degradation is not None and degradation.scale != scale:
        raise ConfigError(f"the degradation was built for x{degradation.scale}, not x{scale}")
    lr_source = data.lr_source if degradation is None else f"degradation:{degradation.name}:seed{degradation_seed}"
    result = DatasetResult(data.name, scale, lr_source=lr_source, y_channel=y_channel, crop_border=border,
                           model=descriptor.arch, gray=gray,
                           self_ensemble=self_ensemble)
    try:
        with _progress(progress, f"{data.name} x{scale}", len(data)) as advance, torch.inference_mode():
            for index, item in enumerate(data):
                sample = data.load_sample(item)
                hr, lr = sample.hr, sample.lr
                if degradation is not None:
                    lr = degrade_uint8(hr, degradation, image_rng(degradation_seed, index))
                x = torch.from_numpy(lr).to(target).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
                y, luma = run_ensemble_with_luma(model, x) if self_ensemble else run_model_with_luma(model, x)
                y = y[0]
                sr = quantize_uint8(y)
                if sr.shape != hr.shape:
                    raise ConfigError(
                        f"{item.hr_path}: the model returned {sr.shape[1]}x{sr.shape[0]} for a "
                        f"{lr.shape[1]}x{lr.shape[0]} input, expected {hr.shape[1]}x{hr.shape[0]} (x{scale})"
                    )
                measured_sr, measured_hr, on_y, peak = sr, hr, y_channel, None
                if sample.gray and gray == "raw":
                    measured_sr = quantize_uint8(y.mean(dim=0, keepdim=True))[..., 0]
                    measured_hr, on_y = hr[..., 0], False
                elif luma is not None and y_channel:
                    # A Y-channel model is measured on its own output plane, rounded to 8 bits, as its paper's MATLAB
                    # code does; the recombined RGB image would add the rounding of three channels.
                    measured_sr = quantize_uint8(luma[0])[..., 0].astype(np.float64)
                    measured_hr, on_y, peak = rgb_to_y(hr), False, 255.0
                try:
                    metrics = calculate_metrics(measured_sr, measured_hr, border, y_channel=on_y, peak=peak,
                                                ssim_exponents=ssim_exponents)
                except ValueError as exc:  # an image too small for the crop or the SSIM window
                    raise DatasetError(f"{item.hr_path}: {exc}") from None
                scores = _extra_scores(extra_metrics, sr, hr, border, item.hr_path)
                result.images.append(ImageResult(item.name, metrics.psnr, metrics.ssim, scores))
                if out_dir is not None:
                    from .images import write_image

                    write_image(out_dir / f"{item.name}.png", sr)
                advance()
    finally:
        model.train(was_training)
        if previous_scale != scale:
            model.set_scale(previous_scale)
    return result


def run_ensemble_with_luma(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`~litesr.inference.run_model_with_luma` averaged over the 8 dihedral transforms of ``x`` (Lim et al.'s
    geometric self-ensemble): each output is transformed back before the mean; Y models average their luma plane too.
    """
    total, total_luma = None, None
    for flips in DIHEDRAL:
        y, luma = run_model_with_luma(model, transform(x, *flips))
        y = untransform(y, *flips)
        total = y if total is None else total + y
        if luma is not None:
            luma = untransform(luma, *flips)
            total_luma = luma if total_luma is None else total_luma + luma
    assert total is not None
    n = len(DIHEDRAL)
    return total / n, (total_luma / n if total_luma is not None else None)


@contextmanager
def _progress(enabled: bool, label: str, total: int) -> Iterator[Callable[[], None]]:
    """A transient rich progress bar over a dataset when ``enabled``; yields a callable advancing it by one image."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _extra_scores(metrics: Sequence[Any], sr: np.ndarray, hr: np.ndarray, border: int,
                  hr_path: Any) -> dict[str, float]:
    """Each litesr.metrics object on the uint8 SR/HR pair with ``border`` pixels shaved (``metrics`` option)."""
    if not metrics:
        return {}
    if border:
        sr, hr = sr[border:-border, border:-border], hr[border:-border, border:-border]
    try:
        return {m.name: float(m(sr, hr)[0]) for m in metrics}
    except (ValueError, ConfigError) as exc:  # e.g. an image smaller than MS-SSIM's 176 pixels
        raise DatasetError(f"{hr_path}: {exc}") from None
