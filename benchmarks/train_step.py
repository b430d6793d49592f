"""One training step of SSIU x2 (batch 16, LR 64x64): litesr's fastest CPU mode against plain fp32 eager PyTorch.

    python benchmarks/train_step.py [--model ssiu] [--batch 16] [--lr-size 64] [--steps 5] [--compile] [--threads N]

Both sides train the same model (same initial weights, same batch, L1 + 0.01 FFT loss, AdamW):
- baseline: fp32, contiguous (NCHW) tensors, torch.optim.AdamW with its default (foreach) implementation;
- litesr: the engine's own step (``Trainer.optimization_step``) with ``precision: auto`` (bf16 autocast on AMX CPUs and
  CUDA, fp32 elsewhere; printed with the CPU flags that decided it), channels_last,
  fused AdamW, and torch.compile with ``--compile``.
Prints ms/step of each (median of ``--steps`` after warm-up) and the ratio.
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


def median_ms(step, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ssiu")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr-size", type=int, default=64, help="LR patch side")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the litesr side")
    parser.add_argument("--precision", default="auto",
                        help="litesr side: auto (default: litesr.device's choice for this CPU, printed), bf16 or fp32")
    args = parser.parse_args()

    from litesr.data.train import make_synthetic_set
    from litesr.losses import build_loss
    from litesr.registry import create_model, list_models
    from litesr.train import Trainer, build_config

    if args.model not in list_models():
        print(f"model {args.model!r} is not registered here; try --model imdn", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
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

        print(f"{args.model} x{args.scale}, batch {args.batch}, LR {args.lr_size}x{args.lr_size}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}, "
              f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
              f"mkldnn bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
        t_compile = time.perf_counter()
        fast = median_ms(litesr_step, args.steps, args.warmup)
        first_s = time.perf_counter() - t_compile
        base = median_ms(baseline_step, args.steps, args.warmup)
        trainer.close()
    mode = f"{trainer.precision} autocast, channels_last {trainer.channels_last}, fused AdamW {bool(fused)}"
    mode += ", torch.compile" if args.compile else ""
    print(f"baseline fp32 eager : {base:9.1f} ms/step")
    print(f"litesr ({mode}): {fast:9.1f} ms/step  (warm-up + timed steps took {first_s:.1f} s)")
    print(f"speed-up            : {base / fast:9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
