"""``litesr upscale``: images or folders in, upscaled images out (same format, bit depth and alpha).

    litesr upscale photo.png                          # -> photo_x2.png, the default x2 model and its shipped weights
    litesr upscale shots/ -o shots_x4/ --scale 4      # a folder, mirrored
    litesr upscale a.jpg --weights IMDN_x4.pth        # any supported checkpoint; architecture read off its shapes
    litesr upscale --demo                             # litesr's own sample picture, result + comparison
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from ..images import Image

# The model `litesr upscale` uses per scale when no --model is given: one place to change when better weights ship.
DEFAULT_MODELS: dict[int, str] = {2: "ssiu", 3: "ssiu", 4: "ssiu"}
DEFAULT_SCALE = 2
# Images above this many pixels are tiled automatically, to a memory budget (half the free memory).
AUTO_TILE_PIXELS = 1024 * 1024


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "upscale", help="upscale images or folders with a super-resolution model",
        description="Upscale images (PNG, JPEG, BMP, TIFF, WebP; 8 or 16 bits; gray, RGB, alpha, palette). "
                    "Outputs keep the input's format, bit depth and alpha, and never replace an existing file "
                    "unless --overwrite is given.",
    )
    p.add_argument("inputs", nargs="*", type=Path, metavar="INPUT", help="image files or folders (all images inside)")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="OUTPUT",
                   help="output file (one input) or folder (default: next to each input, with --suffix; a folder "
                        "input goes to FOLDER_x<S>/, mirrored; --demo: ./litesr_demo/)")
    p.add_argument("--model", default=None, metavar="NAME|auto",
                   help=f"model name (`litesr models`) or auto (with --weights); default per scale: "
                        f"{', '.join(f'x{s} {n}' for s, n in DEFAULT_MODELS.items())}")
    p.add_argument("--weights", type=Path, default=None, metavar="FILE",
                   help="checkpoint (.pth/.safetensors) instead of litesr's shipped weights")
    p.add_argument("--scale", type=int, default=None, metavar="S",
                   help=f"upscaling factor (default: the checkpoint's, else {DEFAULT_SCALE})")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="process N x N pieces to bound memory (0: never; default: only images over "
                        f"{AUTO_TILE_PIXELS // 2**20} MP, sized to half the free memory)")
    p.add_argument("--tile-overlap", type=int, default=32, metavar="N",
                   help="overlap of neighbouring tiles in pixels (32)")
    p.add_argument("--self-ensemble", action="store_true", help="average 8 flips/rotations (8x slower, a bit better)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                   help="fp32 (default), bf16 (CPU or CUDA) or fp16 (CUDA); auto: bf16 on CUDA and AMX CPUs, "
                        "else fp32")
    p.add_argument("--backend", choices=("torch", "compile", "onnx"), default="torch",
                   help="torch (eager, default), compile (torch.compile: slow first image, faster after) or onnx "
                        "(ONNX Runtime, fp32 on CPU)")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="keep the whole process under SIZE (2GB, 1.5GiB, 800MB; CUDA: GPU memory): tiles are sized "
                        "to fit, and images are done one at a time")
    p.add_argument("--device", default=None, metavar="cpu|cuda", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--suffix", default=None, metavar="TEXT", help="added to output file names (default: _x<S>)")
    p.add_argument("--format", default=None, metavar="EXT",
                   help="output format: png, jpg, bmp, tif, webp (default: the input's)")
    p.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG/WebP quality 1-100 (95)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (even the input itself)")
    p.add_argument("--compare", type=Path, default=None, metavar="FILE",
                   help="also write a side-by-side PNG: LR (nearest) | bicubic | model (one input only)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse larger images (default: $LITESR_MAX_PIXELS or 64000000; 0 = no limit)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="let --weights unpickle arbitrary objects (only for files you trust)")
    p.add_argument("--demo", action="store_true", help="upscale litesr's sample picture (no INPUT needed)")
    p.set_defaults(run=run)


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..inference import model_contract

    if args.demo:
        if args.inputs:
            raise ConfigError("--demo upscales litesr's sample picture and takes no INPUT")
        return _run_demo(args)
    if not args.inputs:
        raise ConfigError("no INPUT given: name image files or folders (or try --demo)")
    if args.tile is not None and args.tile < 0:
        raise ConfigError(f"--tile must be >= 0, not {args.tile}")
    if args.tile_overlap < 0:
        raise ConfigError(f"--tile-overlap must be >= 0, not {args.tile_overlap}")
    model, name = build_model(args)  # first: a checkpoint decides the scale, and so the default output names
    options = _engine_options(args)
    model = _prepare(model, options, args)
    scale = model_contract(model)[3]
    jobs = plan_jobs(args.inputs, args.output, suffix=args.suffix if args.suffix is not None else f"_x{scale}",
                     format=args.format, overwrite=args.overwrite)
    if args.compare is not None:
        if len(jobs) != 1:
            raise ConfigError(f"--compare makes one picture: give one input image, not {len(jobs)}")
        _check_target(args.compare, args.overwrite, jobs[0].source)
    failures = 0
    # Several images: decode the next and encode the last in background threads while the model works.
    pipeline = len(jobs) > 1 and options.get("max_memory_total") is None
    if pipeline:
        failures = _run_pipelined(jobs, model, name, options, args)
    for job in [] if pipeline else jobs:
        try:
            _upscale_one(job, model, name, options, args)
        except Exception as exc:
            if len(jobs) == 1 or not _is_user_error(exc):
                raise
            failures += 1
            print(f"litesr upscale: error: {exc}", file=sys.stderr)
    if failures:
        print(f"litesr upscale: {failures} of {len(jobs)} images failed", file=sys.stderr)
    return 1 if failures else 0


def _is_user_error(exc: BaseException) -> bool:
    from ..errors import LitesrError

    return isinstance(exc, LitesrError)


# -------------------------------------------------------------------------------------------------------- planning


def plan_jobs(inputs: list[Path], output: Path | None, *, suffix: str, format: str | None,
              overwrite: bool) -> list[Job]:
    """(source, target) pairs for the inputs; refuses missing inputs, empty folders and outputs that exist."""
    from ..errors import ConfigError, ImageError
    from ..images import IMAGE_SUFFIXES, WRITE_FORMATS, format_for_path

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
        _check_target(job.target, overwrite, job.source)
    return jobs


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _check_target(target: Path, overwrite: bool, source: Path | None = None) -> None:
    from ..errors import ImageError

    if overwrite:
        return
    if source is not None and target.exists() and target.resolve() == source.resolve():
        raise ImageError(f"{target}: is the input image; refusing to overwrite it (pass --overwrite to do so)")
    if target.exists():
        raise ImageError(f"{target}: output already exists (pass --overwrite to replace it)")


# ----------------------------------------------------------------------------------------------------------- model


def build_model(args: argparse.Namespace) -> tuple[nn.Module, str]:
    """The model to upscale with, once for all images, and a short name for labels."""
    from ..checkpoint import load_pretrained
    from ..detect import load_model
    from ..errors import CheckpointError, ConfigError
    from ..registry import count_parameters, create_model, get_variant

    if args.weights is not None:
        model = load_model(args.weights, args.model or "auto", scale=args.scale, allow_pickle=args.allow_pickle)
        return model.eval(), getattr(model, "litesr_arch", type(model).__name__)
    if args.model == "auto":
        raise ConfigError("--model auto recognises the architecture of a checkpoint: give one with --weights FILE")
    scale = args.scale if args.scale is not None else DEFAULT_SCALE
    name = args.model
    if name is None:
        name = DEFAULT_MODELS.get(scale)
        if name is None:
            raise ConfigError(f"no default model for x{scale} (defaults: {sorted(DEFAULT_MODELS)}); choose one "
                              "with --model NAME and --weights FILE")
    variant = get_variant(name)
    import torch

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


def _engine_options(args: argparse.Namespace) -> dict:
    import torch

    from ..fast import auto_precision, parse_memory
    from ..inference import resolve_device

    device = resolve_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = auto_precision(device) if args.precision == "auto" else args.precision
    max_memory = getattr(args, "max_memory", None)
    return {"tile": args.tile, "tile_overlap": args.tile_overlap, "self_ensemble": args.self_ensemble,
            "precision": precision, "device": device,
            "max_memory_total": parse_memory(max_memory) if max_memory is not None else None}


def _prepare(model: nn.Module, options: dict, args: argparse.Namespace) -> nn.Module:
    """The fast path (litesr.fast): deploy forms folded, channels-last for bf16/fp16, compiled or ONNX if asked."""
    from ..fast import check_backend_available, prepare_model

    backend = getattr(args, "backend", "torch")
    check_backend_available(backend)
    return prepare_model(model, device=options["device"], precision=options["precision"], backend=backend)


def _memory_budget(device: object) -> int | None:
    """Half the memory free now (CUDA: on the GPU), or None when it cannot be told."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return None


def _upscale(model: nn.Module, image: Image, options: dict, source: Path | str) -> Image:
    """upscale_image, with automatic tiling of large images and a one-line error when memory runs out."""
    import torch

    from ..errors import ImageError
    from ..fast import tile_for_process
    from ..inference import upscale_image

    opts = dict(options)
    total = opts.pop("max_memory_total", None)
    if total is not None and getattr(opts["device"], "type", "cpu") == "cuda":
        opts["max_memory"] = total  # the GPU's memory: the engine sizes tiles from its allocator
    elif total is not None:  # --max-memory on the CPU: the whole process, so what it holds already comes off
        fitted = tile_for_process(model, (image.height, image.width), total, precision=opts["precision"])
        if fitted is not None and (opts["tile"] is None or opts["tile"] <= 0 or fitted < opts["tile"]):
            opts["tile"] = fitted
    elif opts["tile"] is None and image.width * image.height > AUTO_TILE_PIXELS:
        opts["max_memory"] = _memory_budget(opts["device"])
    try:
        return upscale_image(model, image, **opts)
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


def _run_pipelined(jobs: list[Job], model: nn.Module, name: str, options: dict, args: argparse.Namespace) -> int:
    """Upscale several images with decoding and encoding in background threads; returns the number that failed."""
    from ..fast import pipelined
    from ..images import read_image, write_image

    def load(job: Job) -> tuple[float, Image]:
        return time.perf_counter(), read_image(job.source, max_pixels=args.max_pixels)

    def compute(job: Job, loaded: tuple[float, Image]) -> tuple[float, Image, Image]:
        start, image = loaded
        return start, image, _upscale(model, image, options, job.source)

    def store(job: Job, done: tuple[float, Image, Image]) -> None:
        start, image, result = done
        write_image(job.target, result, format=args.format, quality=args.quality)
        _report(job, image, result, start)

    failures = 0
    for _, error in pipelined(jobs, load, compute, store):
        if error is None:
            continue
        if not _is_user_error(error):
            raise error
        failures += 1
        print(f"litesr upscale: error: {error}", file=sys.stderr)
    return failures


def _report(job: Job, image: Image, result: Image, start: float) -> None:
    depth = f", {result.bit_depth}-bit" if result.bit_depth != 8 else ""
    alpha = ", alpha" if result.alpha is not None else ""
    print(f"{job.source} -> {job.target} ({image.width}x{image.height} -> {result.width}x{result.height}{depth}"
          f"{alpha}, {time.perf_counter() - start:.2f} s)")


def _upscale_one(job: Job, model: nn.Module, name: str, options: dict, args: argparse.Namespace) -> None:
    from ..images import read_image, write_image

    start = time.perf_counter()
    image = read_image(job.source, max_pixels=args.max_pixels)
    result = _upscale(model, image, options, job.source)
    write_image(job.target, result, format=args.format, quality=args.quality)
    if args.compare is not None:
        write_image(args.compare, comparison(image, result, name))
    _report(job, image, result, start)


# ------------------------------------------------------------------------------------------------------ comparison


def comparison(lr: Image, sr: Image, model_name: str) -> np.ndarray:
    """LR nearest-upscaled | bicubic | model, side by side with small labels; uint8 (H, W, 3)."""
    import numpy as np
    import torch
    from PIL import Image as PILImage
    from PIL import ImageDraw

    from ..demo import _font
    from ..imresize import imresize

    scale = sr.height // lr.height
    lr_rgb = np.repeat(lr.rgb, 3, axis=2) if lr.is_gray else lr.rgb
    sr_rgb = np.repeat(sr.rgb, 3, axis=2) if sr.is_gray else sr.rgb
    nearest = lr_rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    bicubic = imresize(torch.from_numpy(np.ascontiguousarray(lr_rgb)).permute(2, 0, 1), scale=scale)
    bicubic = bicubic.clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    panels = [(nearest, f"input (x{scale} nearest)"), (bicubic, "bicubic"), (sr_rgb, model_name)]
    gap = 4
    height, width = sr_rgb.shape[:2]
    font = _font(max(10, min(16, width // 12)))
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


def _run_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from ..demo import sample_hr, sample_image
    from ..images import write_image

    scale = args.scale if args.scale is not None else DEFAULT_SCALE
    folder = args.output if args.output is not None else Path("litesr_demo")
    targets = {"input": folder / "input.png", "result": folder / f"result_x{scale}.png",
               "compare": folder / "compare.png", "original": folder / "original.png"}
    for target in targets.values():
        _check_target(target, args.overwrite)
    args.scale = scale
    model, name = build_model(args)
    options = _engine_options(args)
    model = _prepare(model, options, args)
    lr = sample_image(scale)
    start = time.perf_counter()
    result = _upscale(model, lr, options, "litesr demo picture")
    elapsed = time.perf_counter() - start
    hr = sample_hr()
    write_image(targets["input"], lr)
    write_image(targets["result"], result)
    write_image(targets["original"], hr)
    write_image(targets["compare"], comparison(lr, result, name))

    def psnr(pixels: np.ndarray) -> float:
        mse = float(np.mean((np.round(np.clip(pixels, 0, 1) * 255) / 255 - hr) ** 2))
        return 10 * np.log10(1 / mse) if mse > 0 else float("inf")

    import torch

    from ..imresize import imresize

    bicubic = imresize(torch.from_numpy(lr.rgb).permute(2, 0, 1), scale=scale).permute(1, 2, 0).numpy()
    print(f"{name} x{scale} on the {lr.width}x{lr.height} sample in {elapsed:.2f} s; RGB PSNR against the original: "
          f"bicubic {psnr(bicubic):.2f} dB, {name} {psnr(result.rgb):.2f} dB")
    print(f"wrote {', '.join(str(t) for t in targets.values())}")
    return 0
