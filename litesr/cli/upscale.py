"""``litesr upscale``: images or folders in, upscaled images out (same format, bit depth and alpha).

    litesr upscale photo.png                          # -> photo_x2.png, the default x2 model and its shipped weights
    litesr upscale shots/ -o shots_x4/ --scale 4      # a folder, mirrored
    litesr upscale a.jpg --weights IMDN_x4.pth        # any supported checkpoint; architecture read off its shapes
    litesr upscale --demo                             # litesr's own sample picture, result + comparison
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..upscale_jobs import AUTO_TILE_PIXELS, DEFAULT_MODELS, DEFAULT_SCALE, FAST_MODELS


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
    p.add_argument("--fast", action="store_true",
                   help=f"litesr's fast shipped model ({', '.join(f'x{s} {n}' for s, n in FAST_MODELS.items())}): "
                        "for large images and slow machines")
    p.add_argument("--weights", type=Path, default=None, metavar="FILE",
                   help="checkpoint (.pth/.safetensors) instead of litesr's shipped weights")
    p.add_argument("--scale", type=int, default=None, metavar="S",
                   help=f"upscaling factor (default: the checkpoint's, else {DEFAULT_SCALE})")
    p.add_argument("--outscale", type=float, default=None, metavar="X",
                   help="final factor, any number (2.7): arbitrary-scale models (metasr_edsr_baseline, "
                        "liif_edsr_baseline) run at it; other models upscale by their own factor and the result is "
                        "resized to it with MATLAB bicubic, as Real-ESRGAN's --outscale")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="process N x N pieces to bound memory (0: never; default: only images over "
                        f"{AUTO_TILE_PIXELS // 2**20} MP, sized to half the free memory)")
    p.add_argument("--tile-overlap", type=int, default=32, metavar="N",
                   help="overlap of neighbouring tiles in pixels (32)")
    p.add_argument("--self-ensemble", action="store_true", help="average 8 flips/rotations (8x slower, a bit better)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="auto",
                   help="auto (default: bf16 on CUDA and AMX CPUs, else fp32; the choice and its reason are "
                        "printed), fp32, bf16 (CPU or CUDA) or fp16 (CUDA)")
    p.add_argument("--backend", choices=("torch", "compile", "onnx", "openvino", "auto"), default="torch",
                   help="torch (eager, default), compile (torch.compile: slow first image, faster after), onnx "
                        "(ONNX Runtime, fp32 on CPU), openvino (fp32 on CPU; pip install 'litesr[openvino]') or auto "
                        "(the fastest of torch, onnx and openvino, not compile, measured once per model, input size "
                        "and machine, then cached; nothing measured for a model without parameters)")
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
    p.add_argument("--budget", default=None, metavar="F|N%|NG",
                   help="any-time ARM models (arm_fsrcnn, arm_carn, arm_srresnet): route each 32x32 LR patch to a "
                        "subnet so the image's MACs stay within F (0-1) or N%% of the full-width cost, or N G MACs "
                        "(1.5G, 800M); needs the official lookup table (see --arm-table); docs/dynamic_inference.md")
    p.add_argument("--arm-table", type=Path, default=None, metavar="FILE",
                   help="ARM's edge-to-PSNR table, the official training-state file (default: <weights stem>.state "
                        "beside --weights)")
    p.add_argument("--gradient-projection", default=None, metavar="EDGES|DIR[:BANDS]",
                   help="ARM supernets: route each patch by its gradient instead of a lookup table (WBSR-style, "
                        "docs/wbsr.md): comma-separated score edges, or a folder of HR training images whose patch "
                        "scores give them (BANDS: how many subnets, bicubic counting as one)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..upscale_jobs import (
        build_model,
        check_target,
        engine_options,
        plan_jobs,
        prepare_with_note,
        run_demo,
        run_jobs,
    )

    if args.demo and args.inputs:
        raise ConfigError("--demo upscales litesr's sample picture and takes no INPUT")
    if not args.demo and not args.inputs:
        raise ConfigError("no INPUT given: name image files or folders (or try --demo)")
    if args.budget is not None and args.gradient_projection is not None:
        raise ConfigError("--budget and --gradient-projection are two routing rules: give one")
    if args.gradient_projection is not None:
        from ..dynamic import parse_projection

        parse_projection(args.gradient_projection)
        if args.self_ensemble or args.outscale is not None or args.backend != "torch" or args.demo:
            raise ConfigError("--gradient-projection routes ARM patches in eager torch: drop --self-ensemble, "
                              "--outscale, --backend and --demo")
        args.tile = 0  # ARM cuts the image into its own patches
    if args.budget is not None:
        from ..archs._arm_ops import parse_budget

        parse_budget(args.budget)  # a bad value fails before any model is built
        if args.self_ensemble or args.outscale is not None or args.backend != "torch" or args.demo:
            raise ConfigError("--budget routes ARM patches in eager torch: drop --self-ensemble, --outscale, "
                              "--backend and --demo")
        args.tile = 0  # ARM cuts the image into its own patches; engine tiles would split the budget
    options = engine_options(device=args.device, precision=args.precision, tile=args.tile,
                             tile_overlap=args.tile_overlap, self_ensemble=args.self_ensemble,
                             max_memory=args.max_memory, backend=args.backend)
    if args.demo:
        run_demo(args.output if args.output is not None else Path("litesr_demo"), options, name=args.model,
                 weights=args.weights, scale=args.scale, fast=args.fast, overwrite=args.overwrite)
        return 0
    # The model first: a checkpoint decides the scale, and so the default output names.
    model, label = build_model(args.model, weights=args.weights, scale=args.scale, fast=args.fast,
                               allow_pickle=args.allow_pickle)
    if args.budget is not None:
        from ..dynamic import apply_budget

        apply_budget(model, args.budget, name=label, weights=args.weights, table=args.arm_table)
    if args.gradient_projection is not None:
        from ..dynamic import apply_gradient_projection

        apply_gradient_projection(model, args.gradient_projection, name=label)
    model, backend_note = prepare_with_note(model, options)
    from ..descriptor import describe

    scale = describe(model).scale
    if args.outscale is not None:
        return _run_outscale(args, model, label, options)
    jobs = plan_jobs(args.inputs, args.output, suffix=args.suffix if args.suffix is not None else f"_x{scale}",
                     format=args.format, overwrite=args.overwrite)
    if args.compare is not None:
        if len(jobs) != 1:
            raise ConfigError(f"--compare makes one picture: give one input image, not {len(jobs)}")
        check_target(args.compare, args.overwrite, jobs[0].source)
    failures = run_jobs(jobs, model, label, options, max_pixels=args.max_pixels, format=args.format,
                        quality=args.quality, compare=args.compare,
                        header=f"{label}: {options.precision} on {options.device}"  # what auto chose, and why
                        + (f"; {backend_note}" if backend_note else ""))
    if failures:
        print(f"litesr upscale: {failures} of {len(jobs)} images failed", file=sys.stderr)
    return 1 if failures else 0


def _run_outscale(args: argparse.Namespace, model, label: str, options) -> int:  # noqa: ANN001 - engine objects
    """``--outscale X``: one image at a time through :func:`litesr.arbitrary.outscale_image`."""
    from ..arbitrary import check_scale, is_arbitrary_scale_model, outscale_image, outscale_size
    from ..descriptor import describe
    from ..errors import ConfigError, LitesrError
    from ..images import read_image, write_image
    from ..upscale_jobs import plan_jobs, upscale

    if args.compare is not None or args.backend != "torch":
        raise ConfigError("--outscale runs eager torch without --compare; drop --compare/--backend")
    outscale_size(1, 1, args.outscale)  # a bad number fails before any work
    own = describe(model).scale
    if is_arbitrary_scale_model(model):
        check_scale(model, args.outscale, label)
        how = f"{label} at x{args.outscale:g} (arbitrary-scale model, whole image, fp32)"
    else:
        how = f"{label} at its x{own}, then MATLAB bicubic to x{args.outscale:g}"
    suffix = args.suffix if args.suffix is not None else f"_x{args.outscale:g}"
    jobs = plan_jobs(args.inputs, args.output, suffix=suffix, format=args.format, overwrite=args.overwrite)
    print(how)
    failures = 0
    for job in jobs:
        try:
            image = read_image(job.source, max_pixels=args.max_pixels)
            result = outscale_image(model, image, args.outscale,
                                    lambda img, source=job.source: upscale(model, img, options, source))
            write_image(job.target, result, format=args.format, quality=args.quality)
            print(f"{job.source} -> {job.target} ({image.width}x{image.height} -> {result.width}x{result.height})")
        except LitesrError as exc:
            if len(jobs) == 1:
                raise
            failures += 1
            print(f"litesr upscale: error: {exc}", file=sys.stderr)
    if failures:
        print(f"litesr upscale: {failures} of {len(jobs)} images failed", file=sys.stderr)
    return 1 if failures else 0
