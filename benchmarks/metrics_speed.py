"""Time per megapixel of every litesr metric, side by side in one run (CPU by default).

    OMP_NUM_THREADS=1 python benchmarks/metrics_speed.py [--size 512] [--repeat 3] [--device cpu]

Learned metrics run with random weights written to a temporary file, NIQE with an identity pristine model (the speed
does not depend on the values).
Prints seconds per megapixel (median of the repeats) and the ratio to PSNR.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average, machine  # noqa: E402

from litesr.metrics import create_metric, list_metrics
from litesr.metrics.learned import DISTSNet, LPIPSNet
from litesr.metrics.niqe import NIQEModel


def _build(name: str, tmp: Path):
    if name == "lpips":
        torch.save(LPIPSNet("alex").state_dict(), tmp / "lpips.pth")
        return create_metric("lpips", weights=tmp / "lpips.pth")
    if name == "dists":
        torch.save(DISTSNet().state_dict(), tmp / "dists.pth")
        return create_metric("dists", weights=tmp / "dists.pth")
    if name == "niqe":
        (tmp / "niqe.npz").write_bytes(NIQEModel(np.zeros(36), np.eye(36)).to_bytes())
        return create_metric("niqe", weights=tmp / "niqe.npz")
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
    with tempfile.TemporaryDirectory() as d:
        metrics = {name: _build(name, Path(d)) for name in list_metrics()}
        for m in metrics.values():
            m(sr, hr)  # warm-up (filters, first-call allocations)
        times: dict[str, list[float]] = {name: [] for name in metrics}
        for _ in range(args.repeat):  # rounds alternate the metrics, so load changes hit every metric alike
            for name, m in metrics.items():
                t0 = time.perf_counter()
                m(sr, hr)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - t0)
    rows = [(name, statistics.median(t) / mp) for name, t in times.items()]
    base = dict(rows)["psnr"]
    print(machine())
    print(f"{load_average()}; device {args.device}, {args.size}x{args.size} RGB, median of {args.repeat}")
    print(f"{'metric':<10} {'s / MP':>10} {'x PSNR':>8}")
    for name, t in rows:
        print(f"{name:<10} {t:>10.4f} {t / base:>8.1f}")


if __name__ == "__main__":
    main()
