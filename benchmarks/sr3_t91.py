"""A small SR3 x4 trained on T91 for a time budget on the CPU, then sampled on Set5 (DDIM), PSNR/SSIM on Y.

    nice -n 15 env OMP_NUM_THREADS=1 python benchmarks/sr3_t91.py --budget 1500 --steps 20 --out sr3.safetensors
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
from litesr.metrics import psnr, ssim
from litesr.unsupervised.sr3 import super_resolve
from litesr.unsupervised.sr3_train import SR3TrainConfig, load_sr3, train_sr3

SHARED = Path(os.environ.get("LITESR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=1500.0, help="training seconds")
    ap.add_argument("--iters", type=int, default=100000)
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps")
    ap.add_argument("--out", type=Path, default=Path("sr3_t91_x4.safetensors"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = SR3TrainConfig(scale=4, iterations=args.iters)
    summary = train_sr3(SHARED / "datasets" / "T91" / "HR", args.out, cfg, time_budget=args.budget)
    print(f"trained: {summary}", flush=True)
    net, diffusion, scale = load_sr3(args.out)
    root = SHARED / "datasets" / "Set5"
    rows = []
    for path in sorted((root / "HR").glob("*.png")):
        hr = modcrop(to_uint8(read_image(path).rgb), scale)
        lr = to_uint8(read_image(root / "LR_bicubic" / "X4" / f"{path.stem}x4.png").rgb)
        start = time.perf_counter()
        sr = to_uint8(super_resolve(net, diffusion, lr.astype(np.float32) / 255, scale, steps=args.steps))
        bic = to_uint8_range(imresize(torch.from_numpy(lr.astype(np.float64)).permute(2, 0, 1), 4))
        bic = bic.permute(1, 2, 0).numpy().astype(np.uint8)
        row = (psnr(sr, hr, 4), ssim(sr, hr, 4), psnr(bic, hr, 4), ssim(bic, hr, 4))
        rows.append(row)
        print(f"{path.stem:10s} sr3 {row[0]:.2f} dB / {row[1]:.4f}  bicubic {row[2]:.2f} dB / {row[3]:.4f}  "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    m = np.mean(rows, axis=0)
    print(f"{'mean':10s} sr3 {m[0]:.2f} dB / {m[1]:.4f}  bicubic {m[2]:.2f} dB / {m[3]:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
