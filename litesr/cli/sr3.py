"""``litesr sr3``: a small SR3-style diffusion model (Saharia et al. 2021): train on HR images, sample with DDPM/DDIM.

    litesr sr3 train T91/HR -o sr3_x4.safetensors --scale 4 --time-budget 1200     # CPU-sized U-Net by default
    litesr sr3 sample photo.png --weights sr3_x4.safetensors --steps 50 --seed 0    # DDIM, 50 steps
    litesr sr3 sample photo.png --weights sr3_x4.safetensors --sampler ddpm         # all 2000 ancestral steps
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._unsupervised_io import output_path, positive, read_input, write_result


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sr3", help="diffusion SR (SR3-style): train a conditional DDPM, sample with DDPM/DDIM",
                       description="A conditional DDPM whose U-Net sees the bicubic upscale of the LR image.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = actions.add_parser("train", help="train from scratch on a folder of HR images")
    t.add_argument("hr_dir", type=Path, metavar="HR_DIR")
    t.add_argument("-o", "--output", type=Path, required=True, help="weights file to write (.safetensors)")
    t.add_argument("--scale", type=int, default=4)
    t.add_argument("--size", choices=("tiny", "sr3_x4"), default="tiny",
                   help="tiny: 1.0M parameters, for a CPU; sr3_x4: the official 16->128 configuration (GPU)")
    t.add_argument("--schedule", choices=("linear", "cosine"), default="linear")
    t.add_argument("--num-steps", type=int, default=2000, help="diffusion steps of the schedule (2000)")
    t.add_argument("--iters", type=int, default=10000)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--patch-size", type=int, default=None, help="HR patch side (tiny: 32, sr3_x4: 128)")
    t.add_argument("--lr", type=positive, default=1e-4)
    t.add_argument("--time-budget", type=positive, default=None, metavar="SECONDS")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--overwrite", action="store_true")
    s = actions.add_parser("sample", help="upscale one image with trained weights")
    s.add_argument("input", type=Path, metavar="INPUT")
    s.add_argument("--weights", type=Path, required=True)
    s.add_argument("-o", "--output", type=Path, default=None, help="default: INPUT_sr3_x<S>.<ext>")
    s.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim")
    s.add_argument("--steps", type=int, default=50, help="DDIM steps (50); DDPM walks every step")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--overwrite", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _train(args) if args.action == "train" else _sample(args)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..errors import ConfigError, LitesrError
    from ..unsupervised.sr3 import SR3_TINY, SR3_X4, UNetConfig
    from ..unsupervised.sr3_train import SR3TrainConfig, train_sr3

    if args.output.exists() and not args.overwrite:
        raise LitesrError(f"{args.output}: exists (use --overwrite to replace it)")
    if not args.hr_dir.is_dir():
        raise LitesrError(f"{args.hr_dir}: not a folder of HR images")
    for name, value in (("--iters", args.iters), ("--batch-size", args.batch_size), ("--scale", args.scale - 1)):
        if value < 1:
            raise ConfigError(f"{name} is out of range")
    base = SR3_TINY if args.size == "tiny" else SR3_X4
    cfg = SR3TrainConfig(scale=args.scale, unet=UNetConfig(**asdict(base)), schedule=args.schedule,
                         num_steps=args.num_steps, patch_size=args.patch_size or base.image_size,
                         batch_size=args.batch_size, iterations=args.iters, learning_rate=args.lr, seed=args.seed)
    summary = train_sr3(args.hr_dir, args.output, cfg, time_budget=args.time_budget, progress=True,
                        device=args.device)
    print(f"{args.output}: {summary['iterations']} iterations, L1 {summary['loss']:.4f}, "
          f"{summary['parameters']:,} parameters, {summary['seconds']:.0f} s")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..unsupervised.sr3 import super_resolve
    from ..unsupervised.sr3_train import load_sr3

    if args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, not {args.steps}")
    net, diffusion, scale = load_sr3(args.weights)
    out = output_path(args.input, args.output, f"_sr3_x{scale}", args.overwrite)
    image = read_input(args.input)
    if image.channels != 3:
        raise ConfigError(f"{args.input}: SR3 works on RGB images; this one has {image.channels} channel(s)")
    rgb = super_resolve(net.to(args.device), diffusion, image.rgb, scale, sampler=args.sampler, steps=args.steps,
                        seed=args.seed, device=args.device)
    write_result(out, image, rgb, scale)
    print(f"{out}: {rgb.shape[1]}x{rgb.shape[0]} ({args.sampler}, seed {args.seed})")
    return 0
