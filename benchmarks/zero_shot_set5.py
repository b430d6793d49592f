"""ZSSR (Set5 x2) or Deep Image Prior (Set5 x4) on the benchmark's MATLAB-bicubic LR files, PSNR on Y (crop = scale).

    nice -n 15 env OMP_NUM_THREADS=1 python benchmarks/zero_shot_set5.py zssr --scale 2 --budget 120
    nice -n 15 env OMP_NUM_THREADS=1 python benchmarks/zero_shot_set5.py dip --scale 4 --budget 300 --iters 2000

Prints one line per image (method PSNR, bicubic PSNR, iterations, seconds) and the means; reads ../shared/datasets.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from litesr.images import read_image
from litesr.imresize import imresize, modcrop, to_uint8_range
from litesr.metrics import psnr

SHARED = Path(os.environ.get("LITESR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)


def bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
    chw = torch.from_numpy(lr.astype(np.float64)).permute(2, 0, 1)
    return to_uint8_range(imresize(chw, scale)).permute(1, 2, 0).numpy().astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("method", choices=("zssr", "dip"))
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--budget", type=float, default=120.0, help="seconds of optimisation per image")
    ap.add_argument("--iters", type=int, default=None, help="DIP iterations (default: the paper's)")
    ap.add_argument("--images", nargs="*", default=None)
    ap.add_argument("--crop", type=int, default=0, help="use the centre HR crop of this side (a multiple of 32 * scale "
                                                        "keeps DIP from padding); 0: whole images")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    root = SHARED / "datasets" / "Set5"
    names = args.images or sorted(p.stem for p in (root / "HR").glob("*.png"))
    rows = []
    for name in names:
        hr = to_uint8(read_image(root / "HR" / f"{name}.png").rgb)
        hr = modcrop(hr, args.scale)
        lr = to_uint8(read_image(root / "LR_bicubic" / f"X{args.scale}" / f"{name}x{args.scale}.png").rgb)
        if args.crop:  # the LR crop is cut from the benchmark LR file, so the LR pixels stay MATLAB's
            c = args.crop // args.scale
            top, left = (lr.shape[0] - c) // 2, (lr.shape[1] - c) // 2
            lr = lr[top:top + c, left:left + c]
            hr = hr[top * args.scale:(top + c) * args.scale, left * args.scale:(left + c) * args.scale]
        start = time.perf_counter()
        if args.method == "zssr":
            from litesr.unsupervised.zssr import zssr

            res = zssr(lr.astype(np.float32) / 255.0, args.scale, time_budget=args.budget)
            sr, iters = res.image, sum(res.iterations)
        else:
            from litesr.unsupervised.dip import DIPConfig, deep_image_prior

            cfg = DIPConfig() if args.iters is None else DIPConfig(num_iter=args.iters)
            res = deep_image_prior(lr.astype(np.float32) / 255.0, args.scale, config=cfg, time_budget=args.budget)
            sr, iters = res.image, res.iterations
        seconds = time.perf_counter() - start
        p = psnr(to_uint8(sr), hr, args.scale)
        b = psnr(bicubic_up(lr, args.scale), hr, args.scale)
        rows.append((p, b))
        print(f"{name:10s} {args.method} {p:.2f} dB  bicubic {b:.2f} dB  iterations {iters}  {seconds:.0f} s",
              flush=True)
    mean = np.mean(rows, axis=0)
    print(f"{'mean':10s} {args.method} {mean[0]:.2f} dB  bicubic {mean[1]:.2f} dB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
