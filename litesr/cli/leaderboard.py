"""``litesr leaderboard``: every paper variant's parameters and MACs (1280x720 output), published and measured PSNR,
as a markdown table, a CSV and the PSNR-against-size plot (PNG and SVG).

    litesr leaderboard --scale 2 --weights-dir /path/to/official/checkpoints --data-root /path/to/datasets -o board/
    litesr leaderboard --scale 4 --models imdn,rlfn,ssiu --latency --no-plot
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "leaderboard", help="parameters, MACs and PSNR of the zoo's paper variants: table, CSV and plot",
        description="Profile every zoo model's paper variant (parameters, MACs for a 1280x720 output), evaluate "
                    "those with weights (litesr's own, and official checkpoints in --weights-dir, recognised by "
                    "their shapes) and write a markdown table, a CSV and PSNR-against-parameters/MACs plots.",
    )
    p.add_argument("--scale", type=int, default=2, help="upscaling factor (default 2)")
    p.add_argument("--models", default=None, metavar="A,B,...",
                   help="only these variants (default: every variant with published figures)")
    p.add_argument("--weights-dir", type=Path, default=None, metavar="DIR",
                   help="folder of checkpoints (searched recursively) to evaluate by auto-detection")
    p.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                   help="folder holding the test sets (default: $LITESR_DATA_ROOT, else ./datasets)")
    p.add_argument("--datasets", default="Set5", metavar="A,B",
                   help="test sets for measured PSNR; the first one is plotted (default Set5)")
    p.add_argument("--no-eval", action="store_true", help="profile only: measure no PSNR")
    p.add_argument("--latency", action="store_true", help="also time each model (fp32, random weights)")
    p.add_argument("--latency-size", default="320x180", metavar="WxH",
                   help="LR input of the latency runs (default 320x180)")
    p.add_argument("--device", default="cpu", help="where evaluation runs (cpu, cuda)")
    p.add_argument("-o", "--output-dir", type=Path, default=Path("leaderboard"), metavar="DIR",
                   help="where leaderboard.md/.csv/.png/.svg go (default ./leaderboard)")
    p.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib needed)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..leaderboard import build_leaderboard, paper_variants, to_markdown, write_leaderboard
    from ..registry import get_arch, get_variant

    if args.scale < 1:
        raise ConfigError(f"--scale must be positive, not {args.scale}")
    if args.models:
        variants = [get_variant(name.strip()) for name in args.models.split(",") if name.strip()]
        unsupported = [v.name for v in variants if args.scale not in get_arch(v.arch).scales]
        if unsupported:
            raise ConfigError(f"not available at x{args.scale}: {', '.join(unsupported)}")
    else:
        variants = paper_variants(args.scale)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not datasets:
        raise ConfigError("--datasets names no test set")
    latency_hw = None
    if args.latency:
        from .profile import _parse_size

        latency_hw = _parse_size(args.latency_size)
    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("the plot needs matplotlib: pip install matplotlib, or pass --no-plot") from None
    entries = build_leaderboard(
        args.scale,
        variants=variants,
        weights_dir=None if args.no_eval else args.weights_dir,
        data_root=args.data_root,
        datasets=datasets,
        evaluate_pretrained=not args.no_eval,
        latency_hw=latency_hw,
        device=args.device,
        log=lambda message: print(f"litesr leaderboard: {message}", file=sys.stderr, flush=True),
    )
    written = write_leaderboard(entries, args.output_dir, datasets=datasets, plot=not args.no_plot)
    print(to_markdown(entries, datasets))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
