"""``litesr zssr``: zero-shot super-resolution of one image, trained on the image itself (ZSSR, Shocher et al. 2018).

    litesr zssr photo.png --scale 2                    # -> photo_zssr_x2.png (MATLAB-bicubic kernel assumed)
    litesr zssr scan.png --scale 2 --kernel k.npy      # a kernel estimated by KernelGAN (.npy, square 2-D)
    litesr zssr photo.png --scale 4 --time-budget 120  # stop training after two minutes
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._unsupervised_io import output_path, positive, read_input, write_result


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zssr", help="zero-shot SR: train a small CNN on the input image alone (ZSSR)",
                       description="Zero-Shot Super-Resolution: trains the paper's 8-layer network on downscaled "
                                   "copies of the input, then upscales it (8-transform ensemble, back-projection).")
    p.add_argument("input", type=Path, metavar="INPUT", help="the image to upscale")
    p.add_argument("-o", "--output", type=Path, default=None, help="output file (default: INPUT_zssr_x<S>.<ext>)")
    p.add_argument("--scale", type=positive, default=2.0, metavar="S", help="upscaling factor (2)")
    p.add_argument("--kernel", type=Path, default=None, metavar="K.npy",
                   help="downscaling kernel as KernelGAN writes it (square 2-D .npy); default MATLAB bicubic")
    p.add_argument("--time-budget", type=positive, default=None, metavar="SECONDS",
                   help="stop training after this long (the test-time ensemble comes on top); default: the "
                        "paper's stopping rule (learning rate under 9e-6, at most 3000 iterations)")
    p.add_argument("--max-iters", type=int, default=3000, metavar="N", help="iterations per scale step (3000)")
    p.add_argument("--gradual", action="store_true", help="gradual SR through intermediate scales (x2: 1.5, 2)")
    p.add_argument("--no-ensemble", action="store_true", help="one pass instead of the 8-transform ensemble")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..unsupervised.zssr import ZSSRConfig, default_steps, load_kernel, zssr

    if args.max_iters < 1:
        raise ConfigError(f"--max-iters must be >= 1, not {args.max_iters}")
    if args.scale <= 1:
        raise ConfigError(f"--scale must be > 1, not {args.scale:g}")
    out = output_path(args.input, args.output, f"_zssr_x{args.scale:g}", args.overwrite)
    kernel = load_kernel(args.kernel, args.scale) if args.kernel is not None else None
    image = read_input(args.input)
    cfg = ZSSRConfig(max_iters=args.max_iters, self_ensemble=not args.no_ensemble,
                     scale_steps=default_steps(args.scale, args.gradual))
    if kernel is not None:
        cfg.allow_rotation = False  # the official config for a given kernel: rotations would change the kernel
    result = zssr(image.rgb, args.scale, kernel=kernel, config=cfg, time_budget=args.time_budget, seed=args.seed,
                  device=args.device, progress=not args.quiet)
    write_result(out, image, result.image, args.scale)
    print(f"{out}: {result.image.shape[1]}x{result.image.shape[0]}, {sum(result.iterations)} iterations, "
          f"{result.seconds:.0f} s")
    return 0
