"""Upscale jobs as a library: which model, which engine options, which files, and the policy for large images.

``litesr upscale`` and ``litesr studio`` are thin shells over this module, so both give byte-identical results:

    model, label = build_model(scale=4)                       # litesr's shipped weights for x4
    options = engine_options(precision="auto")                 # device and precision resolved once, with the reason
    model = prepare(model, options)                            # the fast path (deploy forms, channels-last ...)
    for job in plan_jobs([Path("shots")], None, suffix="_x4"):
        result = upscale_file(model, job.source, options)      # auto-tiling of large images, one-line OOM errors
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .descriptor import describe
from .device import PrecisionChoice, choose_precision, resolve_device
from .errors import CheckpointError, ConfigError, ImageError, LitesrError
from .memory import free_memory_budget, parse_memory, tile_for_process

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from .images import Image

# The models `litesr upscale` uses per scale when no --model is given (quality, and with --fast the fast one): one
# place to change when better weights ship. Each must ship weights for its scale (tests/test_shipped_weights.py).
DEFAULT_MODELS: dict[int, str] = {2: "ssiu", 3: "ssiu", 4: "ssiu"}
FAST_MODELS: dict[int, str] = {2: "rdesa_s", 3: "rdesa_s", 4: "rdesa_s"}
DEFAULT_SCALE = 2
# Images above this many pixels are tiled automatically, to a memory budget (half the free memory).
AUTO_TILE_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs: resolved once for all images of a run."""

    device: torch.device
    precision: PrecisionChoice
    tile: int | None = None  # None: automatic (large images only); 0: never
    tile_overlap: int = 32
    self_ensemble: bool = False
    max_memory_total: int | None = None  # a budget for the whole process (CUDA: the GPU's memory)
    backend: str = "torch"


def engine_options(*, device: str | None = None, precision: str = "auto", tile: int | None = None,
                   tile_overlap: int = 32, self_ensemble: bool = False, max_memory: str | int | None = None,
                   backend: str = "torch") -> EngineOptions:
    """Check and resolve the engine options; every problem is a one-line ConfigError before any work."""
    if tile is not None and tile < 0:
        raise ConfigError(f"--tile must be >= 0, not {tile}")
    if tile_overlap < 0:
        raise ConfigError(f"--tile-overlap must be >= 0, not {tile_overlap}")
    target = resolve_device(device or "auto")
    choice = choose_precision(precision, target)
    return EngineOptions(target, choice, tile, tile_overlap, self_ensemble,
                         parse_memory(max_memory) if max_memory is not None else None, backend)


# ----------------------------------------------------------------------------------------------------------- model


def build_model(name: str | None = None, *, weights: str | os.PathLike | None = None, scale: int | None = None,
                fast: bool = False, allow_pickle: bool = False) -> tuple[nn.Module, str]:
    """The model to upscale with and a short label: a checkpoint (architecture detected), a zoo model with litesr's
    shipped weights, or the default (quality, or ``fast``) model of the scale."""
    from .checkpoint import load_pretrained
    from .detect import load_model
    from .registry import count_parameters, create_model, get_variant

    if weights is not None:
        model = load_model(weights, name or "auto", scale=scale, allow_pickle=allow_pickle)
        return model.eval(), describe(model).label
    if name == "auto":
        raise ConfigError("--model auto recognises the architecture of a checkpoint: give one with --weights FILE")
    scale = scale if scale is not None else DEFAULT_SCALE
    if name is None:
        defaults = FAST_MODELS if fast else DEFAULT_MODELS
        name = defaults.get(scale)
        if name is None:
            raise ConfigError(f"no default model for x{scale} (defaults: {sorted(defaults)}); choose one "
                              "with --model NAME and --weights FILE")
    elif fast:
        raise ConfigError("--fast picks litesr's fast model; it cannot be combined with --model")
    variant = get_variant(name)
    with torch.device("meta"):
        needs_weights = count_parameters(create_model(name, scale=scale)) > 0
    model = create_model(name, scale=scale)
    if needs_weights:
        if scale not in variant.pretrained:
            have = ", ".join(f"x{s}" for s in sorted(variant.pretrained)) or "none yet"
            raise CheckpointError(
                f"{variant.name}: litesr ships no trained weights for x{scale} (shipped: {have}); pass a checkpoint "
                f"with --weights FILE (e.g. --model {variant.name} --weights {variant.name}_x{scale}.pth)"
            )
        load_pretrained(model, variant, scale)
    return model.eval(), variant.name


def prepare(model: nn.Module, options: EngineOptions) -> nn.Module:
    """The fast path (litesr.fast): deploy forms folded, channels-last for bf16/fp16, compiled or ONNX if asked."""
    return prepare_with_note(model, options)[0]


def prepare_with_note(model: nn.Module, options: EngineOptions) -> tuple[nn.Module, str]:
    """:func:`prepare`, and a line saying which backend runs ("" unless ``auto`` chose it by measuring: see
    :mod:`litesr.backend_auto`; the measurement uses a tile-sized input, or 128 x 128 without tiling)."""
    from .fast import check_backend_available, prepare_model

    if options.backend == "auto":
        from .backend_auto import prepare_fastest

        side = options.tile or 128
        prepared, choice = prepare_fastest(model, (side, side), device=options.device,
                                           precision=options.precision.precision)
        return prepared, str(choice)
    check_backend_available(options.backend)
    return prepare_model(model, device=options.device, precision=options.precision.precision,
                         backend=options.backend), ""  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------------------- planning


def plan_jobs(inputs: Sequence[Path], output: Path | None, *, suffix: str, format: str | None = None,
              overwrite: bool = False) -> list[Job]:
    """(source, target) pairs for the inputs; refuses missing inputs, empty folders and outputs that exist."""
    from .images import IMAGE_SUFFIXES, WRITE_FORMATS, format_for_path

    if format is not None:
        format_for_path(Path(f"output.{format.lstrip('.')}"), format)  # an unknown --format fails before any work
    many = len(inputs) > 1 or any(p.is_dir() for p in inputs)
    output_is_dir = output is not None and (output.is_dir() or str(output).endswith(("/", os.sep)) or many)
    if output is not None and output.exists() and not output.is_dir() and many:
        raise ConfigError(f"{output}: with several inputs or a folder, -o must be a folder")

    def target_suffix(source: Path) -> str:
        if format is not None:
            return "." + format.lower().lstrip(".")
        return source.suffix if source.suffix.lower() in WRITE_FORMATS else ".png"  # GIF, PPM, TGA -> PNG

    jobs: list[Job] = []
    for item in inputs:
        if item.is_dir():
            root = output if output is not None else item.with_name(item.name + suffix)
            files = sorted(
                p for p in item.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                and not _inside(p, root)
            )
            if not files:
                raise ImageError(
                    f"{item}: no images in this folder (looked for {', '.join(sorted(set(IMAGE_SUFFIXES)))})")
            jobs += [Job(p, (root / p.relative_to(item)).with_suffix(target_suffix(p))) for p in files]
        elif not item.exists():
            raise ImageError(f"{item}: no such file or folder")
        else:
            name = item.stem + suffix + target_suffix(item)
            if output is None:
                target = item.with_name(name)
            elif output_is_dir:
                target = output / name
            else:
                target = output
                if format is not None and format_for_path(output) != format_for_path(output, format):
                    raise ConfigError(f"{output}: the suffix says {format_for_path(output)}, --format says "
                                      f"{format_for_path(output, format)}; drop one of them")
            jobs.append(Job(item, target))
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.target.resolve()
        if key in seen:
            raise ConfigError(f"{job.target}: both {seen[key]} and {job.source} would be written there")
        seen[key] = job.source
        format_for_path(job.target)
        check_target(job.target, overwrite, job.source)
    return jobs


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def check_target(target: Path, overwrite: bool, source: Path | None = None) -> None:
    """Refuse to replace an existing output (or the input itself) unless ``overwrite``."""
    if target.exists() and target.is_dir():
        raise ImageError(f"{target}: is a folder, not an output file")
    if overwrite:
        return
    if source is not None and target.exists() and target.resolve() == source.resolve():
        raise ImageError(f"{target}: is the input image; refusing to overwrite it (pass --overwrite to do so)")
    if target.exists():
        raise ImageError(f"{target}: output already exists (pass --overwrite to replace it)")


# ------------------------------------------------------------------------------------------------------ upscaling


def upscale(model: nn.Module, image: Image, options: EngineOptions, source: Path | str, *,
            progress: Callable[[int, int], None] | None = None) -> Image:
    """:func:`~litesr.inference.upscale_image` with the memory policy: ``max_memory_total`` sizes tiles so the whole
    process fits, images over :data:`AUTO_TILE_PIXELS` are tiled to half the free memory, and running out of memory
    or a too-small image is a one-line error naming ``source``."""
    from .inference import upscale_image

    tile, max_memory = options.tile, None
    total = options.max_memory_total
    precision = options.precision.precision
    if total is not None and options.device.type == "cuda":
        max_memory = total  # the GPU's memory: the engine sizes tiles from its allocator
    elif total is not None:  # --max-memory on the CPU: the whole process, so what it holds already comes off
        fitted = tile_for_process(model, (image.height, image.width), total, precision=precision)
        if fitted is not None and (tile is None or tile <= 0 or fitted < tile):
            tile = fitted
    elif tile is None and image.width * image.height > AUTO_TILE_PIXELS:
        max_memory = free_memory_budget(options.device)
    try:
        return upscale_image(model, image, tile=tile, tile_overlap=options.tile_overlap,
                             self_ensemble=options.self_ensemble, precision=precision, device=options.device,
                             max_memory=max_memory, progress=progress)
    except torch.OutOfMemoryError:
        raise ImageError(f"{source}: out of memory upscaling {image.width}x{image.height}; try --tile 256") from None
    except RuntimeError as exc:
        text = str(exc)
        if "memory" in text.lower() and ("alloc" in text.lower() or "out of" in text.lower()):
            raise ImageError(
                f"{source}: out of memory upscaling {image.width}x{image.height}; try --tile 256") from None
        if min(image.width, image.height) < 8:
            first = " ".join(text.split())[:160]
            raise ImageError(f"{source}: {image.width}x{image.height} is too small for this model ({first})") from None
        raise


def run_jobs(jobs: Sequence[Job], model: nn.Module, label: str, options: EngineOptions, *,
             max_pixels: int | None = None, format: str | None = None, quality: int = 95,
             compare: Path | None = None, report: Callable[[str], None] = print, header: str | None = None) -> int:
    """Upscale every job (several images: decoding and encoding overlap the model's work); a user error on one
    image of many is reported and the rest go on. ``header`` is reported before the first finished image (so that a
    run that fails prints nothing but its error). Returns the number of images that failed."""
    from .images import read_image, write_image
    from .pipeline import pipelined

    def load(job: Job) -> tuple[float, Image]:
        return time.perf_counter(), read_image(job.source, max_pixels=max_pixels)

    def compute(job: Job, loaded: tuple[float, Image]) -> tuple[float, Image, Image]:
        start, image = loaded
        return start, image, upscale(model, image, options, job.source)

    def store(job: Job, done: tuple[float, Image, Image]) -> None:
        start, image, result = done
        write_image(job.target, result, format=format, quality=quality)
        if compare is not None:
            write_image(compare, comparison(image, result, label))
        if pending_header:
            report(pending_header.pop())
        report(_summary(job, image, result, start))

    pending_header = [header] if header else []

    if len(jobs) == 1 or options.max_memory_total is not None:  # one at a time: a budget holds one image's memory
        failures = 0
        for job in jobs:
            try:
                store(job, compute(job, load(job)))
            except LitesrError as exc:
                if len(jobs) == 1:
                    raise
                failures += 1
                print(f"litesr upscale: error: {exc}", file=sys.stderr)
        return failures
    failures = 0
    for _, error in pipelined(jobs, load, compute, store):
        if error is None:
            continue
        if not isinstance(error, LitesrError):
            raise error
        failures += 1
        print(f"litesr upscale: error: {error}", file=sys.stderr)
    return failures


def _summary(job: Job, image: Image, result: Image, start: float) -> str:
    depth = f", {result.bit_depth}-bit" if result.bit_depth != 8 else ""
    alpha = ", alpha" if result.alpha is not None else ""
    return (f"{job.source} -> {job.target} ({image.width}x{image.height} -> {result.width}x{result.height}{depth}"
            f"{alpha}, {time.perf_counter() - start:.2f} s)")


# ------------------------------------------------------------------------------------------------------ comparison


def comparison(lr: Image, sr: Image, model_name: str) -> np.ndarray:
    """LR nearest-upscaled | bicubic | model, side by side with small labels; uint8 (H, W, 3)."""
    import numpy as np
    from PIL import Image as PILImage
    from PIL import ImageDraw

    from .demo import label_font
    from .imresize import imresize

    scale = sr.height // lr.height
    lr_rgb = np.repeat(lr.rgb, 3, axis=2) if lr.is_gray else lr.rgb
    sr_rgb = np.repeat(sr.rgb, 3, axis=2) if sr.is_gray else sr.rgb
    nearest = lr_rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    bicubic = imresize(torch.from_numpy(np.ascontiguousarray(lr_rgb)).permute(2, 0, 1), scale=scale)
    bicubic = bicubic.clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    panels = [(nearest, f"input (x{scale} nearest)"), (bicubic, "bicubic"), (sr_rgb, model_name)]
    gap = 4
    height, width = sr_rgb.shape[:2]
    font = label_font(max(10, min(16, width // 12)))
    band = int(font.getbbox("Ag")[3]) + 8 if hasattr(font, "getbbox") else 18  # a label strip above the pictures
    canvas = np.full((band + height, 3 * width + 2 * gap, 3), 255, dtype=np.uint8)
    canvas[:band] = 40
    for i, (pixels, _) in enumerate(panels):
        canvas[band:, i * (width + gap) : i * (width + gap) + width] = np.round(np.clip(pixels, 0, 1) * 255)
    picture = PILImage.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(picture)
    for i, (_, label) in enumerate(panels):
        draw.text((i * (width + gap) + 4, 3), label, fill=(255, 255, 255), font=font)
    return np.asarray(picture)


# ------------------------------------------------------------------------------------------------------------ demo


def run_demo(folder: Path, options: EngineOptions, *, name: str | None = None, weights: Path | None = None,
             scale: int | None = None, fast: bool = False, overwrite: bool = False,
             report: Callable[[str], None] = print) -> dict[str, Path]:
    """Upscale litesr's sample picture into ``folder``: input, result, original and a comparison with bicubic;
    reports the RGB PSNR of bicubic and the model against the original. Returns the files written."""
    import numpy as np

    from .demo import sample_hr, sample_image
    from .images import write_image
    from .imresize import imresize

    scale = scale if scale is not None else DEFAULT_SCALE
    targets = {"input": folder / "input.png", "result": folder / f"result_x{scale}.png",
               "compare": folder / "compare.png", "original": folder / "original.png"}
    for target in targets.values():
        check_target(target, overwrite)
    model, label = build_model(name, weights=weights, scale=scale, fast=fast)
    model = prepare(model, options)
    report(f"{label}: {options.precision} on {options.device}")
    lr = sample_image(scale)
    start = time.perf_counter()
    result = upscale(model, lr, options, "litesr demo picture")
    elapsed = time.perf_counter() - start
    hr = sample_hr()
    write_image(targets["input"], lr)
    write_image(targets["result"], result)
    write_image(targets["original"], hr)
    write_image(targets["compare"], comparison(lr, result, label))

    def psnr(pixels: np.ndarray) -> float:
        mse = float(np.mean((np.round(np.clip(pixels, 0, 1) * 255) / 255 - hr) ** 2))
        return 10 * np.log10(1 / mse) if mse > 0 else float("inf")

    bicubic = imresize(torch.from_numpy(lr.rgb).permute(2, 0, 1), scale=scale).permute(1, 2, 0).numpy()
    report(f"{label} x{scale} on the {lr.width}x{lr.height} sample in {elapsed:.2f} s; RGB PSNR against the "
           f"original: bicubic {psnr(bicubic):.2f} dB, {label} {psnr(result.rgb):.2f} dB")
    report(f"wrote {', '.join(str(t) for t in targets.values())}")
    return targets
