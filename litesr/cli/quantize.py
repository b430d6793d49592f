"""``litesr quantize``: a CNN zoo model to an int8 ONNX file (post-training static quantisation, ONNX Runtime)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..quantize import CALIBRATION_METHODS, QUANTIZABLE

    p = sub.add_parser("quantize", help=f"int8 ONNX of a CNN model ({', '.join(QUANTIZABLE)}), calibrated on images")
    p.add_argument("--weights", type=Path, required=True, help="checkpoint (architecture detected from it)")
    p.add_argument("--model", default="auto", help="architecture or variant name (default: detected)")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--calib", type=Path, required=True, metavar="DIR",
                   help="folder of images like those the model will upscale (their centre crops calibrate the ranges)")
    p.add_argument("--images", type=int, default=32, metavar="N", help="calibration images used at most (32)")
    p.add_argument("--crop", type=int, default=96, metavar="PX", help="centre crop side per image (96)")
    p.add_argument("--method", choices=CALIBRATION_METHODS, default="percentile",
                   help="range calibration (percentile: the least PSNR loss measured on IMDN)")
    p.add_argument("--quantize-image-layers", action="store_true",
                   help="also quantise the first and last convolution (kept fp32 by default: they cost the most PSNR)")
    p.add_argument("--allow-pickle", action="store_true", help="let --weights unpickle (only files you trust)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .onnx file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..quantize import calibration_files, check_quantizable, quantize_model
    from ..upscale_jobs import build_model

    if args.output.exists() and not args.overwrite:
        raise ConfigError(f"{args.output} exists (pass --overwrite to replace it)")
    if args.output.suffix.lower() != ".onnx":
        raise ConfigError(f"{args.output}: the output is an ONNX file; name it *.onnx")
    calibration_files(args.calib, args.images)  # an empty or missing folder fails before the model is loaded
    model, _ = build_model(args.model, weights=args.weights, scale=args.scale, allow_pickle=args.allow_pickle)
    check_quantizable(model)
    report = quantize_model(model, args.calib, args.output, images=args.images, crop=args.crop, method=args.method,
                            keep_image_layers=not args.quantize_image_layers)
    print(report)
    return 0
