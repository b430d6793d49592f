"""This machine's fp32 and bf16 peak for matrix products and 3x3 convolutions, and the fraction each model reaches.

    python benchmarks/peak.py [--models imdn,rlfn,ssiu,swinir_light] [--scale 4] [--size 160x96] [--threads 1]
                              [--rounds 5]

Peaks: the best median GFLOP/s (FLOPs = 2 x MACs) over a few shapes of ``torch.mm`` (square, 512 to 2048) and of a
64 -> 64 channel 3x3 convolution on a 128 x 128 / 256 x 256 map (fp32 in NCHW and NHWC; bf16 in NHWC, as autocast
runs it), each shape's contenders alternating. Models: MACs counted by ``litesr.profile.count_ops`` for the input
size, divided by the median time of the litesr fp32 path and of the litesr bf16 path (litesr.fast), as a fraction
of the conv peak of that precision (SR models are mostly 3x3 convolutions) and of the matmul peak.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ISSUE_MODELS, alternate, load_average, load_zoo_model, machine, table  # noqa: E402


def _mm(a: torch.Tensor, b: torch.Tensor):
    return lambda: torch.mm(a, b)


def matmul_peaks(rounds: int) -> dict[str, float]:
    """GFLOP/s of the best square matmul per dtype."""
    best: dict[str, float] = {}
    for n in (512, 1024, 2048):
        a32, b32 = torch.randn(n, n), torch.randn(n, n)
        timings = alternate({"fp32": _mm(a32, b32), "bf16": _mm(a32.bfloat16(), b32.bfloat16())}, rounds)
        for dtype in ("fp32", "bf16"):
            best[dtype] = max(best.get(dtype, 0.0), 2 * n**3 / timings.median(dtype) / 1e9)
    return best


def conv_peaks(rounds: int) -> dict[str, float]:
    """GFLOP/s of the best 64 -> 64 3x3 convolution per (dtype, layout)."""
    best: dict[str, float] = {}
    w32 = torch.randn(64, 64, 3, 3)
    for side in (128, 256):
        x32 = torch.randn(1, 64, side, side)
        xcl = x32.contiguous(memory_format=torch.channels_last)
        wcl = w32.contiguous(memory_format=torch.channels_last)
        x16, w16 = xcl.bfloat16(), wcl.bfloat16()
        flops = 2 * 64 * 64 * 9 * side * side

        def conv(x: torch.Tensor, w: torch.Tensor):
            def run() -> None:
                with torch.inference_mode():
                    F.conv2d(x, w, padding=1)
            return run

        timings = alternate({"fp32 NCHW": conv(x32, w32), "fp32 NHWC": conv(xcl, wcl), "bf16 NHWC": conv(x16, w16)},
                            rounds)
        for key in timings.runs:
            best[key] = max(best.get(key, 0.0), flops / timings.median(key) / 1e9)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ISSUE_MODELS))
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--size", default="160x96", help="LR input WxH of the model runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from litesr.fast import Autocast, prepare_model
    from litesr.inference import run_model
    from litesr.profile import count_ops

    torch.set_num_threads(args.threads)
    print(f"# peak throughput and achieved fractions, {args.threads} thread(s), {args.rounds} alternating rounds")
    print(f"# {machine()}")
    print(f"# at start: {load_average()}")
    mm = matmul_peaks(args.rounds)
    cv = conv_peaks(args.rounds)
    print("\n## peaks (GFLOP/s, best median over shapes)")
    print(table(["kernel", "fp32", "bf16", "bf16 / fp32"],
                [["matmul (torch.mm, square)", f"{mm['fp32']:.1f}", f"{mm['bf16']:.1f}",
                  f"{mm['bf16'] / mm['fp32']:.2f}"],
                 ["3x3 conv 64->64 (NCHW fp32)", f"{cv['fp32 NCHW']:.1f}", "", ""],
                 ["3x3 conv 64->64 (NHWC)", f"{cv['fp32 NHWC']:.1f}", f"{cv['bf16 NHWC']:.1f}",
                  f"{cv['bf16 NHWC'] / cv['fp32 NHWC']:.2f}"]]))
    conv_fp32 = max(cv["fp32 NCHW"], cv["fp32 NHWC"])
    print(f"# {load_average()}")

    w, h = (int(v) for v in args.size.lower().split("x"))
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model, weights = load_zoo_model(name, args.scale)
        macs = count_ops(model, (h, w)).total_macs
        fp32 = prepare_model(copy.deepcopy(model))
        bf16 = Autocast(prepare_model(copy.deepcopy(model), precision="bf16"))

        def runner(net: torch.nn.Module):
            def run() -> None:
                with torch.inference_mode():
                    run_model(net, x)
            return run

        timings = alternate({"fp32": runner(fp32), "bf16": runner(bf16)}, args.rounds)
        for precision, conv_peak, mm_peak in (("fp32", conv_fp32, mm["fp32"]), ("bf16", cv["bf16 NHWC"], mm["bf16"])):
            achieved = 2 * macs / timings.median(precision) / 1e9
            rows.append([name, precision, f"{macs / 1e9:.2f}", f"{timings.median(precision) * 1000:.0f}",
                         f"{achieved:.1f}", f"{achieved / conv_peak:.0%}", f"{achieved / mm_peak:.0%}"])
    print(f"\n## models, LR {w}x{h} at x{args.scale} (litesr fast path, {args.threads} thread(s))")
    print(table(["model", "precision", "GMACs", "median ms", "GFLOP/s", "of conv peak", "of matmul peak"], rows))
    print(f"# at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
