"""``litesr fit-niqe DIR -o FILE``: fit NIQE's pristine model on a folder of pristine images (estimatemodelparam.m)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit-niqe", help="fit NIQE's pristine model on a folder of pristine images",
                       description="Fit the pristine Gaussian model of NIQE (Mittal 2013) as estimatemodelparam.m "
                                   "does: 96x96 blocks, no overlap, blocks sharper than 0.75 x the sharpest of their "
                                   "image. The .npz file is what `--metric-weights niqe=FILE` reads. "
                                   "Example: litesr fit-niqe pristine/ -o niqe_model.npz")
    p.add_argument("folder", type=Path, help="folder of pristine (undistorted, natural) images")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .npz file to write")
    p.add_argument("--block-size", type=int, default=96, help="block size in pixels (default 96, as the paper)")
    p.add_argument("--sharpness-threshold", type=float, default=0.75,
                   help="keep blocks with sharpness above this fraction of the image's sharpest (default 0.75)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.files import find_images, read_rgb_uint8
    from ..errors import ConfigError, DatasetError
    from ..fileio import atomic_write_bytes
    from ..metrics.niqe import fit_niqe_model

    if args.block_size < 8 or args.block_size % 2:
        raise ConfigError(f"--block-size must be an even number >= 8, not {args.block_size}")
    if args.output.suffix.lower() != ".npz":
        raise ConfigError(f"--output {args.output}: the model is written as .npz; name the file *.npz")
    files = find_images(args.folder)

    def images():
        for path in files:
            img = read_rgb_uint8(path)
            if min(img.shape[:2]) < args.block_size:
                raise DatasetError(f"{path}: image is {img.shape[1]}x{img.shape[0]}, smaller than one "
                                   f"{args.block_size}x{args.block_size} block")
            yield img

    model = fit_niqe_model(images(), block=args.block_size, sharpness_threshold=args.sharpness_threshold)
    try:
        atomic_write_bytes(args.output, model.to_bytes())
    except OSError as exc:
        raise ConfigError(f"{args.output}: cannot write ({exc.strerror or exc})") from None
    print(f"NIQE model from {model.images} images, {model.patches} blocks -> {args.output}")
    return 0
