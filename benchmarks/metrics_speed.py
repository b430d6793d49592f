"""Time per megapixel of every litesr metric, side by side in one run (CPU by default).

    OMP_NUM_THREADS=1 python benchmarks/metrics_speed.py [--size 512] [--repeat 3] [--device cpu]

Learned metrics run with random weights written to a temporary file (the speed does not depend on the values).
Prints seconds per megapixel (median of the repeats) and the ratio to PSNR.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from litesr.metrics import create_metric, list_metrics
from litesr.metrics.learned import DISTSNet, LPIPSNet


def _build(name: str, tmp: Path):
    if name == "lpips":
        torch.save(LPIPSNet("alex").state_dict(), tmp / "lpips.pth")
        return create_metric("lpips", weights=tmp / "lpips.pth")
    if name == "dists":
        torch.save(DISTSNet().state_dict(), tmp / "dists.pth")
        return create_metric("dists", weights=tmp / "dists.pth")
    return create_metric(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    hr = torch.rand(1, 3, args.size, args.size, device=args.device)
    sr = (hr + 0.05 * torch.randn_like(hr)).clamp(0, 1)
    mp = args.size * args.size / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in list_metrics():
            m = _build(name, Path(d))
            m(sr, hr)  # warm-up (filters, first-call allocations)
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                m(sr, hr)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            rows.append((name, statistics.median(times) / mp))
    base = dict(rows)["psnr"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}, "
          f"{args.size}x{args.size} RGB, median of {args.repeat}")
    print(f"{'metric':<10} {'s / MP':>10} {'x PSNR':>8}")
    for name, t in rows:
        print(f"{name:<10} {t:>10.4f} {t / base:>8.1f}")


if __name__ == "__main__":
    main()
