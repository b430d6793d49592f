"""``litesr profile``: parameters, MACs by operator (1280x720 output and 256x256 input), activations, peak memory and
latency per precision and thread count, as tables and optionally JSON.

    litesr profile --model imdn --scale 4
    litesr profile --model ssiu --precision fp32 --precision bf16 --threads 1 --threads 2 --json ssiu.json
    litesr profile --weights RLFN/rlfn_x4.pth --latency-size none      # counts only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Rows of the operations table: (category, kind), kind "macs" or "ops" (elementary operations, not MACs).
CATEGORIES = (
    ("conv", "macs"),
    ("matmul", "macs"),
    ("attention", "macs"),
    ("interpolate", "ops"),
    ("normalisation", "ops"),
    ("softmax", "ops"),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="parameters, MACs/FLOPs by operator, activations, peak memory and latency",
                       description="Honest efficiency figures of a model: see docs/efficiency.md for the rules.")
    p.add_argument("--model", default="auto", help="zoo model name, or 'auto' with --weights (default)")
    p.add_argument("--weights", type=Path, default=None, help="checkpoint (architecture and config read from it)")
    p.add_argument("--scale", type=float, default=None,
                   help="upscaling factor; non-integer only for --upsampler blocks that support it (meta, liif)")
    p.add_argument("--latency-size", default="320x180", metavar="WxH",
                   help="LR input size of the latency runs (default 320x180: a 1280x720 output at x4); "
                        "'none' skips timing")
    p.add_argument("--precision", action="append", choices=("fp32", "bf16", "fp16"), default=None,
                   help="repeatable; default fp32 and bf16 (and fp16 on CUDA)")
    p.add_argument("--threads", action="append", type=int, default=None,
                   help="CPU threads, repeatable; default: torch's")
    p.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--backend", choices=("torch", "compile", "onnx", "openvino"), default="torch",
                   help="what runs the latency measurement (default torch eager)")
    p.add_argument("--no-deploy", action="store_true",
                   help="keep re-parameterisable models in their training form (default: fold, as inference does)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.add_argument("--upsampler", default=None, metavar="NAME",
                   help="profile one upsampler block of litesr.upsamplers instead of a model (`--scale`, "
                        "`--channels`; the feature map is --latency-size): parameters, MACs, output shape")
    p.add_argument("--channels", type=int, default=64, help="input feature channels of --upsampler (default 64)")
    p.add_argument("--input", type=Path, default=None, metavar="IMAGE",
                   help="dynamic-inference models (PCSR, SMSR): the MACs actually spent on this LR image, those "
                        "skipped by routing/sparse masks, and the routing counts (see docs/dynamic_inference.md)")
    p.add_argument("--budget", default=None, metavar="F|N%|NG",
                   help="with --input, ARM models: the MACs spent when patches are routed within this budget "
                        "(0-1, N%%, or G MACs as 1.5G)")
    p.add_argument("--arm-table", type=Path, default=None, metavar="FILE",
                   help="ARM's lookup table (official training-state file; default <weights stem>.state)")
    p.add_argument("--gradient-projection", default=None, metavar="EDGES|DIR[:BANDS]",
                   help="ARM supernets: route each patch by its gradient instead of a lookup table (WBSR-style, "
                        "docs/wbsr.md): comma-separated score edges, or a folder of HR training images whose patch "
                        "scores give them (BANDS: how many subnets, bicubic counting as one)")
    p.set_defaults(run=run)


def _parse_size(text: str) -> tuple[int, int] | None:
    from ..errors import ConfigError

    if text.lower() == "none":
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--latency-size must be WxH (e.g. 320x180) or none, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"--latency-size must be positive, not {text!r}")
    return h, w


def _run_upsampler(args: argparse.Namespace) -> int:
    """Parameters and MACs of one upsampler block on a --latency-size feature map (issue 12's per-block figures)."""
    import torch

    from ..errors import ConfigError
    from ..profile import OpCounter
    from ..upsamplers import build_upsampler

    if args.channels < 1:
        raise ConfigError(f"--channels must be >= 1, not {args.channels}")
    hw = _parse_size(args.latency_size) or (180, 320)
    scale = args.scale or 2
    block = build_upsampler(args.upsampler, args.channels, scale, 3).eval()
    counter = OpCounter()
    with torch.no_grad(), counter:
        out = block(torch.zeros(1, args.channels, *hw))
    params = sum(p.numel() for p in block.parameters())
    macs = sum(counter.macs.values())
    print(f"upsampler {args.upsampler} x{scale:g}, {args.channels} -> 3 channels on a {hw[1]}x{hw[0]} feature map: "
          f"{params:,} parameters, {macs:,} MACs ({macs / 1e9:.3f} G), output {tuple(out.shape[1:])}")
    return 0


def _run_input(args: argparse.Namespace, model) -> int:  # noqa: ANN001 - any zoo model
    """``--input IMAGE``: the MAC report of :func:`litesr.dynamic.image_mac_report`."""
    from ..descriptor import describe
    from ..dynamic import image_mac_report

    name = args.model if args.model != "auto" else describe(model).label
    report = image_mac_report(model, args.input, name)
    (h, w), (oh, ow) = report.input_hw, report.output_hw
    print(f"{name} on {args.input} ({w}x{h} -> {ow}x{oh}): spent {report.spent_macs / 1e9:.3f} G MACs of "
          f"{report.full_macs / 1e9:.3f} G without routing ({100 * report.spent_fraction:.1f}%), "
          f"skipped {report.skipped_macs / 1e9:.3f} G")
    if report.routing:
        print("routing: " + ", ".join(f"{k} {v:,}" for k, v in report.routing.items()))
    if args.json:
        from ..fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..descriptor import describe
    from ..detect import load_model
    from ..errors import ConfigError
    from ..inference import resolve_device
    from ..profile import profile_model
    from ..registry import create_model

    if args.upsampler is not None:
        return _run_upsampler(args)
    if args.scale is not None and args.scale == int(args.scale):
        args.scale = int(args.scale)
    device = resolve_device(args.device)
    if args.weights is not None:
        model = load_model(args.weights, model=args.model, scale=args.scale)
    elif args.model == "auto":
        raise ConfigError("--model auto reads the architecture off a checkpoint: give --weights FILE or a model name")
    else:
        model = create_model(args.model, scale=args.scale)
    if args.budget is not None:
        from ..dynamic import apply_budget

        if args.input is None:
            raise ConfigError("--budget: give --input IMAGE (the MACs an ARM model spends depend on the image)")
        apply_budget(model, args.budget, name=args.model if args.model != "auto" else describe(model).label,
                     weights=args.weights, table=args.arm_table)
    if args.gradient_projection is not None:
        from ..dynamic import apply_gradient_projection

        if args.input is None or args.budget is not None:
            raise ConfigError("--gradient-projection: give --input IMAGE and no --budget (the MACs spent depend on "
                              "the image and on one routing rule)")
        apply_gradient_projection(model, args.gradient_projection,
                                  name=args.model if args.model != "auto" else describe(model).label)
    if args.input is not None:
        return _run_input(args, model)
    if args.runs < 1 or args.warmup < 0:
        raise ConfigError("--runs must be >= 1 and --warmup >= 0")
    name = args.model if args.model != "auto" else describe(model).label
    default_precisions = ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")
    prof = profile_model(
        model,
        name,
        latency_hw=_parse_size(args.latency_size),
        precisions=tuple(args.precision or default_precisions),
        threads=tuple(args.threads or ()),
        device=str(device),
        runs=args.runs,
        warmup=args.warmup,
        backend=args.backend,
        deploy=not args.no_deploy,
    )
    console = Console(width=None if Console().is_terminal else 160)
    console.print(f"[bold]{name}[/] x{prof.scale}: {prof.params:,} parameters")
    table = Table(title="operations by operator (MACs = multiply-accumulates, FLOPs = 2 x MACs; interpolation, "
                        "normalisation and softmax in elementary operations)")
    table.add_column("operator")
    sizes = (prof.ops_720p, prof.ops_256)
    for ops in sizes:
        where = "" if ops.counted_on == "meta" else f" (counted on {ops.counted_on})"
        table.add_column(f"{ops.input_hw[1]}x{ops.input_hw[0]} -> {ops.output_hw[1]}x{ops.output_hw[0]}{where}",
                         justify="right")
    for category, kind in CATEGORIES:
        values = [(ops.macs if kind == "macs" else ops.element_ops).get(category, 0) for ops in sizes]
        unit = "MACs" if kind == "macs" else "ops"
        table.add_row(f"{category} ({unit})", *(f"{v / 1e9:.3f} G" for v in values))
    table.add_row("[bold]total MACs[/]", *(f"[bold]{ops.total_macs / 1e9:.2f} G[/]" for ops in sizes))
    table.add_row("total FLOPs", *(f"{2 * ops.total_macs / 1e9:.2f} G" for ops in sizes))
    table.add_row("activations (conv outputs)", *(f"{ops.conv_activations / 1e6:.1f} M" for ops in sizes))
    console.print(table)
    if prof.latency:
        h, w = prof.latency_hw or (0, 0)
        lt = Table(title=f"latency on a {w}x{h} input (median of {args.runs} runs after {args.warmup} warm-up; "
                         f"backend {args.backend})")
        for col in ("device", "precision", "threads", "median ms", "min ms", "peak memory MB"):
            lt.add_column(col, justify="right")
        for lat in prof.latency:
            mem = f"{lat.peak_memory_mb:.0f}" if lat.peak_memory_mb is not None else "n/a"
            lt.add_row(lat.device, lat.precision, str(lat.threads), f"{lat.median_ms:.1f}", f"{lat.min_ms:.1f}", mem)
        console.print(lt)
        console.print("peak memory: the process's peak RSS on the CPU, torch.cuda.max_memory_allocated on CUDA")
    if args.json:
        from ..fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(prof.to_dict(), indent=2))
    return 0
