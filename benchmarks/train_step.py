"""One training step of SSIU x2 and rdesa x2: litesr's step against plain fp32 eager PyTorch, alternating.

    python benchmarks/train_step.py [--model ssiu,rdesa] [--batch 4] [--lr-size 32] [--steps 2] [--warmup 1]
                                    [--compile] [--threads N] [--bound]

With no flags it finishes in a few minutes on a small, loaded CPU (batch 4, LR 32x32, one warm-up and 2 timed steps
per side); ``--batch 16 --lr-size 64 --steps 5 --warmup 2`` is the longer run.

Both sides train the same model (same initial weights, same batch, L1 + 0.01 FFT loss, AdamW):
- baseline: fp32, contiguous (NCHW) tensors, torch.optim.AdamW with its default (foreach) implementation;
- litesr: the engine's own step (``Trainer.optimization_step``) with ``precision: auto`` (bf16 autocast on AMX CPUs and
  CUDA, fp32 elsewhere; printed with the CPU flags that decided it), channels_last where auto picks it,
  fused AdamW, and torch.compile with ``--compile``.
The contenders are timed in turn (baseline, litesr, baseline, litesr ...) after ``--warmup`` steps each, so that the
load of a shared machine hits both alike; medians and their ratio are printed. ``--bound`` also profiles one litesr
step (share of the step spent in convolutions, forward and backward) and measures this machine's fp32 matmul peak on
one thread, to say what bounds the step where the goal (1.5x) is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import alternate, load_average, machine  # noqa: E402

CONV_OPS = ("aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward", "aten::mkldnn_convolution",
            "aten::convolution_backward", "aten::_convolution_depthwise2d", "aten::thnn_conv2d")


def _runs(timings, name: str) -> str:
    return ", ".join(f"{t * 1000:.0f}" for t in timings.runs[name])


def matmul_peak_gflops(rounds: int = 3) -> float:
    """fp32 GFLOP/s of a 1024 x 1024 matmul on the threads in force (median of ``rounds``)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * 1024**3 / statistics.median(times) / 1e9


def bound_report(step, net: torch.nn.Module, args: argparse.Namespace) -> str:
    """Where one step's time goes (profiler self time: convolutions vs the rest), the step's conv GFLOP/s (3 x the
    forward MACs x 2: forward, input gradient, weight gradient) and the fraction of the matmul peak that is."""
    from torch.profiler import ProfilerActivity, profile

    from litesr.profile import count_ops

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    by_op = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(by_op.values())
    conv = sum(v for k, v in by_op.items() if k in CONV_OPS)
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:6]
    macs = count_ops(net, (args.lr_size, args.lr_size)).total_macs * args.batch
    conv_gflops = 3 * 2 * macs / (conv / 1e6) / 1e9 if conv else float("nan")
    peak = matmul_peak_gflops()
    lines = [f"## bound: one litesr step, profiler self time {total / 1e6:.2f} s",
             f"convolutions (forward + backward): {conv / total:.0%} of the step, {conv_gflops:.1f} GFLOP/s "
             f"= {conv_gflops / peak:.0%} of this machine's fp32 matmul peak now ({peak:.1f} GFLOP/s, 1024^3 mm)",
             f"everything else (element-wise, norms, attention, FFT loss, optimiser): {1 - conv / total:.0%}",
             "top operators: " + ", ".join(f"{k} {v / total:.0%}" for k, v in top)]
    if conv:
        lines.append(f"if every non-convolution op took no time at all, the step would be {total / conv:.2f}x "
                     "faster: the most any fp32 fusion (torch.compile) can give on this CPU")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ssiu,rdesa", help="one model or several, comma-separated")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr-size", type=int, default=32, help="LR patch side (default 32)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per side (median reported; default 2)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the litesr side")
    parser.add_argument("--bound", action="store_true",
                        help="profile one litesr step: conv share, conv GFLOP/s vs this machine's fp32 matmul peak")
    parser.add_argument("--precision", default="auto",
                        help="litesr side: auto (default: litesr.device's choice for this CPU, printed), bf16 or fp32")
    args = parser.parse_args()

    from litesr.registry import list_models

    names = [m.strip() for m in args.model.split(",") if m.strip()]
    unknown = [m for m in names if m not in list_models()]
    if unknown or not names:
        print(f"--model: {', '.join(unknown) or 'nothing'} is not a registered model; try --model imdn",
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    summary = []
    for name in names:
        base, fast = run_model_benchmark(name, args)
        summary.append((name, base, fast))
    print(f"\n## summary: litesr's train step vs plain fp32 eager, x{args.scale}, batch {args.batch}, "
          f"LR {args.lr_size}x{args.lr_size}, median of {args.steps} alternating steps")
    for name, base, fast in summary:
        print(f"{name:>10} x{args.scale}: baseline {base:9.1f} ms, litesr {fast:9.1f} ms, speed-up {base / fast:.2f}x")
    print(f"# at end: {load_average()}")
    return 0


def run_model_benchmark(model_name: str, args: argparse.Namespace) -> tuple[float, float]:
    """Median ms per step of the baseline and of litesr for one model (printed as it goes)."""
    from litesr.data.train import make_synthetic_set
    from litesr.losses import build_loss
    from litesr.registry import create_model
    from litesr.train import Trainer, build_config

    args = argparse.Namespace(**{**vars(args), "model": model_name})
    hr_side = args.lr_size * args.scale
    torch.manual_seed(0)
    lr = torch.rand(args.batch, 3, args.lr_size, args.lr_size)
    hr = torch.rand(args.batch, 3, hr_side, hr_side)
    losses = [{"type": "l1"}, {"type": "fft", "weight": 0.01}]

    # Baseline: the plain loop most SR repositories run.
    torch.manual_seed(0)
    net = create_model(args.model, scale=args.scale).train()
    init = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-4)
    criterion = build_loss(losses)

    def baseline_step() -> None:
        opt.zero_grad(set_to_none=True)
        out = net(lr)
        loss = F.l1_loss(out, hr) + criterion.terms[1](out, hr) * 0.01
        loss.backward()
        opt.step()

    # litesr: a Trainer built from a config (a synthetic image set only to satisfy the data section).
    with tempfile.TemporaryDirectory() as tmp:
        images = make_synthetic_set(Path(tmp) / "hr", count=1, size=hr_side)
        cfg = build_config({
            "output": str(Path(tmp) / "runs"), "device": "cpu",
            "model": {"name": args.model, "scale": args.scale},
            "datasets": {"train": {"hr_dir": str(images), "patch_size": hr_side, "workers": 0}},
            "train": {"iterations": 1, "batch_size": args.batch, "precision": args.precision, "compile": args.compile,
                      "optimizer": {"type": "adamw", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 1e-4},
                      "losses": losses, "ema": {"enabled": False}},
            "val": {"every": 0},
        }, source="benchmark")
        trainer = Trainer(cfg)
        trainer.net.load_state_dict(init)
        batch = {"lr": lr, "hr": hr}
        fused = trainer.optimizers["net"].defaults.get("fused")

        def litesr_step() -> None:
            trainer.optimization_step(batch)

        print(f"\n## {args.model} x{args.scale}, batch {args.batch}, LR {args.lr_size}x{args.lr_size}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
              f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
              f"mkldnn bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
        print(f"# {machine()}")
        print(f"# {trainer.precision_choice}")
        print(f"# at start: {load_average()}")
        t_start = time.perf_counter()
        timings = alternate({"baseline": baseline_step, "litesr": litesr_step}, args.steps, warmup=args.warmup)
        total_s = time.perf_counter() - t_start
        if args.bound:
            print(bound_report(litesr_step, trainer.net, args))
        trainer.close()
    base, fast = timings.median("baseline") * 1000.0, timings.median("litesr") * 1000.0
    mode = f"{trainer.precision} autocast, channels_last {trainer.channels_last}, fused AdamW {bool(fused)}"
    mode += ", torch.compile" if args.compile else ""
    print(f"baseline fp32 eager : {base:9.1f} ms/step  (runs: {_runs(timings, 'baseline')})")
    print(f"litesr ({mode}): {fast:9.1f} ms/step  (runs: {_runs(timings, 'litesr')})")
    print(f"speed-up            : {base / fast:9.2f}x  (warm-up + {args.steps} alternating rounds: {total_s:.1f} s)")
    print(f"# {load_average()}")
    return base, fast


if __name__ == "__main__":
    sys.exit(main())
