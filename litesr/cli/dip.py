"""``litesr dip``: Deep Image Prior super-resolution of one image (Ulyanov et al. 2018), no training data.

    litesr dip photo.png --scale 4                     # -> photo_dip_x4.png, the paper's 2000 iterations
    litesr dip photo.png --scale 4 --every 500         # also photo_dip_x4_iter0500.png, ... along the way
    litesr dip photo.png --scale 4 --early-stop 200    # stop when the LR loss stalls for 200 iterations
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._unsupervised_io import output_path, positive, read_input, write_result


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dip", help="Deep Image Prior SR: fit an untrained network to one image",
                       description="Deep Image Prior: optimises the paper's skip encoder-decoder from fixed noise so "
                                   "that its output, downscaled (Lanczos-2), matches the input.")
    p.add_argument("input", type=Path, metavar="INPUT")
    p.add_argument("-o", "--output", type=Path, default=None, help="output file (default: INPUT_dip_x<S>.<ext>)")
    p.add_argument("--scale", type=int, default=4, metavar="S", help="integer upscaling factor (4)")
    p.add_argument("--iters", type=int, default=None, metavar="N",
                   help="iterations (default: the paper's, 2000 for x4 and below, 4000 above)")
    p.add_argument("--every", type=int, default=0, metavar="N", help="also write the estimate every N iterations")
    p.add_argument("--early-stop", type=int, default=0, metavar="PATIENCE",
                   help="stop when the LR loss has not improved for PATIENCE iterations (0: off)")
    p.add_argument("--time-budget", type=positive, default=None, metavar="SECONDS", help="stop after this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda (cpu)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..unsupervised.dip import DIPConfig, deep_image_prior

    if args.scale < 2:
        raise ConfigError(f"--scale must be an integer >= 2, not {args.scale}")
    iters = args.iters if args.iters is not None else (2000 if args.scale <= 4 else 4000)
    for name, value in (("--iters", iters), ("--every", args.every + 1), ("--early-stop", args.early_stop + 1)):
        if value < 1:
            raise ConfigError(f"{name} must be positive")
    out = output_path(args.input, args.output, f"_dip_x{args.scale}", args.overwrite)
    image = read_input(args.input)

    def intermediate(iteration: int, rgb) -> None:
        write_result(out.with_name(f"{out.stem}_iter{iteration:04d}{out.suffix}"), image, rgb, args.scale)

    cfg = DIPConfig(num_iter=iters, early_stop_patience=args.early_stop)
    result = deep_image_prior(image.rgb, args.scale, config=cfg, time_budget=args.time_budget, seed=args.seed,
                              device=args.device, progress=not args.quiet, every=args.every,
                              on_intermediate=intermediate)
    write_result(out, image, result.image, args.scale)
    print(f"{out}: {result.iterations} iterations ({result.stopped}), LR mse {result.lr_loss:.2e}, "
          f"{result.seconds:.0f} s")
    return 0
