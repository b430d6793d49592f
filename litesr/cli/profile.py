"""``litesr profile``: parameters, MACs by operator (1280x720 output and 256x256 input), memory and latency."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="parameters, MACs/FLOPs by operator, activations, peak memory and latency")
    p.add_argument("--model", required=True, help="zoo model name, or 'auto' with --weights")
    p.add_argument("--weights", type=Path, default=None, help="checkpoint (architecture and config read from it)")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument(
        "--latency-size",
        default="320x180",
        help="LR input size WxH for the latency runs "
        "(default 320x180, i.e. a 1280x720 output at x4); 'none' skips timing",
    )
    p.add_argument(
        "--precision",
        action="append",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="repeatable; default fp32 and bf16",
    )
    p.add_argument("--threads", action="append", type=int, default=None, help="repeatable; default: torch's")
    p.add_argument("--runs", type=int, default=5, help="timed runs (median reported) after 2 warm-up runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.set_defaults(run=run)


def _parse_size(text: str) -> tuple[int, int] | None:
    if text.lower() == "none":
        return None
    w, h = (int(v) for v in text.lower().split("x"))
    return h, w


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..detect import load_model
    from ..profile import profile_model
    from ..registry import create_model

    if args.weights is not None:
        model = load_model(args.weights, model=args.model, scale=args.scale)
    else:
        model = create_model(args.model, scale=args.scale)
    name = args.model if args.model != "auto" else getattr(model, "litesr_arch", "model")
    prof = profile_model(
        model,
        name,
        latency_hw=_parse_size(args.latency_size),
        precisions=tuple(args.precision or ("fp32", "bf16")),
        threads=tuple(args.threads or ()),
        device=args.device,
        runs=args.runs,
    )
    console = Console(width=None if Console().is_terminal else 160)
    console.print(f"[bold]{name}[/] x{prof.scale}: {prof.params:,} parameters")
    table = Table(title="operations (MACs = multiply-accumulates; FLOPs = 2 x MACs)")
    for col in (
        "input",
        "output",
        "conv",
        "matmul",
        "attention",
        "total MACs",
        "interp/norm/softmax ops",
        "conv activations",
    ):
        table.add_column(col, justify="right")
    for ops in (prof.ops_720p, prof.ops_256):
        table.add_row(
            f"{ops.input_hw[1]}x{ops.input_hw[0]}",
            f"{ops.output_hw[1]}x{ops.output_hw[0]}",
            f"{ops.macs.get('conv', 0) / 1e9:.2f} G",
            f"{ops.macs.get('matmul', 0) / 1e9:.2f} G",
            f"{ops.macs.get('attention', 0) / 1e9:.2f} G",
            f"{ops.total_macs / 1e9:.2f} G",
            f"{sum(ops.element_ops.values()) / 1e9:.3f} G",
            f"{ops.conv_activations / 1e6:.1f} M",
        )
    console.print(table)
    if prof.latency:
        lt = Table(title="latency (median of runs after warm-up)")
        for col in ("device", "precision", "threads", "median ms", "min ms", "peak memory MB"):
            lt.add_column(col, justify="right")
        for lat in prof.latency:
            mem = f"{lat.peak_memory_mb:.0f}" if lat.peak_memory_mb is not None else "n/a"
            lt.add_row(lat.device, lat.precision, str(lat.threads), f"{lat.median_ms:.1f}", f"{lat.min_ms:.1f}", mem)
        console.print(lt)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(prof.to_dict(), indent=2))
    return 0
